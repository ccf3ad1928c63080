"""Run lifters over a fixed evaluation set and score them (numpy + torch; no ROS).

One code path with the node: the DiffPose rows go through Lifter (placement, aggregation,
calibration) exactly as diffpose-lift and the node do; the sampler runs in torch with seeded noise.
An evaluation set is a dict of arrays as the data generator's `fixed_set` returns it: `inputs`
(S,17,3) or (S,T,17,3), `keypoints_px` (S,17,2), `conf` (S,17), `K` (S,3,3), `pose3d` (S,17,3)
root-relative, `root` (S,3); for the floor (ground.py) also `cam_R` (S,3,3) world (Y up) -> camera
and `cam_height` (S,) metres above the floor.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..skeleton import NUM_JOINTS
from .ground import Ground, apply_floor
from .lifter import Lifter, sigma_2d_norm
from .metrics import LEVELS, coverage, gaussian_nll, mahalanobis_sq, pa_mpjpe, per_joint_error
from .sampler import DiffPoseSampler


def placement_inputs(d: dict, sl=slice(None)):
    """Normalised keypoints and their 2D std of samples `sl`, each with its own intrinsics."""
    from .. import camera
    kp, conf, K = d["keypoints_px"][sl], d["conf"][sl], d["K"][sl]
    return camera.normalize(kp, K), sigma_2d_norm(kp, conf, K)


def ground_of(d: dict, sl=slice(None)) -> Ground:
    """The floor of samples `sl` in their camera frames: the world's up (R e_y) and the camera
    height, as the generator drew them."""
    return Ground(d["cam_R"][sl][:, :, 1], d["cam_height"][sl])


GROUND = "ground_"   # prefix of the floor-scaled terms in lift_set's output


def ground_terms(raw: dict) -> dict:
    """The floor-scaled raw terms of a lift_set(..., ground=True) output, under the plain names."""
    return {k[len(GROUND):]: v for k, v in raw.items() if k.startswith(GROUND)}


# Sampler chains per torch call. On 2 cores a call of 160 to 320 chains costs about 0.57x per
# chain what a call of 5120 costs (0.51 against 0.90 ms at K = 2: the activations then leave the
# caches); the noise is still drawn per `batch`, so the numbers do not depend on this.
CHAINS_PER_CALL = 320


@torch.no_grad()
def lift_set(bundle, d: dict, steps: int, n_hyp: int, aggregation: str = "sampler", start_step=None,
             sampler_aggregation=None, antithetic: bool = False, batch: int = 256, seed: int = 0,
             progress: bool = True, ground: bool = False, mirror=None) -> dict:
    """All per-sample outputs of one DiffPose setting on a fixed set: the raw terms of
    Lifter.raw_terms plus the hypotheses (every array (S, ...)). Per-sample intrinsics are used
    (each sample has its own camera). ground: also the same terms with the body scaled by the
    floor of each sample's camera (ground_of), under GROUND-prefixed keys (ground_terms).
    mirror: the sampler's mirror-image hypotheses on / off (None: as the bundle's config)."""
    return lift_set_nested(bundle, d, steps, [n_hyp], aggregation, start_step, sampler_aggregation,
                           antithetic, batch, seed, progress, ground, mirror)[n_hyp]


@torch.no_grad()
def lift_set_nested(bundle, d: dict, steps: int, n_list, aggregation: str = "sampler", start_step=None,
                    sampler_aggregation=None, antithetic: bool = False, batch: int = 256, seed: int = 0,
                    progress: bool = True, ground: bool = False, mirror=None) -> dict:
    """lift_set for several N at once: {N: outputs}. The chains run once with the largest N;
    each N aggregates the first N chains of every sample, which are a draw of that N (the
    chains are independent), so the N share their draws and cost one run."""
    n_list = sorted(set(int(n) for n in n_list))
    n_max = n_list[-1]
    sampler = DiffPoseSampler(bundle, steps, n_max, start_step=start_step, aggregation=sampler_aggregation,
                              mirror=mirror)
    lifters = {n: Lifter(bundle=bundle, steps=steps, n_hyp=n, aggregation=aggregation, runner=lambda *a: None)
               for n in n_list}
    rng = np.random.default_rng(seed)
    parts = {n: [] for n in n_list}
    n_all = len(d["pose3d"])
    rows = max(1, CHAINS_PER_CALL // n_max)
    it = range(0, n_all, batch)
    for i in tqdm(it, desc=f"lift s{steps} n{n_max}", leave=False, mininterval=5, disable=not progress):
        sl = slice(i, min(i + batch, n_all))
        x = torch.from_numpy(np.ascontiguousarray(d["inputs"][sl], np.float32))
        b = len(x)
        noise = rng.standard_normal((b, n_max, NUM_JOINTS, 3)).astype(np.float32)
        if antithetic:  # hypothesis pairs (eps, -eps) with the same kernel: the mean's MC noise cancels
            noise[:, 1::2] = -noise[:, 0:(n_max // 2) * 2:2]
        u = rng.random((b, n_max)).astype(np.float32)
        if antithetic:
            u[:, 1::2] = u[:, 0:(n_max // 2) * 2:2]
        noise, u = torch.from_numpy(noise), torch.from_numpy(u)
        chains = [sampler.chain(x[j:j + rows], noise[j:j + rows], u[j:j + rows]) for j in range(0, b, rows)]
        hyps_all, first_all, prior_cov = (torch.cat(c) for c in zip(*chains))
        kp_norm, sigma_2d = placement_inputs(d, sl)
        for n in n_list:
            mean, hyp_cov = sampler.aggregate(hyps_all[:, :n], first_all[:, :n], prior_cov)
            mean, hyp_cov, hyps = (o.numpy().astype(np.float64) for o in (mean, hyp_cov, hyps_all[:, :n]))
            t = lifters[n].raw_terms(kp_norm, sigma_2d, d["conf"][sl], mean, hyp_cov, hyps)
            if ground:
                t.update({GROUND + k: v for k, v in apply_floor(t, sigma_2d, d["conf"][sl], ground_of(d, sl)).items()})
            t["hyps"] = hyps
            parts[n].append(t)
    return {n: {k: np.concatenate([p[k] for p in ps]) for k in ps[0]} for n, ps in parts.items()}


def publish(bundle, raw: dict, steps: int, n_hyp: int):
    """(cov_rel, cov_abs, calibration key) of raw terms (plain or ground_terms) under the
    bundle's calibration."""
    lifter = Lifter(bundle=bundle, steps=steps, n_hyp=n_hyp, runner=lambda *a: None)
    m = lifter.covariance_model
    kw = {"size_w": raw.get("size_w"), "used": raw.get("ground_used"), "atyp": raw.get("atyp")}
    return (m.relative(raw["hyp_cov"], raw["pose"], raw["chi"], **kw),
            m.absolute(raw["hyp_cov_abs"], raw["cov_t2d"], raw["positions"], raw["chi"], **kw), m.key)


