"""High-level lifter shared by the offline tool (diffpose-lift) and the ROS node.

Lifter.lift(keypoints_px (P,17,2), conf (P,17), K (3,3), track_ids) -> LiftResult with absolute
camera-frame positions and covariances (root uncertainty included), root-relative ones, the root
and its covariance, and the N hypotheses. The network part is any `runner`
(keypoints, init_noise, kernel_u) -> (mean, cov, hyps) in numpy, e.g. an ONNX/TensorRT session;
by default the torch DiffPoseSampler. Noise comes from the lifter's own seeded numpy Generator so
that every backend sees exactly the same random inputs. The runner returns the uncalibrated
covariance; the calibration scale of the current (steps, N) is applied here, so one runner per
step count serves every N (set_sampling changes N between two lift() calls).
"""
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..paths import WEIGHTS_DIR
from ..skeleton import NUM_JOINTS
from .initial import SIGMA_REL_RANGE, person_scale_2d
from .model_io import load_bundle
from .placement import normalise_px, place_root
from .sampler import DiffPoseSampler, calibration_scale


@dataclass
class LiftResult:
    positions: np.ndarray       # (P,17,3) absolute, camera frame, metres
    positions_rel: np.ndarray   # (P,17,3) root-relative
    covariance: np.ndarray      # (P,17,3,3) absolute (relative + root covariance)
    covariance_rel: np.ndarray  # (P,17,3,3)
    root: np.ndarray            # (P,3)
    root_cov: np.ndarray        # (P,3,3)
    hypotheses: np.ndarray      # (P,N,17,3) root-relative

    def __len__(self):
        return len(self.positions)


class TorchRunner:
    """Default runner: the torch DiffPoseSampler on CPU."""

    def __init__(self, sampler: DiffPoseSampler):
        self.sampler = sampler
        self.steps = sampler.steps

    @torch.no_grad()
    def __call__(self, keypoints, init_noise, kernel_u):
        out = self.sampler(torch.from_numpy(np.ascontiguousarray(keypoints, np.float32)),
                           torch.from_numpy(np.ascontiguousarray(init_noise, np.float32)),
                           torch.from_numpy(np.ascontiguousarray(kernel_u, np.float32)))
        return tuple(o.numpy() for o in out)


