"""Training stages shared by the command-line tools (train, fit-gmm, calibrate, evaluate).

Stages of a DiffPose bundle:
 1. encoder: pre-train phi_ST to regress the root-relative 3D pose (MPJPE loss), then freeze it
    (as the paper does: g then learns a refinement around a fixed, well-defined H_K).
 2. H_K: fit the residual scale sigma(conf) and the residual mixture (initial.py, gmm.py) on the
    frozen encoder's residuals on HELD-OUT clips (the validation clips: the encoder never trained
    on them, so H_K is as wide as the encoder's error on new motion, not on its training set).
 3. denoiser: train g on the GMM forward process F1 with x0-prediction (metric MSE).
Training data comes from a `draw(rng, n)` function that returns a fresh batch (the data
generator: a new camera, body and 2D noise per sample), so no sample is seen twice. One training
loop (`fit`) serves the encoder, the baseline and the denoiser; it checkpoints every `eval_every`
iterations (model, optimiser, iteration, RNG states) and resumes, and accumulates the gradient
over row chunks where that is faster.
"""
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..skeleton import NUM_JOINTS
from .diffusion import forward_diffuse, kernel_draw, make_schedule
from .encoder import normalise_2d
from .gmm import fit_gmm
from .initial import fit_residual_scale


# ----------------------------------------------------------------------------- data
def batches(d: dict, batch: int = 2048):
    """Yield (slice, inputs tensor) over a fixed set's samples in order."""
    for i in range(0, len(d["pose3d"]), batch):
        sl = slice(i, i + batch)
        yield sl, torch.from_numpy(np.ascontiguousarray(d["inputs"][sl], np.float32))


def last_frame(inputs):
    """(B,17,3) newest frame of frame (B,17,3) or window (B,T,17,3) inputs."""
    return inputs[:, -1] if inputs.dim() == 4 else inputs


# ----------------------------------------------------------------------------- utilities
def _lr_at(it, total, lr, warmup=200):
    """Linear warm-up, then cosine decay to 1 % of lr."""
    if it < warmup:
        return lr * (it + 1) / warmup
    p = min((it - warmup) / max(total - warmup, 1), 1.0)
    return 1e-2 * lr + 0.5 * (lr - 1e-2 * lr) * (1 + math.cos(math.pi * p))


def _save_ckpt(path: Path, **state):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def mpjpe_loss(pred, gt):
    return torch.linalg.norm(pred - gt, dim=-1).mean()


@torch.no_grad()
def predict_regressor(model, d: dict, batch=2048):
    """Root-relative poses (S,17,3) of a regressor on a fixed set (encoder returns (feat, pose))."""
    model.eval()
    out = []
    for _, x in batches(d, batch):
        y = model(x)
        out.append(y[1] if isinstance(y, tuple) else y)
    return torch.cat(out).numpy()


# Rows per forward/backward pass. On 2 cores a batch of 1024 trained in chunks of 256 costs about
# 20 % less per iteration than in one pass (the activations stay in the caches); the gradient is
# the same (the chunks' mean losses weighted by their share of the batch), so this is speed only.
CHUNK = 256


def _chunks(b: dict, chunk: int | None):
    """(part, share of the batch) over consecutive rows of a batch dict; the whole batch when
    chunk is None or not smaller."""
    n = len(b["pose3d"])
    if chunk is None or chunk >= n:
        yield b, 1.0
        return
    for i in range(0, n, chunk):
        part = {k: v[i:i + chunk] for k, v in b.items()}
        yield part, len(part["pose3d"]) / n


def fit(model, loss_fn, draw, iters: int, batch: int, lr: float, ckpt: Path, resume: bool, seed: int,
        validate=None, eval_every: int = 1000, log=print, desc="train", chunk: int | None = None):
    """The one training loop: Adam, warm-up + cosine lr, grad-norm clip 1, a fresh batch from
    draw(rng, batch) each iteration, loss_fn(model, batch) -> scalar tensor (a mean over rows).

    chunk: accumulate the gradient over row chunks of that size (CHUNK); a loss with random draws
    per batch makes them in loss_fn.prepare(batch), before the split. Not for BatchNorm models (their
    statistics would be per chunk). validate() -> dict of numbers, called every eval_every
    iterations and at the end; a checkpoint is written at the same moments and `resume` continues
    from the last one. Returns the history.
    """
    if chunk is not None and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise ValueError("chunked gradients need a model without BatchNorm (pass chunk=None)")
    prepare = getattr(loss_fn, "prepare", lambda b: b)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    start, history = 0, []
    if resume and ckpt.is_file():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        torch.set_rng_state(st["torch_rng"])
        rng.bit_generator.state = st["np_rng"]
        start, history = st["iteration"], st["history"]
        log(f"[{desc}] resumed at iteration {start}")
    t0 = time.time()
    run, count = 0.0, 0
    bar = tqdm(range(start, iters), desc=desc, initial=start, total=iters, mininterval=5, leave=False)
    for it in bar:
        model.train()
        for g in opt.param_groups:
            g["lr"] = _lr_at(it, iters, lr)
        opt.zero_grad()
        loss = 0.0
        for part, share in _chunks(prepare(draw(rng, batch)), chunk):
            part_loss = loss_fn(model, part) * share
            part_loss.backward()
            loss += part_loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run += loss
        count += 1
        bar.set_postfix(loss=f"{run / count:.4g}", refresh=False)
        if (it + 1) % eval_every == 0 or it + 1 == iters:
            model.eval()
            rec = {"iteration": it + 1, "train_loss": run / count, "wall_s": time.time() - t0}
            rec.update(validate() if validate else {})
            history.append(rec)
            log(f"[{desc}] {it + 1}/{iters} " + " ".join(
                f"{k} {v:.4g}" for k, v in rec.items() if k not in ("iteration",)))
            run, count = 0.0, 0
            _save_ckpt(ckpt, model=model.state_dict(), opt=opt.state_dict(), iteration=it + 1,
                       history=history, torch_rng=torch.get_rng_state(), np_rng=rng.bit_generator.state)
    model.eval()
    return history