def pose_metrics(pose_rel, d: dict, root=None) -> dict:
    """MPJPE / PA-MPJPE (mm) and, with a root, the root error (m and % of the true distance)."""
    gt = d["pose3d"]
    out = {"n": int(len(gt)), "mpjpe_mm": 1000 * float(per_joint_error(pose_rel, gt).mean()),
           "pa_mpjpe_mm": 1000 * float(pa_mpjpe(pose_rel, gt).mean()),
           "per_joint_mm": (1000 * per_joint_error(pose_rel, gt).mean(0)).round(1).tolist()}
    if root is not None:
        e = np.linalg.norm(root - d["root"], axis=-1)
        out["root_error_m"] = float(e.mean())
        out["root_error_pct_of_distance"] = 100 * float((e / np.linalg.norm(d["root"], axis=-1)).mean())
    return out


# People the lifter sees only in part (issue 13: the ellipsoids must hold for them too): the
# samples with at least this many of their 17 joints outside the image (or behind the camera),
# and those with at least this many self-occluded joints (data/noise.py's occlusion model).
TRUNCATED_JOINTS = 4
OCCLUDED_JOINTS = 3


def coverage_groups(d: dict) -> dict:
    """{name: boolean mask (S,)} of the partly seen people of an evaluation set (empty without
    the generator's `visible` / `occluded`, e.g. Human3.6M)."""
    groups = {}
    if "visible" in d:
        groups["truncated"] = (~np.asarray(d["visible"], bool)).sum(-1) >= TRUNCATED_JOINTS
    if "occluded" in d:
        groups["occluded"] = np.asarray(d["occluded"], bool).sum(-1) >= OCCLUDED_JOINTS
    return groups


def uncertainty_metrics(pose_rel, cov_rel, positions, cov_abs, d: dict) -> dict:
    """Coverage of the published 90 % (50 / 95 %) ellipsoids and NLL, root-relative and absolute;
    `groups`: the 90 % coverages again for the partly seen people (coverage_groups)."""
    err_rel = pose_rel - d["pose3d"]
    err_abs = positions - (d["pose3d"] + d["root"][:, None])
    d2_rel, d2_abs = mahalanobis_sq(err_rel, cov_rel), mahalanobis_sq(err_abs, cov_abs)
    groups = {name: {"n": int(m.sum()), "coverage_rel": coverage(d2_rel[m])["0.90"],
                     "coverage_abs": coverage(d2_abs[m], skip_root=False)["0.90"]}
              for name, m in coverage_groups(d).items() if m.any()}
    return {"coverage_rel": coverage(d2_rel), "coverage_abs": coverage(d2_abs, skip_root=False),
            "nll_rel": gaussian_nll(err_rel, cov_rel), "nll_abs": gaussian_nll(err_abs, cov_abs, skip_root=False),
            "groups": groups}


def radius_vs_error(cov, err, level: float = 0.9):
    """Per joint: the predicted 90 % radius of the isotropic-equivalent ball, sqrt(q90 tr(Sigma)/3),
    and the actual error length; flattened arrays in metres."""
    from scipy.stats import chi2
    q = chi2.ppf(level, 3)
    radius = np.sqrt(q * np.trace(cov, axis1=-2, axis2=-1) / 3)
    return radius.ravel(), np.linalg.norm(err, axis=-1).ravel()


__all__ = ["lift_set", "lift_set_nested", "ground_of", "ground_terms", "publish", "pose_metrics", "uncertainty_metrics", "coverage_groups", "radius_vs_error", "placement_inputs", "LEVELS"]