class Lifter:
    def __init__(self, weights_dir=None, steps: int = 5, n_hyp: int = 5, runner=None, seed: int = 0,
                 forget_after: int = 30, size_sigma: float = 0.1):
        """forget_after: a track not seen for this many lift() calls loses its buffer.
        size_sigma: relative std of the person's true size versus the training skeleton. Monocular
        depth scales with the assumed size (the training mocap has ONE skeleton, ~1.55 m tall), so
        the root covariance gets size_sigma^2 * root root^T along the viewing ray."""
        self.weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR / "frame"
        bundle = load_bundle(self.weights_dir)
        self.temporal, self.window = bundle.temporal, bundle.window
        self.conf_coef = bundle.prior.conf_coef.numpy().astype(np.float64)
        self._bundle = bundle
        self.runner = None
        self.steps = self.n_hyp = None
        self.set_sampling(int(steps), int(n_hyp), runner)
        self.rng = np.random.default_rng(seed)
        self.forget_after = int(forget_after)
        self.size_sigma = float(size_sigma)
        self._buffers = OrderedDict()  # track id -> [window array (T,17,3), last call index]
        self._calls = 0

    def set_sampling(self, steps: int, n_hyp: int, runner=None):
        """Use K=steps and N=n_hyp from the next lift() on. N needs no new runner; a new K needs
        a runner for it: ``runner`` (its steps must be K), or the default torch one is rebuilt."""
        steps, n_hyp = int(steps), int(n_hyp)
        if n_hyp < 1:
            raise ValueError(f"n_hyp must be >= 1, got {n_hyp}")
        if runner is None and (self.runner is None or steps != self.steps):
            if self.runner is not None and not isinstance(self.runner, TorchRunner):
                raise ValueError(f"steps {self.steps} -> {steps} needs a runner built for {steps} steps")
            runner = TorchRunner(DiffPoseSampler(self._bundle, steps, n_hyp))
        if runner is not None:
            have = getattr(runner, "steps", steps)
            if have != steps:
                raise ValueError(f"runner computes {have} steps, asked for {steps}")
            self.runner = runner
        self.var_scale, self.calibration_source = calibration_scale(
            self._bundle.config, self._bundle.calibration, steps, n_hyp)
        self.steps, self.n_hyp = steps, n_hyp

    # ------------------------------------------------------------------ helpers
    def reset(self):
        self._buffers.clear()

    def sigma_norm(self, kp_norm, conf):
        """Per-axis 2D std (normalised units) of each keypoint from its confidence."""
        c = self.conf_coef
        rel = np.clip(np.exp(c[0] + c[1] * conf + c[2] * conf * conf), *SIGMA_REL_RANGE)
        return rel * person_scale_2d(kp_norm, conf)[:, None]

    def _windows(self, frames, track_ids):
        """(P,T,17,3) causal windows; updates the per-track ring buffers."""
        self._calls += 1
        if track_ids is None:
            return np.repeat(frames[:, None], self.window, axis=1)
        out = np.empty((len(frames), self.window, NUM_JOINTS, 3), np.float32)
        for i, (tid, f) in enumerate(zip(track_ids, frames)):
            entry = self._buffers.pop(tid, None)
            if entry is None:  # track start: replicate-pad with the first frame
                buf = np.repeat(f[None], self.window, axis=0)
            else:
                buf = np.concatenate([entry[0][1:], f[None]], axis=0)
            self._buffers[tid] = [buf, self._calls]
            out[i] = buf
        stale = [t for t, (_, seen) in self._buffers.items() if self._calls - seen >= self.forget_after]
        for t in stale:
            del self._buffers[t]
        return out

    # ------------------------------------------------------------------ main entry
    def lift(self, keypoints_px, conf, K, track_ids=None) -> LiftResult:
        kp = np.asarray(keypoints_px, np.float64)
        conf = np.asarray(conf, np.float64)
        K = np.asarray(K, np.float64)
        if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2):
            raise ValueError(f"keypoints_px must be (P, {NUM_JOINTS}, 2), got {kp.shape}")
        if conf.shape != kp.shape[:2]:
            raise ValueError(f"conf must be (P, {NUM_JOINTS}) = {kp.shape[:2]}, got {conf.shape}")
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"K must be a finite 3x3 intrinsic matrix with fx, fy > 0, got {K.tolist()}")
        if not (np.isfinite(kp).all() and np.isfinite(conf).all()):
            raise ValueError("keypoints_px / conf contain NaN or inf")
        if track_ids is not None:
            track_ids = [int(t) for t in track_ids]
            if len(track_ids) != len(kp):
                raise ValueError(f"track_ids has {len(track_ids)} entries for {len(kp)} people")
            if len(set(track_ids)) != len(track_ids):
                raise ValueError(f"duplicate track ids in one frame: {track_ids}")
        P, N = len(kp), self.n_hyp
        if P == 0:
            z3 = np.zeros((0, NUM_JOINTS, 3))
            z33 = np.zeros((0, NUM_JOINTS, 3, 3))
            return LiftResult(z3, z3, z33, z33, np.zeros((0, 3)), np.zeros((0, 3, 3)),
                              np.zeros((0, N, NUM_JOINTS, 3)))
        conf = np.clip(conf, 0.0, 1.0)
        kn = normalise_px(kp, K)
        frames = np.concatenate([kn, conf[..., None]], -1).astype(np.float32)
        net_in = self._windows(frames, track_ids) if self.temporal else frames
        noise = self.rng.standard_normal((P, N, NUM_JOINTS, 3)).astype(np.float32)
        u = self.rng.random((P, N)).astype(np.float32)
        mean, cov, hyps = (np.asarray(a, np.float64) for a in self.runner(net_in, noise, u))
        cov = cov * self.var_scale[None, :, None, None]  # calibration of this (steps, N)
        if not (np.isfinite(mean).all() and np.isfinite(cov).all() and np.isfinite(hyps).all()):
            raise RuntimeError("lifter network produced NaN/inf; check the runner / weights "
                               f"({self.weights_dir})")
        root, root_cov = place_root(kn, self.sigma_norm(kn, conf), mean, cov)
        root_cov = root_cov + self.size_sigma ** 2 * root[:, :, None] * root[:, None, :]
        cov_abs = cov + root_cov[:, None]
        pos = mean + root[:, None]
        if not (np.isfinite(root).all() and np.isfinite(root_cov).all()):
            raise RuntimeError("root placement produced NaN/inf (degenerate 2D keypoints?)")
        return LiftResult(pos, mean, cov_abs, cov, root, root_cov, hyps)
