"""camera image -> 2D detector -> tracker -> DiffPose lifter -> people in 3D (ROS-free).

The ROS node, the demo and the offline tools all run images through PosePipeline.process, so
there is one code path from pixels to published skeletons.

Sampling settings change between two frames: ``set_sampling(steps, n_hyp)`` may be called from
any thread; process() applies a new N at its next frame (no new graph: N is a dynamic axis) and
a new step count as soon as the backends.SamplerManager has its graph ready (built in the
background while the current one keeps serving).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .people import InvalidPoseError, Person3D, check_person

log = logging.getLogger("diffpose_ros.pipeline")


@dataclass
class Intrinsics:
    """Pinhole intrinsics and (optional) plumb-bob / rational-polynomial distortion."""
    K: np.ndarray                       # (3, 3)
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    width: int = 0
    height: int = 0

    def __post_init__(self):
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.D = np.asarray(self.D, dtype=np.float64).reshape(-1)
        fx, fy = self.K[0, 0], self.K[1, 1]
        if not (np.isfinite(self.K).all() and fx > 0 and fy > 0):
            raise ValueError(f"invalid intrinsics: fx={fx}, fy={fy} (must be finite and > 0)")
        if not np.isfinite(self.D).all():
            raise ValueError("invalid distortion coefficients (non-finite)")

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> "Intrinsics":
        f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2)
        return cls(K=np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]]),
                   width=width, height=height)

    def undistort(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) distorted pixels -> ideal pinhole pixels under the same K."""
        if self.D.size == 0 or not np.any(self.D):
            return uv
        pts = np.asarray(uv, dtype=np.float64).reshape(-1, 1, 2)
        out = cv2.undistortPoints(pts, self.K, self.D, P=self.K)
        return out.reshape(np.shape(uv))


@dataclass
class PipelineConfig:
    score_threshold: float = 0.4
    min_keypoint_conf: float = 0.3
    min_keypoints: int = 8
    publish_unreliable: bool = True
    max_people: int = 10


@dataclass
class FrameResult:
    people: list[Person3D]
    removed_track_ids: list[int]
    timings: dict[str, float]           # seconds: detect, lift, total
    rejected: int = 0                   # people dropped by the numerical guards


class TimedRunner:
    """Calls a sampler backend for the lifter and remembers how long the last call took."""

    def __init__(self, backend):
        self.backend = backend
        self.name = f"{backend.name} ({backend.device})"
        self.steps = backend.steps
        self.last_s = 0.0

    def __call__(self, keypoints, init_noise, kernel_u):
        t0 = time.perf_counter()
        out = self.backend.run(keypoints, init_noise, kernel_u)
        self.last_s = time.perf_counter() - t0
        return out