# ----------------------------------------------------------------------------- stage 1 / baseline
def regressor_loss(model, b):
    out = model(torch.from_numpy(np.ascontiguousarray(b["inputs"], np.float32)))
    pred = out[1] if isinstance(out, tuple) else out
    return mpjpe_loss(pred, torch.from_numpy(np.ascontiguousarray(b["pose3d"], np.float32)))


def train_regressor(model, draw, val: dict, iters, batch, lr, ckpt, resume, seed, eval_every=1000,
                    log=print, desc="encoder", chunk: int | None = CHUNK):
    def validate():
        err = np.linalg.norm(predict_regressor(model, val) - val["pose3d"], axis=-1).mean()
        return {"val_mpjpe_mm": 1000 * float(err)}
    return fit(model, regressor_loss, draw, iters, batch, lr, ckpt, resume, seed, validate, eval_every,
               log, desc, chunk)


# ----------------------------------------------------------------------------- stage 2
@torch.no_grad()
def fit_initial_distribution(bundle, held_out: dict, n_components=5, max_samples=20000, seed=0, log=print):
    """Fit sigma(conf) and the residual GMM of H_K on the frozen encoder's residuals on held-out
    clips; writes them into bundle.scale / bundle.gmm and returns a report."""
    mu = predict_regressor(bundle.encoder, held_out)
    resid = held_out["pose3d"] - mu
    kp_last = held_out["inputs"][:, -1] if held_out["inputs"].ndim == 4 else held_out["inputs"]
    base, gain, table = fit_residual_scale(resid, kp_last[..., 2])
    bundle.scale.base.copy_(torch.tensor(base, dtype=torch.float32))
    bundle.scale.gain.copy_(torch.tensor(gain, dtype=torch.float32))
    sigma = bundle.scale(torch.from_numpy(np.ascontiguousarray(kp_last, np.float32))).numpy()
    z = (resid / sigma)[:, 1:].reshape(len(resid), -1)
    sel = np.random.default_rng(seed).permutation(len(z))[:max_samples]
    t0 = time.time()
    g = fit_gmm(z[sel], n_components, seed=seed)
    log(f"[H_K] EM on {len(sel)} x {z.shape[1]}: {g.n_iter} iterations, mean log-lik {g.log_likelihood:.2f}, "
        f"weights {np.round(g.weights, 3).tolist()} ({time.time() - t0:.0f} s)")
    bundle.gmm = {"weights": g.weights, "means": g.means, "covs": g.covs}
    return {"residual_base_mm": (1000 * base).round(1).tolist(), "residual_gain": gain.tolist(),
            "residual_scale_table": table, "encoder_held_out_mpjpe_mm": 1000 * float(np.linalg.norm(resid, axis=-1).mean()),
            "gmm_weights": g.weights.tolist(), "gmm_loglik": g.log_likelihood, "gmm_iterations": g.n_iter,
            "gmm_samples": int(len(sel)), "normalised_residual_var_mean": float(z.var(0).mean())}


