"""Training stages shared by the command-line tools (train, fit-gmm, calibrate, evaluate).

Stages of a DiffPose bundle:
 1. encoder: pre-train phi_ST to regress the root-relative 3D pose (MPJPE loss, left/right flip
    augmentation), then freeze it (as the paper does: g then learns a residual refinement around a
    fixed, well-defined H_K instead of chasing a moving one).
 2. prior + GMM: fit the conf -> 2D sigma map, S3D, the encoder's per-joint residual std and the
    residual mixture of H_K (initial.py, gmm.py).
 3. denoiser: train g on the GMM forward process F1 with x0-prediction (metric MSE).
Each stage checkpoints every epoch (model, optimiser, epoch, RNG state) and resumes.
"""
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..skeleton import H36M_FLIP, NUM_JOINTS
from .diffusion import forward_diffuse, make_schedule
from .gmm import fit_gmm
from .initial import fit_conf_sigma, person_scale_3d

FLIP = torch.tensor(H36M_FLIP)


# ----------------------------------------------------------------------------- data
def load_split(split: str, stride: int, limit_clips=None, seed: int = 0, cameras_per_clip: int = 2,
               mocap_dir=None, skeleton_map=None):
    """load_pairs + model inputs (S,17,3) = (x_norm, y_norm, conf) float32.

    mocap_dir / skeleton_map: any BVH folder with a skeleton map (default: the shared mocap)."""
    from ..data.dataset import load_pairs
    kw = {} if mocap_dir is None else {"mocap_dir": mocap_dir}
    d = load_pairs(split, stride=stride, cameras_per_clip=cameras_per_clip, seed=seed,
                   limit_clips=limit_clips, skeleton_map=skeleton_map, **kw)
    d["inputs"] = np.concatenate([d["keypoints"], d["conf"][..., None]], -1).astype(np.float32)
    return d


def windows_for(d: dict, window: int) -> np.ndarray:
    from ..data.dataset import causal_windows
    return causal_windows(d["seq"], d["frame"], window)


class Inputs:
    """Gathers frame inputs (B,17,3) or causal windows (B,T,17,3) for sample indices."""

    def __init__(self, d: dict, window: int = 1):
        self.kp = torch.from_numpy(d["inputs"])
        self.win = torch.from_numpy(windows_for(d, window)) if window > 1 else None

    def __len__(self):
        return len(self.kp)

    def __call__(self, idx):
        return self.kp[idx] if self.win is None else self.kp[self.win[idx]]

    def last(self, idx):
        return self.kp[idx]


def flip_inputs(kp, pose=None):
    """Mirror x (camera frame and normalised image) and swap left/right joints."""
    kp = kp[..., FLIP, :].clone()
    kp[..., 0] = -kp[..., 0]
    if pose is not None:
        pose = pose[..., FLIP, :].clone()
        pose[..., 0] = -pose[..., 0]
    return kp, pose


# ----------------------------------------------------------------------------- utilities
def _lr_at(it, total, lr):
    return 1e-2 * lr + 0.5 * (lr - 1e-2 * lr) * (1 + math.cos(math.pi * min(it / max(total, 1), 1.0)))


def _save_ckpt(path: Path, **state):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_ckpt(path: Path, model, opt):
    st = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["opt"])
    torch.set_rng_state(st["torch_rng"])
    return st["epoch"], st["history"]


def mpjpe_loss(pred, gt):
    return torch.linalg.norm(pred - gt, dim=-1).mean()


@torch.no_grad()
def predict_regressor(model, inputs: Inputs, idx=None, batch=2048):
    """Root-relative poses of a regressor (encoder returns (feat, pose); baseline returns pose)."""
    model.eval()
    idx = np.arange(len(inputs)) if idx is None else idx
    out = []
    for i in range(0, len(idx), batch):
        y = model(inputs(torch.from_numpy(idx[i:i + batch])))
        out.append(y[1] if isinstance(y, tuple) else y)
    return torch.cat(out).numpy()