class PosePipeline:
    """Holds the detector, the tracker and the lifter; process() handles one image."""

    def __init__(self, detector, tracker, lifter, config: PipelineConfig | None = None,
                 sampler_manager=None):
        self.detector = detector
        self.tracker = tracker
        self.lifter = lifter
        self.config = config or PipelineConfig()
        self.sampler_manager = sampler_manager   # backends.SamplerManager, or None
        self._sampling_lock = threading.Lock()
        self._wanted_sampling: tuple[int, int] | None = None

    @classmethod
    def create(cls, detector_model=None, backend="auto", lifter_weights=None, steps=5, n_hyp=5,
               threads=2, fp16=True, seed=0, config: PipelineConfig | None = None, logger=None,
               cancel: threading.Event | None = None, cache_dir=None):
        """Build the default stack: YOLO pose (ONNX Runtime) + tracker + DiffPose lifter on `backend`.

        Setting the Event `cancel` stops the build between its stages and kills an export in
        progress (backends.Cancelled is raised)."""
        from .backends import SamplerManager, check_cancel
        from .detector.tracker import Tracker
        from .detector.yolo_pose import YoloPoseDetector
        from .paths import WEIGHTS_DIR
        config = config or PipelineConfig()
        weights = lifter_weights or WEIGHTS_DIR / "frame"
        check_cancel(cancel, "start-up")
        detector = YoloPoseDetector(model_path=detector_model or None,
                                    score_threshold=config.score_threshold, threads=threads)
        check_cancel(cancel, "start-up")
        manager = SamplerManager(backend, weights, max_people=config.max_people, threads=threads,
                                 fp16=fp16, cache_dir=cache_dir, cancel=cancel, logger=logger)
        runner = TimedRunner(manager.load(steps))
        check_cancel(cancel, "start-up")
        from .lifter.lifter import Lifter
        lifter = Lifter(weights_dir=weights, steps=steps, n_hyp=n_hyp, runner=runner, seed=seed)
        return cls(detector, Tracker(), lifter, config, sampler_manager=manager)

    @property
    def backend_name(self) -> str:
        runner = getattr(self.lifter, "runner", None)
        return getattr(runner, "name", "torch (cpu)")

    # ---------------------------------------------------------------- sampling settings
    def set_sampling(self, steps: int, n_hyp: int) -> None:
        """Ask for K=steps and N=n_hyp (thread-safe, returns at once). N applies from the next
        frame; a new K once its graph is ready (the current one serves until then)."""
        with self._sampling_lock:
            self._wanted_sampling = (int(steps), int(n_hyp))
        if self.sampler_manager is not None:
            self.sampler_manager.request(int(steps))

    def apply_sampling(self) -> None:
        """Between two frames (process() calls it): switch to the wanted N, and to the wanted
        K once its graph is ready. The published num_hypotheses/diffusion_steps are always
        what computed the frame."""
        with self._sampling_lock:
            wanted = self._wanted_sampling
        if wanted is None:
            return
        steps, n_hyp = wanted
        runner = None
        if self.sampler_manager is not None:
            ready = self.sampler_manager.take_ready()
            runner = TimedRunner(ready) if ready is not None else None
            steps = runner.steps if runner is not None else self.lifter.steps
        if runner is not None or (steps, n_hyp) != (self.lifter.steps, self.lifter.n_hyp):
            self.lifter.set_sampling(steps, n_hyp, runner)  # without a manager: its torch runner

    def sampling_status(self) -> dict[str, str]:
        """What computes the frames now, for diagnostics (strings)."""
        out = {"diffusion_steps": str(self.lifter.steps), "num_hypotheses": str(self.lifter.n_hyp)}
        if self.sampler_manager is not None:
            out.update(self.sampler_manager.status())
        return out

    def close(self, timeout: float = 1.0) -> bool:
        """Stop background work (a graph build in progress is killed). True when none runs."""
        return self.sampler_manager.close(timeout) if self.sampler_manager is not None else True

    def process(self, image: np.ndarray, intrinsics: Intrinsics, stamp_s: float) -> FrameResult:
        from .detector.coco_to_h36m import coco_to_h36m
        self.apply_sampling()
        cfg = self.config
        t0 = time.perf_counter()
        # the detector applies the threshold itself, so a run-time change (lower too) takes effect
        self.detector.score_threshold = cfg.score_threshold
        detections = sorted(self.detector.detect(image), key=lambda d: -d.score)[: cfg.max_people]
        tracks = self.tracker.update(detections, stamp_s)
        removed = list(self.tracker.removed_ids())
        t1 = time.perf_counter()
        people: list[Person3D] = []
        rejected = 0
        if tracks:
            kp_coco = np.stack([t.detection.keypoints for t in tracks])
            conf_coco = np.stack([t.detection.keypoint_conf for t in tracks])
            kp, conf = coco_to_h36m(kp_coco, conf_coco)
            reliable = (conf >= cfg.min_keypoint_conf).sum(axis=1) >= cfg.min_keypoints
            keep = np.ones(len(tracks), bool) if cfg.publish_unreliable else reliable
            idx = np.flatnonzero(keep)
            if idx.size:
                kp_ideal = intrinsics.undistort(kp[idx])
                result = self.lifter.lift(kp_ideal, conf[idx], intrinsics.K,
                                          track_ids=[tracks[i].track_id for i in idx])
                for j, i in enumerate(idx):
                    det = tracks[i].detection
                    person = Person3D(
                        track_id=tracks[i].track_id, score=float(det.score),
                        positions=result.positions[j], covariance=result.covariance[j],
                        root=result.root[j], root_covariance=result.root_cov[j],
                        keypoints_2d=kp[i], keypoint_conf=conf[i],
                        num_hypotheses=self.lifter.n_hyp, diffusion_steps=self.lifter.steps,
                        reliable=bool(reliable[i]), box=np.asarray(det.box, dtype=np.float64),
                        positions_rel=result.positions_rel[j], hypotheses=result.hypotheses[j])
                    try:
                        people.append(check_person(person))
                    except InvalidPoseError as err:
                        rejected += 1
                        log.warning("dropped track %d: %s", person.track_id, err)
        t2 = time.perf_counter()
        sampler = getattr(self.lifter.runner, "last_s", 0.0) if tracks else 0.0
        return FrameResult(people, removed, {"detect": t1 - t0, "lift": t2 - t1, "sampler": sampler,
                                             "total": t2 - t0}, rejected)
