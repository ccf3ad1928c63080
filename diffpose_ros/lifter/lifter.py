"""High-level lifter shared by the offline tool (diffpose-lift), the evaluation and the ROS node.

Lifter.lift(keypoints_px (P,17,2), conf (P,17), K (3,3), track_ids, stamp) -> LiftResult with absolute
camera-frame positions and covariances, root-relative ones, the root and its covariance, and the
N hypotheses. The network part is any `runner` (keypoints, init_noise, kernel_u) -> (mean, cov,
hyps) in numpy, e.g. an ONNX/TensorRT session; by default the torch DiffPoseSampler. Noise comes
from the lifter's own seeded numpy Generator so that every backend sees the same random inputs.

After the runner: the root is placed by a robust fit of the reprojection (placement.py; the 2D
uncertainty from the detector's fitted model, detector/uncertainty.py), every hypothesis is placed
by its own root too (so the absolute covariance carries the pose-dependent root uncertainty and its
correlation with each joint); when the floor is known (`ground`: the camera's height and tilt)
the body is rescaled to stand on it (ground.py); and calibration.py turns the raw terms into the
published covariances with the calibration of this (steps, N).
"""
from dataclasses import dataclass

import numpy as np
import torch

from .. import camera
from ..detector.uncertainty import keypoint_box_diagonal, keypoint_sigma_px
from ..paths import lifter_bundle
from ..skeleton import NUM_JOINTS
from .calibration import CovarianceModel, PoseTypicality, absolute_hypothesis_cov, reprojection_score, select_entry
from .ground import Ground, apply_floor
from .model_io import load_bundle
from .placement import place_hypotheses, place_root
from .sampler import DiffPoseSampler
from .windows import TrackWindows

AGGREGATIONS = ("sampler", "reprojection")


@dataclass
class LiftResult:
    positions: np.ndarray       # (P,17,3) absolute, camera frame, metres
    positions_rel: np.ndarray   # (P,17,3) root-relative
    covariance: np.ndarray      # (P,17,3,3) absolute (root uncertainty, its correlation, body size)
    covariance_rel: np.ndarray  # (P,17,3,3)
    root: np.ndarray            # (P,3)
    root_cov: np.ndarray        # (P,3,3)
    hypotheses: np.ndarray      # (P,N,17,3) root-relative
    # (P,) variance of the relative body-size error delta, the part size_var * X X^T of every
    # absolute covariance (X = the joint's position): constant over a track, see filter/
    size_var: np.ndarray
    # (P,) bool: the body's size (and so its distance) came from the floor (ground.py)
    ground_used: np.ndarray | None = None
    # (P,) the part of size_var that is the same in every frame of a track: all of it for the
    # typical-adult size; with the floor only the prior's share (ground.apply_floor,
    # track_share), the rest is the floor measurement's own noise, new in every frame
    size_var_track: np.ndarray | None = None

    def __post_init__(self):
        if self.size_var_track is None:
            self.size_var_track = self.size_var

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


def sigma_2d_norm(kp_px, conf, K):
    """Per-axis 2D keypoint std (P,J) in normalised image units, from the detector's model;
    K (3,3) or one per person (P,3,3)."""
    K = np.asarray(K, np.float64)
    sigma_px = keypoint_sigma_px(conf, keypoint_box_diagonal(kp_px, conf))
    return sigma_px / (0.5 * (K[..., 0, 0] + K[..., 1, 1]))[..., None]


def select_by_reprojection(hyps, root, kp_norm):
    """Per joint, the hypothesis whose reprojection at the placed root lies closest to the 2D
    keypoint (D3DP's joint-wise selection; the root is our own estimate, never the truth)."""
    pts = hyps + root[:, None, None]
    z = np.maximum(pts[..., 2], 1e-3)
    err = np.linalg.norm(pts[..., :2] / z[..., None] - kp_norm[:, None], axis=-1)  # (P,N,J)
    best = err.argmin(axis=1)  # (P,J)
    sel = np.take_along_axis(hyps, best[:, None, :, None], axis=1)[:, 0]
    return sel - sel[:, :1]