# ----------------------------------------------------------------------------- stage 1 / baseline
def train_regressor(model, train_in: Inputs, pose3d: np.ndarray, val_in: Inputs, val_pose: np.ndarray,
                    epochs: int, batch: int, lr: float, ckpt: Path, resume: bool, seed: int,
                    samples_per_epoch=None, flip=True, log=print, desc="encoder"):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, history = 0, []
    if resume and ckpt.is_file():
        start, history = _load_ckpt(ckpt, model, opt)
        log(f"[{desc}] resumed at epoch {start}")
    gt = torch.from_numpy(pose3d)
    n = len(train_in)
    per_epoch = min(n, samples_per_epoch or n)
    iters = per_epoch // batch
    total = iters * epochs
    val_idx = np.random.default_rng(seed).permutation(len(val_in))[:3000]
    t0 = time.time()
    for ep in range(start, epochs):
        model.train()
        perm = torch.randperm(n)[:per_epoch]
        run = 0.0
        bar = tqdm(range(iters), desc=f"{desc} ep {ep + 1}/{epochs}", leave=False, mininterval=5)
        for it in bar:
            for g in opt.param_groups:
                g["lr"] = _lr_at(ep * iters + it, total, lr)
            idx = perm[it * batch:(it + 1) * batch]
            kp, y = train_in(idx), gt[idx]
            if flip:
                m = torch.rand(len(idx)) < 0.5
                if m.any():
                    kf, yf = flip_inputs(kp[m], y[m])
                    kp, y = kp.clone(), y.clone()
                    kp[m], y[m] = kf, yf
            out = model(kp)
            pred = out[1] if isinstance(out, tuple) else out
            loss = mpjpe_loss(pred, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            run += loss.item()
            bar.set_postfix(loss=f"{1000 * run / (it + 1):.1f}mm")
        val = float(np.linalg.norm(predict_regressor(model, val_in, val_idx) - val_pose[val_idx], axis=-1).mean())
        history.append({"epoch": ep + 1, "train_mpjpe_mm": 1000 * run / max(iters, 1),
                        "val_mpjpe_mm": 1000 * val, "wall_s": time.time() - t0})
        log(f"[{desc}] epoch {ep + 1}/{epochs} train {1000 * run / max(iters, 1):.1f} mm  val {1000 * val:.1f} mm  "
            f"({time.time() - t0:.0f} s)")
        _save_ckpt(ckpt, model=model.state_dict(), opt=opt.state_dict(), epoch=ep + 1, history=history,
                   torch_rng=torch.get_rng_state())
    model.eval()
    return history


# ----------------------------------------------------------------------------- stage 2
@torch.no_grad()
def encode(encoder, inputs: Inputs, batch=2048):
    """Frozen-encoder context (fp16, to keep ~80k x 17 x 96 in memory) and 3D estimates."""
    encoder.eval()
    feats, mus = [], []
    for i in range(0, len(inputs), batch):
        f, mu = encoder(inputs(torch.arange(i, min(i + batch, len(inputs)))))
        feats.append(f.half())
        mus.append(mu)
    return torch.cat(feats), torch.cat(mus)


@torch.no_grad()
def fit_prior_and_gmm(prior, d: dict, mu: np.ndarray, n_components=5, max_samples=20000, seed=0, log=print):
    """Fit the H_K parameters on the training split; returns (gmm dict, report dict)."""
    coef, table = fit_conf_sigma(d["keypoints"], d["keypoints_clean"], d["conf"])
    s3d = person_scale_3d(d["keypoints_clean"], d["conf"], d["root"][:, 2])
    resid = d["pose3d"] - mu  # (S, 17, 3)
    base = np.sqrt((resid ** 2).mean(0))
    base[0] = 1.0
    base = np.maximum(base, 0.005)
    prior.conf_coef.copy_(torch.tensor(coef, dtype=torch.float32))
    prior.s3d.fill_(s3d)
    prior.base.copy_(torch.tensor(base, dtype=torch.float32))
    sigma = prior(torch.from_numpy(d["inputs"])).numpy()
    z = (resid / sigma)[:, 1:].reshape(len(resid), -1)
    rng = np.random.default_rng(seed)
    sel = rng.permutation(len(z))[:max_samples]
    t0 = time.time()
    g = fit_gmm(z[sel], n_components, seed=seed)
    log(f"[gmm] EM on {len(sel)} x {z.shape[1]}: {g.n_iter} iterations, mean log-lik {g.log_likelihood:.2f}, "
        f"weights {np.round(g.weights, 3).tolist()} ({time.time() - t0:.0f} s)")
    report = {"conf_sigma_coef": coef.tolist(), "conf_sigma_table": table, "s3d_m": s3d,
              "encoder_residual_std_mm": (1000 * base).round(1).tolist(),
              "gmm_weights": g.weights.tolist(), "gmm_loglik": g.log_likelihood,
              "gmm_iterations": g.n_iter, "gmm_samples": int(len(sel)),
              "normalised_residual_var_mean": float(z.var(0).mean())}
    return {"weights": g.weights, "means": g.means, "covs": g.covs}, report


# ----------------------------------------------------------------------------- stage 3
def train_denoiser(bundle, feat, mu, sigma, pose3d, epochs, batch, lr, ckpt: Path, resume, seed,
                   samples_per_epoch=None, log=print):
    den = bundle.denoiser
    torch.manual_seed(seed)
    cfg = bundle.config["diffusion"]
    n_steps = cfg["n_steps"]
    abar = torch.tensor(make_schedule(n_steps, cfg["schedule"]), dtype=torch.float32)
    g = bundle.gmm
    w = torch.tensor(g["weights"], dtype=torch.float64)
    g_means = torch.tensor(g["means"], dtype=torch.float32)
    g_chol = torch.tensor(np.linalg.cholesky(g["covs"]), dtype=torch.float32)
    gt = torch.from_numpy(pose3d)
    opt = torch.optim.Adam(den.parameters(), lr=lr)
    start, history = 0, []
    if resume and ckpt.is_file():
        start, history = _load_ckpt(ckpt, den, opt)
        log(f"[denoiser] resumed at epoch {start}")
    n = len(gt)
    per_epoch = min(n, samples_per_epoch or n)
    iters = per_epoch // batch
    total = iters * epochs
    t0 = time.time()
    for ep in range(start, epochs):
        den.train()
        perm = torch.randperm(n)[:per_epoch]
        run = 0.0
        bar = tqdm(range(iters), desc=f"denoiser ep {ep + 1}/{epochs}", leave=False, mininterval=5)
        for it in bar:
            for pg in opt.param_groups:
                pg["lr"] = _lr_at(ep * iters + it, total, lr)
            idx = perm[it * batch:(it + 1) * batch]
            b = len(idx)
            f, m, s = feat[idx].float(), mu[idx], sigma[idx]
            s0 = (gt[idx] - m) / s
            s0[:, 0] = 0.0
            c = torch.multinomial(w, b, replacement=True)
            xi = torch.matmul(g_chol[c], torch.randn(b, g_means.shape[1], 1)).squeeze(-1)
            zero = torch.zeros(b, 1, 3)
            m_c = torch.cat([zero, g_means[c].reshape(b, -1, 3)], 1)
            xi = torch.cat([zero, xi.reshape(b, -1, 3)], 1)
            k = torch.randint(1, n_steps + 1, (b,))
            s_k = forward_diffuse(s0, k, abar, m_c, xi)
            pred = den(s_k, k, f, m, s)
            err = (pred[:, 1:] - s0[:, 1:]) * s[:, 1:]  # metres
            loss = (err ** 2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(den.parameters(), 1.0)
            opt.step()
            run += loss.item()
            bar.set_postfix(rmse=f"{1000 * math.sqrt(run / (it + 1)):.1f}mm")
        history.append({"epoch": ep + 1, "train_rmse_mm": 1000 * math.sqrt(run / max(iters, 1)),
                        "wall_s": time.time() - t0})
        log(f"[denoiser] epoch {ep + 1}/{epochs} x0 rmse {1000 * math.sqrt(run / max(iters, 1)):.1f} mm "
            f"({time.time() - t0:.0f} s)")
        _save_ckpt(ckpt, model=den.state_dict(), opt=opt.state_dict(), epoch=ep + 1, history=history,
                   torch_rng=torch.get_rng_state())
    den.eval()
    return history


# ----------------------------------------------------------------------------- sampling helper
@torch.no_grad()
def run_sampler(sampler, inputs: Inputs, idx=None, batch=512, seed=0):
    """Run a DiffPoseSampler over samples with seeded noise; numpy (mean, cov, hyps)."""
    idx = np.arange(len(inputs)) if idx is None else np.asarray(idx)
    rng = np.random.default_rng(seed)
    means, covs, hyps = [], [], []
    for i in tqdm(range(0, len(idx), batch), desc=f"sample s{sampler.steps} n{sampler.n_hyp}",
                  leave=False, mininterval=5):
        j = idx[i:i + batch]
        noise = torch.from_numpy(rng.standard_normal((len(j), sampler.n_hyp, NUM_JOINTS, 3)).astype(np.float32))
        u = torch.from_numpy(rng.random((len(j), sampler.n_hyp)).astype(np.float32))
        m, c, h = sampler(inputs(torch.from_numpy(j)), noise, u)
        means.append(m.numpy())
        covs.append(c.numpy())
        hyps.append(h.numpy())
    return np.concatenate(means), np.concatenate(covs), np.concatenate(hyps)


def write_json(obj, path):
    from .model_io import save_json
    save_json(json.loads(json.dumps(obj, default=float)), path)
