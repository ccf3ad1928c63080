"""camera image -> 2D detector -> tracker -> DiffPose lifter -> per-track filter -> people in 3D
(ROS-free).

The ROS node, the demo and the offline tools all run images through PosePipeline.process, so
there is one code path from pixels to published skeletons. process() is detect_stage() then
lift_stage(); the node's pipeline_overlap runs the two on two threads, the detector one image
ahead (each stage keeps its own state, so the results are the same).

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

import numpy as np

from .camera import Intrinsics  # noqa: F401  (the camera model; re-exported for the pipeline's callers)
from .detector.follow import FollowConfig, Follower
from .filter.people_filter import FilterConfig, PeopleFilter
from .lifter.ground import Ground
from .people import Person3D, check_people

log = logging.getLogger("diffpose_ros.pipeline")


@dataclass
class PipelineConfig:
    score_threshold: float = 0.4
    min_keypoint_conf: float = 0.3
    min_keypoints: int = 8
    publish_unreliable: bool = True
    max_people: int = 10
    filter: FilterConfig = field(default_factory=FilterConfig)
    follow: FollowConfig = field(default_factory=FollowConfig)    # detect around tracked people only
    ground: Ground | None = None        # the floor in the camera frame: body size from the feet


@dataclass
class FrameResult:
    people: list[Person3D]              # measured people, then people predicted by the filter; all
                                        # passed check_person, their filter states included
    removed_track_ids: list[int]        # ids published before that are gone now
    timings: dict[str, float]           # seconds: detect, lift, filter, total
    rejected: int = 0                   # people dropped by the numerical guards
    predicted: int = 0                  # people published from the filter's prediction only
    gated: int = 0                      # lifts the filter's gate refused


@dataclass
class Detected:
    """What detect_stage() hands to lift_stage(): one image's tracked detections."""
    stamp_s: float
    people: list                        # (track id, Detection), highest score first
    removed: list[int]                  # track ids the tracker ended at this image
    detect_s: float                     # seconds in the detector and the tracker
    reset_lifter: bool = False          # tracking started over before this image (forget_tracks)


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
        self.filter = PeopleFilter(self.config.filter)
        self.follower = Follower(self.config.follow)
        self._followed_boxes = np.zeros((0, 4))   # boxes of the people tracked in the last frame
        self._last_seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # id -> (keypoints_2d, box)
        self.sampler_manager = sampler_manager   # backends.SamplerManager, or None
        self._sampling_lock = threading.Lock()
        self._wanted_sampling: tuple[int, int] | None = None
        self._lifter_reset_pending = False        # forget_tracks() -> the next lift_stage()

    @classmethod
    def create(cls, detector_model=None, backend="auto", lifter_weights=None, steps=5, n_hyp=5,
               threads=2, fp16=True, seed=0, config: PipelineConfig | None = None, logger=None,
               detector_options: dict | None = None, cancel: threading.Event | None = None,
               cache_dir=None):
        """Build the default stack: YOLO pose (ONNX Runtime) + tracker + DiffPose lifter on `backend`.

        ``detector_options``: more YoloPoseDetector arguments (input_size, letterbox_mode, ...).
        Setting the Event `cancel` stops the build between its stages and kills an export in
        progress (backends.Cancelled is raised)."""
        from .backends import SamplerManager, check_cancel
        from .detector.tracker import Tracker
        from .detector.yolo_pose import YoloPoseDetector
        from .paths import lifter_bundle
        config = config or PipelineConfig()
        weights = lifter_bundle(lifter_weights)
        check_cancel(cancel, "start-up")
        detector = YoloPoseDetector(model_path=detector_model or None,
                                    score_threshold=config.score_threshold, threads=threads,
                                    **(detector_options or {}))
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
        lifter = self.lifter
        kind = f"temporal, {lifter.window} frames" if getattr(lifter, "temporal", False) else "frame"
        out = {"lifter": f"{kind} ({getattr(lifter, 'weights_dir', '?')})",   # which bundle (lifter_weights)
               "diffusion_steps": str(lifter.steps), "num_hypotheses": str(lifter.n_hyp),
               # the covariance calibration serving them: this setting's own, or the nearest one's
               "calibration": str(getattr(lifter, "calibration_source", None) or "none"),
               # half the hypotheses from the input's mirror image (lifter/sampler.py)
               "mirror_image": "on" if getattr(lifter, "mirror", False) else "off"}
        if self.sampler_manager is not None:
            out.update(self.sampler_manager.status())
        return out

    def close(self, timeout: float = 1.0) -> bool:
        """Stop background work (a graph build in progress is killed). True when none runs."""
        return self.sampler_manager.close(timeout) if self.sampler_manager is not None else True

    def process(self, image: np.ndarray, intrinsics: Intrinsics, stamp_s: float) -> FrameResult:
        """One image through the whole chain (the two stages below, one after the other)."""
        return self.lift_stage(self.detect_stage(image, stamp_s), intrinsics)

    def detect_stage(self, image: np.ndarray, stamp_s: float) -> Detected:
        """Stage 1 of process(): detector and tracker. Touches only the detector's, the
        tracker's and follow mode's state, so it may run on the next image while lift_stage()
        runs on this one (the node's pipeline_overlap), as long as each stage runs in frame
        order on its own thread."""
        t0 = time.perf_counter()
        # the detector applies the threshold itself, so a run-time change (lower too) takes effect
        self.detector.score_threshold = self.config.score_threshold
        tracks, removed = self.detect_and_track(image, stamp_s)
        # the tracker replaces a Track's detection on the next image: keep this image's own
        people = [(t.track_id, t.detection) for t in tracks]
        reset, self._lifter_reset_pending = self._lifter_reset_pending, False
        return Detected(stamp_s, people, removed, time.perf_counter() - t0, reset)

    def lift_stage(self, detected: Detected, intrinsics: Intrinsics) -> FrameResult:
        """Stage 2 of process(): lifter, numerical guards and per-track filter for one
        detect_stage() result."""
        from .detector.coco_to_h36m import coco_to_h36m
        if detected.reset_lifter and self.lifter is not None:
            self.lifter.reset()
        self.apply_sampling()
        cfg = self.config
        t1 = time.perf_counter()
        tracks = detected.people
        people: list[Person3D] = []
        rejected = 0
        if tracks:
            kp_coco = np.stack([d.keypoints for _, d in tracks])
            conf_coco = np.stack([d.keypoint_conf for _, d in tracks])
            kp, conf = coco_to_h36m(kp_coco, conf_coco)
            reliable = (conf >= cfg.min_keypoint_conf).sum(axis=1) >= cfg.min_keypoints
            keep = np.ones(len(tracks), bool) if cfg.publish_unreliable else reliable
            idx = np.flatnonzero(keep)
            if idx.size:
                # lens distortion (or a rectified image's rotation) off: pinhole pixels under K
                kp_ideal = intrinsics.undistort(kp[idx])
                result = self.lifter.lift(kp_ideal, conf[idx], intrinsics.K,
                                          track_ids=[tracks[i][0] for i in idx], ground=cfg.ground,
                                          stamp=detected.stamp_s)
                lifted = []
                for j, i in enumerate(idx):
                    track_id, det = tracks[i]
                    lifted.append(Person3D(
                        track_id=track_id, score=float(det.score),
                        positions=result.positions[j], covariance=result.covariance[j],
                        root=result.root[j], root_covariance=result.root_cov[j],
                        keypoints_2d=kp[i], keypoint_conf=conf[i],
                        num_hypotheses=self.lifter.n_hyp, diffusion_steps=self.lifter.steps,
                        reliable=bool(reliable[i]), box=np.asarray(det.box, dtype=np.float64),
                        positions_rel=result.positions_rel[j], hypotheses=result.hypotheses[j],
                        covariance_rel=result.covariance_rel[j], size_var=float(result.size_var[j]),
                        size_var_track=float(result.size_var_track[j]),
                        size_from_floor=bool(result.ground_used[j])))
                for person, err in zip(lifted, check_people(lifted)):
                    if err is None:
                        people.append(person)
                    else:
                        rejected += 1
                        log.warning("dropped track %d: %s", person.track_id, err)
        t2 = time.perf_counter()
        people, removed, predicted, gated = self.apply_filter(people, detected.removed, detected.stamp_s)
        t3 = time.perf_counter()
        sampler = getattr(self.lifter.runner, "last_s", 0.0) if tracks else 0.0
        return FrameResult(people, removed, {"detect": detected.detect_s, "lift": t2 - t1, "sampler": sampler,
                                             "filter": t3 - t2, "total": detected.detect_s + t3 - t1},
                           rejected, predicted, gated)

    def forget_tracks(self) -> list[int]:
        """Start tracking over (time jumped back): no track, temporal window or followed region
        continues. Returns the ids that ended."""
        ended = [t.track_id for t in self.tracker.tracks]
        self.tracker.tracks = []
        # the lifter's temporal windows belong to the lift stage: the next detect_stage() result
        # tells lift_stage() to clear them, so a frame from before the jump that is still being
        # lifted (pipeline_overlap) keeps its windows
        self._lifter_reset_pending = True
        self.follower.reset()
        self._followed_boxes = np.zeros((0, 4))
        return ended

    def detect_and_track(self, image: np.ndarray, stamp_s: float):
        """Detector + tracker for one image: (tracks matched or born in it, ids that ended)."""
        detections = self.detect(image)[: self.config.max_people]
        tracks = self.tracker.update(detections, stamp_s)
        self._followed_boxes = np.array([t.detection.box for t in tracks]).reshape(-1, 4)
        return tracks, list(self.tracker.removed_ids())

    def detect(self, image: np.ndarray) -> list:
        """The detector's people, highest score first: in the whole image, or in follow mode
        (config.follow) between whole-image frames only around the people tracked in the last
        frame (detector/follow.py)."""
        self.follower.config = self.config.follow        # run-time parameter changes
        regions = self.follower.plan(image.shape[:2], self._followed_boxes)
        if regions is None:
            detections = self.detector.detect(image)
        else:
            detections = [d for r in regions for d in self.detector.detect(image, r)]
            if len(regions) > 1:       # a person cut by two regions: keep the better one
                from .detector.yolo_pose import nms
                keep = nms(np.array([d.box for d in detections]).reshape(-1, 4),
                           np.array([d.score for d in detections]), self.detector.nms_iou)
                detections = [detections[i] for i in keep]
        if self.follower.done(regions, len(detections), len(self._followed_boxes)):
            detections = self.detector.detect(image)
            self.follower.done(None, len(detections), len(self._followed_boxes))
        return sorted(detections, key=lambda d: -d.score)

    def apply_filter(self, people: list[Person3D], removed: list[int], stamp_s: float):
        """Run the per-track filter on the lifted people of one frame.

        Sets `filtered` on every measured person and appends the people the filter still
        predicts although this frame has no lift for them (missed by the detector, refused by
        the guards, dropped as unreliable). Such a person carries the prediction in the
        per-frame fields too: positions/covariance/root/root_covariance = the filter's
        predicted joints and root, score 0, reliable False, keypoint_confidence 0 and the 2D
        keypoints and box of their last detection; like every unreliable person it is only
        published with publish_unreliable. Returns (people, removed ids, number predicted,
        number gated)."""
        self.filter.config = self.config.filter          # run-time parameter changes
        ids = [p.track_id for p in people]
        try:
            if people:
                step = self.filter.step(stamp_s, ids, np.stack([p.root for p in people]),
                                        np.stack([p.root_covariance for p in people]),
                                        np.stack([_rel(p)[0] for p in people]), np.stack([_rel(p)[1] for p in people]),
                                        [p.size_var_track for p in people])
            else:
                step = self.filter.step(stamp_s, [], np.zeros((0, 3)), np.zeros((0, 3, 3)),
                                        np.zeros((0, 17, 3)), np.zeros((0, 17, 3, 3)))
        except (ValueError, np.linalg.LinAlgError) as err:   # never lose the frame for the filter
            log.warning("filter failed, restarting it: %s", err)
            gone = sorted(self.filter.tracks)
            self.filter.reset()
            self._last_seen.clear()
            return people, sorted(set(removed) | (set(gone) - set(ids))), 0, 0
        for p in people:
            p.filtered = step.states.get(p.track_id)
            self._last_seen[p.track_id] = (np.asarray(p.keypoints_2d), np.asarray(p.box))
        predicted = []
        for tid, state in step.states.items():
            # a prediction has no confident keypoints, so it is unreliable: published only when
            # unreliable people are (publish_unreliable, the default)
            if tid in ids or tid not in self._last_seen or not self.config.publish_unreliable:
                continue
            kp, box = self._last_seen[tid]
            predicted.append(Person3D(
                track_id=tid, score=0.0, positions=state.positions, covariance=state.joint_covariance,
                root=state.root, root_covariance=state.covariance[:3, :3], keypoints_2d=kp,
                keypoint_conf=np.zeros(len(kp)), num_hypotheses=self.lifter.n_hyp,
                diffusion_steps=self.lifter.steps, reliable=False, box=box,
                positions_rel=state.positions - state.root, filtered=state))
        # the filter states pass the same guards (the people's own values passed them already;
        # a prediction's values are its state's)
        errors = check_people(people, states_only=True) + check_people(predicted)
        for p, err in zip(people, errors):
            if err is not None:                    # the lift itself is still good: publish it
                log.warning("track %d published without its filter state: %s", p.track_id, err)
                p.filtered = None
        for p, err in zip(predicted, errors[len(people):]):
            if err is not None:
                log.warning("dropped prediction of track %d: %s", p.track_id, err)
        predicted = [p for p, err in zip(predicted, errors[len(people):]) if err is None]
        for tid in [t for t in self._last_seen if t not in self.filter.tracks]:   # bounded by the tracks
            del self._last_seen[tid]
        shown = set(ids) | {p.track_id for p in predicted}
        if not self.config.publish_unreliable:     # predicted but not shown: their markers go
            removed = list(set(removed) | (set(step.states) - shown))
        # the tracker's removals of people the filter still predicts wait for the filter
        gone = (set(removed) | set(step.deleted)) - shown
        return people + predicted, sorted(gone), len(predicted), len(step.gated)


def _rel(person: Person3D) -> tuple[np.ndarray, np.ndarray]:
    """Root-relative joints and covariances of a lifted person (derived when not given)."""
    rel = person.positions_rel if person.positions_rel is not None else person.positions - person.root
    cov = person.covariance_rel if person.covariance_rel is not None else \
        person.covariance - person.root_covariance[None]
    return np.asarray(rel), np.asarray(cov)