# ----------------------------------------------------------------------------- stage 3
class DenoiserLoss:
    """x0-prediction loss of g under the GMM forward process F1, in metres: the mean per-joint
    error length (config denoiser.loss = "mpjpe", the metric the encoder is trained on and the pose
    is judged by; robust to the heavy tails of gross 2D errors) or the squared error ("mse").

    Per batch: the frozen encoder's context and estimate, sigma, the clean normalised residual
    s_0 = (pose - mu_enc) / sigma, a kernel c ~ Cat(pi) per pose, a step k ~ U{1..K} and
    s_k = mu_c + sqrt(abar_k)(s_0 - mu_c) + sqrt(1 - abar_k) xi, xi ~ N(0, Sigma_c)."""

    def __init__(self, bundle):
        self.encoder, self.scale = bundle.encoder, bundle.scale
        cfg = bundle.config["diffusion"]
        self.n_steps = cfg["n_steps"]
        self.abar = torch.tensor(make_schedule(self.n_steps, cfg["schedule"]), dtype=torch.float32)
        g = bundle.gmm
        self.w = torch.tensor(g["weights"], dtype=torch.float64)
        self.g_means = torch.tensor(g["means"], dtype=torch.float32)
        self.g_chol = torch.tensor(np.linalg.cholesky(g["covs"]), dtype=torch.float32)
        self.kind = bundle.config["denoiser"].get("loss", "mse")
        if self.kind not in ("mpjpe", "mse"):
            raise ValueError(f"denoiser loss must be 'mpjpe' or 'mse', got {self.kind!r}")

    def prepare(self, b):
        """The batch with its random draws (kernel c, noise, step k per pose), made once for the
        whole batch so that a chunked pass (fit's chunk) trains on the same draws."""
        n = len(b["pose3d"])
        kernel = torch.multinomial(self.w, n, replacement=True)
        return dict(b, diffusion_kernel=kernel, diffusion_noise=torch.randn(n, NUM_JOINTS, 3),
                    diffusion_step=torch.randint(1, self.n_steps + 1, (n,)))

    def __call__(self, den, b):
        if "diffusion_step" not in b:
            b = self.prepare(b)
        x = torch.from_numpy(np.ascontiguousarray(b["inputs"], np.float32))
        gt = torch.from_numpy(np.ascontiguousarray(b["pose3d"], np.float32))
        with torch.no_grad():
            f, m = self.encoder(x)
            kp_last = last_frame(x)
            s = self.scale(kp_last)
            f2d, _ = normalise_2d(kp_last)
        s0 = (gt - m) / s
        s0[:, 0] = 0.0
        onehot = torch.nn.functional.one_hot(b["diffusion_kernel"], len(self.w)).float()
        m_c, xi = kernel_draw(onehot, self.g_means, self.g_chol, b["diffusion_noise"])
        k = b["diffusion_step"]
        s_k = forward_diffuse(s0, k, self.abar, m_c, xi)
        pred = den(s_k, k, f, m, s, f2d, m_c)
        err = (pred[:, 1:] - s0[:, 1:]) * s[:, 1:]  # metres
        return torch.linalg.norm(err, dim=-1).mean() if self.kind == "mpjpe" else (err ** 2).sum(-1).mean()


def denoiser_validation(bundle, val: dict, steps: int = 5, n_hyp: int = 5) -> dict:
    """Held-out MPJPE (mm) of the encoder alone and of the sampler's pose: is g improving on it?"""
    from .sampler import DiffPoseSampler
    gt = val["pose3d"]
    err = lambda p: 1000 * float(np.linalg.norm(p - gt, axis=-1).mean())  # noqa: E731
    mean, _, hyps = run_sampler(DiffPoseSampler(bundle, steps, n_hyp), val, n_hyp, progress=False)
    return {"val_encoder_mm": err(predict_regressor(bundle.encoder, val)), "val_sampler_mm": err(mean),
            "val_hyp_mean_mm": err(hyps.mean(1))}


def train_denoiser(bundle, draw, iters, batch, lr, ckpt, resume, seed, val=None, eval_every=1000,
                   log=print, chunk: int | None = CHUNK):
    validate = (lambda: denoiser_validation(bundle, val)) if val is not None else None
    return fit(bundle.denoiser, DenoiserLoss(bundle), draw, iters, batch, lr, ckpt, resume, seed,
               validate, eval_every, log, desc="denoiser", chunk=chunk)


# ----------------------------------------------------------------------------- sampling helper
@torch.no_grad()
def run_sampler(sampler, d: dict, n_hyp: int, batch=512, seed=0, progress=True):
    """Run a DiffPoseSampler over a fixed set with seeded noise; numpy (mean, cov, hyps)."""
    rng = np.random.default_rng(seed)
    means, covs, hyps = [], [], []
    for _, x in tqdm(list(batches(d, batch)), desc=f"sample s{sampler.steps} n{n_hyp}", leave=False,
                     mininterval=5, disable=not progress):
        noise = torch.from_numpy(rng.standard_normal((len(x), n_hyp, NUM_JOINTS, 3)).astype(np.float32))
        u = torch.from_numpy(rng.random((len(x), n_hyp)).astype(np.float32))
        m, c, h = sampler(x, noise, u)
        means.append(m.numpy())
        covs.append(c.numpy())
        hyps.append(h.numpy())
    return np.concatenate(means), np.concatenate(covs), np.concatenate(hyps)


def write_json(obj, path):
    from .model_io import save_json
    save_json(json.loads(json.dumps(obj, default=float)), path)