class Lifter:
    def __init__(self, weights_dir=None, steps: int = 5, n_hyp: int = 5, runner=None, seed: int = 0,
                 forget_after: int = 30, aggregation: str = "sampler", bundle=None):
        """forget_after: a track not seen for this many lift() calls loses its temporal window.
        aggregation: "sampler" (the pose the sampler returns: its configured mean) or
        "reprojection" (joint-wise selection of the hypothesis that best explains the 2D).
        bundle: an already loaded Bundle instead of weights_dir (evaluation of fresh models)."""
        if bundle is None:
            self.weights_dir = lifter_bundle(weights_dir)
            bundle = load_bundle(self.weights_dir)
        else:
            self.weights_dir = bundle.path
        self.temporal, self.window = bundle.temporal, bundle.window
        self.shrinkage_n0 = float(bundle.config["covariance"]["shrinkage_n0"])
        self.calibration = bundle.calibration or {}
        self.typicality = PoseTypicality.from_calibration(self.calibration)   # None: no atypicality widening
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self.aggregation = aggregation
        self._bundle = bundle
        self.runner = None
        self.steps = self.n_hyp = None
        self.set_sampling(int(steps), int(n_hyp), runner)
        self.rng = np.random.default_rng(seed)
        self._windows = TrackWindows(self.window, bundle.window_fps, forget_after)

    def set_sampling(self, steps: int, n_hyp: int, runner=None):
        """Use K = steps and N = n_hyp from the next lift() on. N needs no new runner (the graph
        takes any N); a new K needs a runner for it: `runner` (its steps must be K), or the
        default torch one is rebuilt. The calibration of the new setting is picked here."""
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
        self.steps, self.n_hyp = steps, n_hyp
        entry, key = select_entry(self.calibration, steps, n_hyp)
        self.covariance_model = CovarianceModel(entry, key)

    @property
    def mirror(self) -> bool:
        """The sampler lifts its odd hypotheses from the input's mirror image (sampler.py; the
        bundle's config["sampling"]["mirror"]); a runner built for this bundle does the same."""
        return self._bundle.mirror

    @property
    def calibration_source(self):
        """Which calibration entry serves the current (steps, N) (diagnostics); None: none."""
        return self.covariance_model.key

    # ------------------------------------------------------------------ helpers
    def reset(self):
        self._windows.reset()

    # ------------------------------------------------------------------ main entry
    def lift(self, keypoints_px, conf, K, track_ids=None, ground: Ground | None = None,
             stamp: float | None = None) -> LiftResult:
        """ground: the floor in the camera frame (camera height and tilt known): the body's size
        from its feet (ground.py); None: the typical size, its ambiguity in the covariance.
        stamp: the image's time in seconds, on which the temporal model builds each track's
        window (windows.py: at the training rate for a track at or below it, its last frames for
        a faster one). None: every call is the next frame at the training rate.
        Without track_ids every person is a single frame (its window repeats it)."""
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
        if stamp is not None and not np.isfinite(stamp):
            raise ValueError(f"stamp must be a finite time in seconds, got {stamp!r}")
        P, N = len(kp), self.n_hyp
        if P == 0:
            z3 = np.zeros((0, NUM_JOINTS, 3))
            z33 = np.zeros((0, NUM_JOINTS, 3, 3))
            return LiftResult(z3, z3, z33, z33, np.zeros((0, 3)), np.zeros((0, 3, 3)),
                              np.zeros((0, N, NUM_JOINTS, 3)), np.zeros(0), np.zeros(0, bool))
        conf = np.clip(conf, 0.0, 1.0)
        kn = camera.normalize(kp, K)
        frames = np.concatenate([kn, conf[..., None]], -1).astype(np.float32)
        if not self.temporal:
            net_in = frames
        elif track_ids is None:
            net_in = np.repeat(frames[:, None], self.window, axis=1)
        else:
            net_in = self._windows(frames, track_ids, stamp)
        noise = self.rng.standard_normal((P, N, NUM_JOINTS, 3)).astype(np.float32)
        u = self.rng.random((P, N)).astype(np.float32)
        mean, hyp_cov, hyps = (np.asarray(a, np.float64) for a in self.runner(net_in, noise, u))
        if not (np.isfinite(mean).all() and np.isfinite(hyp_cov).all() and np.isfinite(hyps).all()):
            raise RuntimeError("lifter network produced NaN/inf; check the runner / weights "
                               f"({self.weights_dir})")
        return self.compose(kn, sigma_2d_norm(kp, conf, K), conf, mean, hyp_cov, hyps, ground)

    def compose(self, kn, sigma_n, conf, mean, hyp_cov, hyps, ground: Ground | None = None) -> LiftResult:
        """Placement and published covariances from the sampler's raw outputs (numpy)."""
        t = self.raw_terms(kn, sigma_n, conf, mean, hyp_cov, hyps, ground)
        model = self.covariance_model
        kw = {"size_w": t.get("size_w"), "used": t.get("ground_used"), "atyp": t.get("atyp")}
        cov_rel = model.relative(t["hyp_cov"], t["pose"], t["chi"], **kw)
        cov_abs = model.absolute(t["hyp_cov_abs"], t["cov_t2d"], t["positions"], t["chi"], **kw)
        used = t.get("ground_used", np.zeros(len(t["pose"]), bool))
        if "scale" in t:
            hyps = hyps * t["scale"][:, None, None, None]
        size_var = model.size_variance(t["chi"], len(t["pose"]), **kw)
        return LiftResult(t["positions"], t["pose"], cov_abs, cov_rel, t["root"], cov_abs[:, 0], hyps,
                          size_var, used, size_var * t.get("track_share", 1.0))

    def raw_terms(self, kn, sigma_n, conf, mean, hyp_cov, hyps, ground: Ground | None = None) -> dict:
        """Everything calibration.py combines: the pose (after aggregation), its root and the 2D
        part of the root's covariance, the hypotheses' relative and absolute covariances, and
        how well the placed pose reprojects onto its keypoints (chi), how unlike the training
        poses it is (atyp, where the calibration has a PoseTypicality); with a `ground`, all of it
        rescaled by the floor (ground.apply_floor)."""
        # the root from the 2D uncertainty alone (why not the hypotheses' spread: placement.py);
        # the pose's part of the root uncertainty enters through the hypotheses' own roots
        root, cov_t2d, roots = place_hypotheses(kn, sigma_n, mean, hyps, conf)
        if self.aggregation == "reprojection":
            mean = select_by_reprojection(hyps, root, kn)
            root, cov_t2d = place_root(kn, sigma_n, mean, conf)
        if not (np.isfinite(root).all() and np.isfinite(cov_t2d).all()):
            raise RuntimeError("root placement produced NaN/inf (degenerate 2D keypoints?)")
        n = hyps.shape[1]
        lam = self.shrinkage_n0 / (max(n - 1, 0) + self.shrinkage_n0)
        pos = mean + root[:, None]
        t = {"pose": mean, "root": root, "positions": pos, "cov_t2d": cov_t2d, "hyp_cov": hyp_cov,
             "hyp_cov_abs": absolute_hypothesis_cov(hyp_cov, hyps, roots, lam),
             "chi": reprojection_score(pos, kn, sigma_n, conf)}
        if self.typicality is not None:
            t["atyp"] = self.typicality(mean)
        return t if ground is None else apply_floor(t, sigma_n, conf, ground)
