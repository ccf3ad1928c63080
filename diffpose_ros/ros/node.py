"""The DiffPose pose node: camera images in, 3D skeletons with covariance out.

A thin adapter over diffpose_ros.pipeline.PosePipeline. The subscription callbacks only store the
newest image in a one-slot buffer (an older unprocessed image is dropped and counted), and a
worker thread runs detector + lifter on it, so the executor never blocks on the model. What is
only for people to look at (the RViz markers, the debug image) is built and published by a
second thread from the newest published frame (`VisualMailbox`), so the worker starts on the
next image as soon as the poses are out, whether or not RViz is watching.

Subscribes: image (sensor_msgs/Image, or image/compressed), camera_info: relative names, so
            `-r image:=/camera/color/image_raw` and namespaces work as for image_pipeline nodes
            (the image_topic / camera_info_topic parameters name them otherwise)
Publishes:  human_pose_3d (diffpose_ros/HumanPose3DArray), human_pose_3d/markers (MarkerArray),
            human_pose_3d/debug_image (Image, optional), /diagnostics (DiagnosticArray)

Stopping at any moment (SIGINT or SIGTERM: exit 0 within 2 s, no child process left, no half
file): handlers are installed in the first lines of this module, so a stop while the imports
run simply exits 0 (nothing has started) instead of a KeyboardInterrupt traceback; from main()
on a signal only sets STOP. The models load in the worker thread while the main thread spins,
so a stop is seen within 0.1 s; graph exports run in child processes that a stop kills
(backends/child.py).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

STOP = threading.Event()   # set by SIGINT/SIGTERM; main() then shuts the node down
STOP_SIGNALS: list = []    # the stop signals received, in order
STARTED = threading.Event()  # main() runs: from now on a stop is an orderly shutdown
EXECUTABLES = ("pose_node", "diffpose-pose-node")   # the installed wrappers that run main()


def _on_stop_signal(signum, frame):
    if not STARTED.is_set():
        os._exit(0)   # still importing: nothing has started that needs cleaning up
    STOP.set()
    STOP_SIGNALS.append(signum)


def install_stop_handlers():
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_stop_signal)


if __name__ == "__main__" or os.path.basename(sys.argv[0]) in EXECUTABLES:
    install_stop_handlers()   # before the heavy imports below (about a second)

import logging  # noqa: E402
from collections import Counter, deque  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from diffpose_ros.backends import Cancelled  # noqa: E402
from diffpose_ros.backends.child import kill_children  # noqa: E402
from diffpose_ros.camera import Intrinsics  # noqa: E402
from diffpose_ros.detector.follow import FollowConfig  # noqa: E402
from diffpose_ros.filter.people_filter import FilterConfig  # noqa: E402
from diffpose_ros.lifter.ground import Ground  # noqa: E402
from diffpose_ros.msg import HumanPose3DArray  # noqa: E402
from diffpose_ros.paths import detector_model_problem  # noqa: E402
from diffpose_ros.people import Person3D  # noqa: E402
from diffpose_ros.pipeline import PipelineConfig, PosePipeline  # noqa: E402
from diffpose_ros.ros.images import ImageError, decode_compressed, decode_raw, encode_bgr8  # noqa: E402
from diffpose_ros.ros.markers import MarkerCache  # noqa: E402
from diffpose_ros.ros.messages import people_to_msg  # noqa: E402

WARN_PERIOD_S = 5.0
BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cuda", "torch", "torch-cuda")

# name: (default, description, range or choices, changeable at run time)
PARAMETERS = {
    "image_topic": ("image", "sensor_msgs/Image topic (relative: remap 'image' or set a namespace)", None, False),
    "camera_info_topic": ("camera_info", "sensor_msgs/CameraInfo topic (relative, like image)", None, False),
    "rectified": ("auto", "the images are rectified: pixels follow CameraInfo P and R, D is not applied "
                  "again (auto: when the image topic's name starts with image_rect)", ("auto", "true", "false"), False),
    "use_compressed": (False, "subscribe to <image_topic>/compressed instead", None, False),
    "qos_reliability": ("best_effort", "image QoS reliability", ("best_effort", "reliable"), False),
    "qos_depth": (1, "image QoS history depth", (1, 100), False),
    "fallback_hfov_deg": (70.0, "horizontal field of view used when no CameraInfo arrives", (10.0, 179.0), True),
    "camera_info_timeout_s": (2.0, "wait this long for CameraInfo before using the fallback", (0.0, 60.0), True),
    "frame_id": ("", "override the image frame_id ('' keeps it)", None, True),
    "time_jump_s": (1.0, "an image this much older than the last one means time jumped back (bag loop, "
                    "simulator reset): tracker and temporal buffers are reset", (0.0, 3600.0), True),
    # where the floor is (a robot knows it from its geometry; there is no tf2 lookup here): the
    # body's size, hence its distance, from its feet on the floor (diffpose_ros/lifter/ground.py)
    "camera_height_m": (0.0, "the camera's height above the floor, m (0: unknown, the size of a typical adult "
                        "is assumed; README: body size from the floor)", (0.0, 20.0), True),
    "camera_pitch_deg": (0.0, "the camera's optical axis below the horizon, degrees (positive: looking down)",
                         (-90.0, 90.0), True),
    "camera_roll_deg": (0.0, "the camera's roll about its optical axis, degrees (positive: the world's up "
                        "leans toward the image's +x)", (-90.0, 90.0), True),
    "detector_model": ("", "YOLOv8/YOLO11-pose ONNX ('' = bundled yolo11n-pose)", detector_model_problem, False),
    "detector_score_threshold": (0.4, "minimum person score", (0.0, 1.0), True),
    "detector_threads": (2, "CPU threads of ONNX Runtime sessions", (1, 64), False),
    "detector_input_size": (640, "longer side of the detector input, px, a multiple of 32 (smaller: faster, "
                            "less accurate; README: the detector's table)", (32, 4096), False),
    "detector_letterbox": ("aligned", "detector input shape: aligned (camera aspect, the square input's numbers), "
                           "square, tight", ("aligned", "square", "tight"), False),
    "detector_follow_every": (0, "follow mode: detect in the whole image only every k-th frame, in between only "
                              "around the people tracked (0: off; README: follow mode)", (0, 100), True),
    "detector_follow_margin": (0.3, "follow mode: each tracked box grown by this share of its size on every side",
                               (0.0, 5.0), True),
    "pipeline_overlap": (False, "run the detector on the next image while the lifter works on this one (two "
                         "threads): more frames/s where the two do not share the same cores (the lifter on a GPU); "
                         "README: overlapping the detector and the lifter", None, False),
    "max_people": (10, "most people lifted per image (highest scores first)", (1, 100), True),
    "lifter_weights": ("", "DiffPose bundle: frame or temporal (the bundled models) or a folder "
                           "('' = frame)", None, False),
    "backend": ("auto", "inference backend of the lifter", BACKENDS, False),
    "fp16": (True, "TensorRT FP16 engine", None, False),
    "diffusion_steps": (5, "DDIM steps", (1, 50), True),
    "num_hypotheses": (5, "hypotheses per person (their spread is the covariance)", (2, 64), True),
    "seed": (0, "noise seed", (0, 2**31 - 1), False),
    "min_keypoint_conf": (0.3, "a joint counts as seen above this confidence", (0.0, 1.0), True),
    "min_keypoints": (8, "fewer seen joints than this -> reliable=false", (0, 17), True),
    "publish_unreliable": (True, "publish unreliable people (flagged) instead of dropping them", None, True),
    "publish_markers": (True, "publish the MarkerArray (built only while someone subscribes)", None, True),
    "publish_debug_image": (False, "publish an annotated image", None, True),
    "marker_lifetime_s": (0.5, "marker lifetime", (0.05, 10.0), True),
    "diagnostics_period_s": (1.0, "diagnostics period", (0.1, 60.0), False),
    # the per-track filter (diffpose_ros/filter): filtered root, velocity, joints, predictions
    "filter_enabled": (True, "per-track Kalman filter: filtered root + velocity + joints, predictions "
                       "through missed frames", None, True),
    "filter_model": ("cv", "motion model of the root: cv (constant velocity) or ca (constant acceleration)",
                     ("cv", "ca"), True),
    "filter_max_prediction_s": (1.0, "predict a person this long without an accepted lift, then delete "
                                "the track", (0.0, 10.0), True),
    "filter_gate_probability": (0.999, "Mahalanobis gate: refuse lifts less likely than this under the "
                                "filter's prediction", (0.5, 0.999999), True),
    "filter_velocity_prior_mps": (2.0, "velocity std per axis of a new track", (0.1, 20.0), True),
    "filter_process_noise_scale": (1.0, "multiplies the process noise fitted on motion capture",
                                   (0.01, 100.0), True),
    "filter_smooth_joints": (True, "filter the joints too (false: filtered root + latest lifted pose)", None, True),
    "filter_prediction_horizon_s": (1.0, "horizon of the published look-ahead prediction", (0.0, 10.0), True),
}


@dataclass
class VisualFrame:
    """One published frame, for the visual outputs: its people (never changed after publishing),
    the tracks that ended since the last frame drawn (their markers are deleted), and the image
    when the debug image is on."""
    header: object
    people: list[Person3D]
    removed_ids: list[int]
    markers: bool                     # someone subscribes to the markers
    lifetime_s: float
    image: np.ndarray | None = None   # for the debug image (None: off)


class OneSlot:
    """A one-item hand-over between two threads: take() waits for the item; close() ends every
    wait (take() then returns None)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._closed = False

    def take(self):
        with self._cond:
            while self._item is None and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            item, self._item = self._item, None
            self._cond.notify_all()           # LiftHandoff.wait_empty
            return item

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class VisualMailbox(OneSlot):
    """The worker hands each published frame to the visual-output thread here. A frame not yet
    taken is replaced by the newer one (the markers skip to the newest frame, counted in
    `skipped`), and its ended tracks carry over, so that no marker DELETE is lost."""

    def __init__(self):
        super().__init__()
        self.skipped = 0

    def put(self, frame: VisualFrame):
        with self._cond:
            if self._item is not None:
                frame.removed_ids = self._item.removed_ids + frame.removed_ids
                self.skipped += 1
            self._item = frame
            self._cond.notify_all()


@dataclass
class DetectedImage:
    """One image past the detector and the tracker (PosePipeline.detect_stage), on its way to
    the lifter: what publishing its poses needs."""
    header: object
    received: float                   # monotonic time the image arrived
    image: np.ndarray
    intrinsics: Intrinsics
    stage: object                     # pipeline.Detected
    removed_ids: list[int]            # tracks ended by a time jump before this image
    own_s: float                      # the worker's own time so far (decoding, checks), besides the detector


class LiftHandoff(OneSlot):
    """pipeline_overlap: the detector thread hands each detected image to the lifter thread here.
    The detector thread waits for the slot to be empty before it takes its next image, so a
    detected image never queues behind another one and the image taken is the newest (frames
    are dropped as stale at the camera's slot, before any work on them)."""

    def wait_empty(self) -> bool:
        """Wait until the lifter has taken the last image; False once closed."""
        with self._cond:
            while self._item is not None and not self._closed:
                self._cond.wait()
            return not self._closed

    def put(self, item: DetectedImage):
        with self._cond:
            self._item = item
            self._cond.notify_all()


def _descriptor(name, default, description, limits, dynamic) -> ParameterDescriptor:
    d = ParameterDescriptor(name=name, description=description, read_only=not dynamic)
    if isinstance(limits, tuple) and len(limits) == 2 and not isinstance(limits[0], str):
        if isinstance(default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(limits[0]), to_value=float(limits[1]))]
        elif isinstance(default, int) and not isinstance(default, bool):
            d.integer_range = [IntegerRange(from_value=int(limits[0]), to_value=int(limits[1]), step=1)]
    elif isinstance(limits, tuple) and limits:
        d.additional_constraints = "one of: " + ", ".join(limits)
    return d


class RosLogHandler(logging.Handler):
    """Forwards the library's stdlib logging ('diffpose_ros.*') to the node's rclpy logger."""

    def __init__(self, ros_logger):
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record):
        text = f"[{record.name}] {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(text)
        else:
            self.ros_logger.info(text)


def stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def is_rectified_topic(topic: str) -> bool:
    """image_pipeline names rectified images image_rect, image_rect_color (+ /compressed)."""
    parts = [p for p in topic.split("/") if p]
    if parts and parts[-1] == "compressed":
        parts = parts[:-1]
    return bool(parts) and parts[-1].startswith("image_rect")


class PoseNode(Node):
    def __init__(self, **kwargs):
        super().__init__("diffpose_pose_node", **kwargs)
        library_log = logging.getLogger("diffpose_ros")
        library_log.setLevel(logging.INFO)
        library_log.propagate = False
        library_log.handlers = [RosLogHandler(self.get_logger())]
        for name, (default, description, limits, dynamic) in PARAMETERS.items():
            self.declare_parameter(name, default, _descriptor(name, default, description, limits, dynamic))
        for name, (_, _, limits, _) in PARAMETERS.items():   # values from a params file are checked too
            error = self._check(name, self.get_parameter(name).value)
            if error:
                raise ValueError(error)
        self.p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # frames_in, frames_out, dropped_stale, bad_* ...; the standard ones are in /diagnostics
        # from the first message on (0 until they happen), so a monitor never misses a key
        self.counters = Counter({k: 0 for k in ("frames_in", "frames_out", "dropped_stale",
                                                "rejected_people", "time_jumps")})
        self._last_warned: dict[str, float] = {}
        self.latencies = deque(maxlen=500)  # seconds, receive -> publish
        # overhead: the worker's own time a frame besides detector and sampler; visual: the markers
        # and the debug image, on their own thread
        self.stage_times = {k: deque(maxlen=500) for k in ("detect", "sampler", "overhead", "visual")}
        self.rate_in = deque(maxlen=200)
        self.rate_out = deque(maxlen=200)
        self.intrinsics: Intrinsics | None = None
        self.first_image_time: float | None = None
        self.last_stamp: float | None = None
        self.run_first_stamp: float | None = None           # first stamp since start / the last time jump
        self.recent_stamps: deque[float] = deque(maxlen=300)  # processed stamps: a replay repeats them
        self.jump_removed_ids: list[int] = []                 # tracks ended by a time jump (markers to delete)
        self.fallback_warned = False

        self.pipeline: PosePipeline | None = None   # built by the worker thread (_work)
        self.start_failed = threading.Event()       # the worker could not build it: main exits 2
        self._cancel = threading.Event()            # stop(): ends a model load / export at once

        qos = QoSProfile(depth=self.p["qos_depth"], history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.BEST_EFFORT if self.p["qos_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE)
        if self.p["use_compressed"]:
            sub = self.create_subscription(CompressedImage, self.p["image_topic"] + "/compressed", self._on_image, qos)
        else:
            sub = self.create_subscription(Image, self.p["image_topic"], self._on_image, qos)
        info_sub = self.create_subscription(CameraInfo, self.p["camera_info_topic"], self._on_camera_info,
                                            qos_profile_sensor_data)
        # resolved names (namespace and remapping applied), for the log and the rectified guess
        self.image_topic, self.camera_info_topic = sub.topic_name, info_sub.topic_name
        self.rectified = self.p["rectified"] == "true" or (
            self.p["rectified"] == "auto" and is_rectified_topic(self.image_topic))
        self.pub_people = self.create_publisher(HumanPose3DArray, "human_pose_3d", 10)
        self.pub_markers = self.create_publisher(MarkerArray, "human_pose_3d/markers", 10)
        self.marker_cache = MarkerCache()
        self.pub_debug = self.create_publisher(Image, "human_pose_3d/debug_image", qos_profile_sensor_data)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.p["diagnostics_period_s"], self._publish_diagnostics)

        self._slot = None                   # the newest unprocessed image
        self._cond = threading.Condition()
        self._stop = False
        self._visual = VisualMailbox()      # the worker's published frames, for the markers thread
        self._visual_thread = threading.Thread(target=self._draw, name="diffpose_visual", daemon=True)
        self._visual_thread.start()
        # pipeline_overlap: the worker detects, this thread lifts and publishes
        self._handoff = LiftHandoff()
        self._lift_thread = threading.Thread(target=self._lift_loop, name="diffpose_lift", daemon=True)
        self._worker = threading.Thread(target=self._work, name="diffpose_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"listening on {self.image_topic} + {self.camera_info_topic}"
                               f"{' (rectified images: CameraInfo P and R)' if self.rectified else ''}")

    # ---------------------------------------------------------------- parameters
    def _check(self, name, value):
        default, _, limits, _ = PARAMETERS[name]
        if callable(limits):                       # a validator: returns the problem or None
            return limits(value)
        if isinstance(limits, tuple) and limits and isinstance(limits[0], str):
            if value not in limits:
                return f"{name}='{value}' is not one of {', '.join(limits)}"
        elif isinstance(limits, tuple) and len(limits) == 2:
            if not (limits[0] <= value <= limits[1]) or (isinstance(value, float) and not np.isfinite(value)):
                return f"{name}={value} is outside [{limits[0]}, {limits[1]}]"
        return None

    def _on_set_parameters(self, params):
        for param in params:
            if param.name not in PARAMETERS:
                continue
            if not PARAMETERS[param.name][3]:
                return SetParametersResult(successful=False, reason=f"{param.name} cannot change at run time")
            error = self._check(param.name, param.value)
            if error:
                return SetParametersResult(successful=False, reason=error)
        with self._cond:
            for param in params:
                if param.name not in PARAMETERS:
                    continue
                self.p[param.name] = param.value
            if self.pipeline is not None:    # else the worker applies self.p once loaded
                self.pipeline.config = self._pipeline_config()
                if any(param.name in ("diffusion_steps", "num_hypotheses") for param in params):
                    # N: from the next frame on; steps: once its graph is built in the
                    # background (the current one serves until then), see PosePipeline
                    self.pipeline.set_sampling(self.p["diffusion_steps"], self.p["num_hypotheses"])
        return SetParametersResult(successful=True)

    def _pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(score_threshold=self.p["detector_score_threshold"],
                              min_keypoint_conf=self.p["min_keypoint_conf"], min_keypoints=self.p["min_keypoints"],
                              publish_unreliable=self.p["publish_unreliable"], max_people=self.p["max_people"],
                              ground=(Ground.from_tilt(self.p["camera_height_m"], self.p["camera_pitch_deg"],
                                                       self.p["camera_roll_deg"])
                                      if self.p["camera_height_m"] > 0 else None),
                              follow=FollowConfig(every=self.p["detector_follow_every"],
                                                  margin=self.p["detector_follow_margin"]),
                              filter=FilterConfig(
                                  enabled=self.p["filter_enabled"], model=self.p["filter_model"],
                                  max_prediction_s=self.p["filter_max_prediction_s"],
                                  gate_probability=self.p["filter_gate_probability"],
                                  velocity_prior_mps=self.p["filter_velocity_prior_mps"],
                                  process_noise_scale=self.p["filter_process_noise_scale"],
                                  smooth_joints=self.p["filter_smooth_joints"],
                                  ahead_s=self.p["filter_prediction_horizon_s"]))

    def _make_pipeline(self) -> PosePipeline:
        return PosePipeline.create(
            detector_model=self.p["detector_model"], backend=self.p["backend"],
            lifter_weights=self.p["lifter_weights"], steps=self.p["diffusion_steps"],
            n_hyp=self.p["num_hypotheses"], threads=self.p["detector_threads"], fp16=self.p["fp16"],
            seed=self.p["seed"], config=self._pipeline_config(), cancel=self._cancel,
            detector_options={"input_size": self.p["detector_input_size"],
                              "letterbox_mode": self.p["detector_letterbox"]})

    # ---------------------------------------------------------------- input
    def _warn(self, kind: str, text: str):
        """Count the problem; log it at most every WARN_PERIOD_S per distinct problem (a camera
        that sends the same broken frame 30 times a second gets one line, a new problem its own)."""
        self.counters[kind] += 1
        now = time.monotonic()
        if now - self._last_warned.get(text, -1e9) >= WARN_PERIOD_S:
            self._last_warned[text] = now
            if len(self._last_warned) > 1000:      # bounded, for hours of varied bad input
                self._last_warned.clear()
            self.get_logger().warning(f"{text} [{kind}: {self.counters[kind]} so far]")

    def _on_camera_info(self, msg: CameraInfo):
        try:
            self.intrinsics = Intrinsics.from_camera_info(msg, rectified=self.rectified)
        except ValueError as err:
            self._warn("bad_camera_info", f"ignoring CameraInfo: {err}")

    def _on_image(self, msg):
        now = time.monotonic()
        self.counters["frames_in"] += 1
        self.rate_in.append(now)
        if self.first_image_time is None:
            self.first_image_time = now
        with self._cond:
            if self._slot is not None:
                self.counters["dropped_stale"] += 1
            self._slot = (msg, now)
            self._cond.notify()

    def _intrinsics_for(self, width: int, height: int) -> Intrinsics | None:
        intr = self.intrinsics
        if intr is not None:
            if intr.width and intr.height and (intr.width, intr.height) != (width, height):
                # the image is not the size CameraInfo describes (after its binning and ROI):
                # assume a resized image, scale K, warn
                self._warn("camera_info_size_mismatch",
                           f"CameraInfo (binning and ROI applied) is {intr.width}x{intr.height} but the image "
                           f"is {width}x{height}; scaling K")
                return intr.scaled_to(width, height)
            return intr
        if time.monotonic() - self.first_image_time < self.p["camera_info_timeout_s"]:
            return None
        if not self.fallback_warned:
            self.get_logger().warning(
                f"no CameraInfo on {self.camera_info_topic}: using a {self.p['fallback_hfov_deg']} deg "
                "horizontal field of view; 3D positions are only as right as that guess")
            self.fallback_warned = True
        return Intrinsics.from_fov(width, height, self.p["fallback_hfov_deg"])

    def _decode(self, msg) -> np.ndarray:
        if isinstance(msg, CompressedImage):
            return decode_compressed(msg.data, msg.format)
        return decode_raw(msg.data, msg.width, msg.height, msg.step, msg.encoding, msg.is_bigendian)

    # ---------------------------------------------------------------- worker
    def _work(self):
        # The models load here, not in __init__: the main thread keeps spinning and sees a stop
        # at once, and stop() cancels the load (an export in progress is killed).
        try:
            pipeline = self._make_pipeline()
        except Cancelled:
            return
        except Exception as err:   # missing weights, unavailable backend, ...: say so, exit 2
            self.get_logger().fatal(f"cannot start: {type(err).__name__}: {err}")
            self.start_failed.set()
            return
        with self._cond:
            pipeline.config = self._pipeline_config()   # parameters changed while loading
            pipeline.set_sampling(self.p["diffusion_steps"], self.p["num_hypotheses"])
            self.pipeline = pipeline
        self.get_logger().info(f"models loaded; lifter backend: {pipeline.backend_name}, "
                               f"{pipeline.sampling_status().get('sampler_graph', '')}")
        overlap = self.p["pipeline_overlap"]
        if overlap:
            self._lift_thread.start()
        while not overlap or self._handoff.wait_empty():
            with self._cond:
                while self._slot is None and not self._stop:
                    self._cond.wait(timeout=0.5)
                if self._stop:
                    return
                msg, received = self._slot
                self._slot = None
            try:
                detected = self._detect(msg, received)
                if detected is None:
                    continue
                if overlap:
                    self._handoff.put(detected)
                else:
                    self._publish(detected)
            except Exception as err:  # one bad frame must never kill the node
                if not self.context.ok():     # shutting down: the publishers are gone
                    return
                self._warn("processing_error", f"frame failed: {type(err).__name__}: {err}")

    def _lift_loop(self):
        """pipeline_overlap: lift and publish the detected images, in order, while the worker
        detects on the next one."""
        while (detected := self._handoff.take()) is not None:
            try:
                self._publish(detected)
            except Exception as err:  # one bad frame must never kill the node
                if not self.context.ok():
                    return
                self._warn("processing_error", f"frame failed: {type(err).__name__}: {err}")

    def _detect(self, msg, received: float) -> DetectedImage | None:
        """First half of a frame (the worker): stamp checks, decoding, intrinsics, detector and
        tracker. None: the image is skipped (said and counted)."""
        started = time.monotonic()
        stamp = stamp_seconds(msg.header.stamp)
        if self.last_stamp is not None and stamp <= self.last_stamp:
            if self._time_jumped_back(stamp):
                self._reset_for_time_jump(stamp)
            else:
                kind = "stamp_repeated" if stamp == self.last_stamp else "stamp_out_of_order"
                self._warn(kind, f"skipping image with stamp {stamp:.6f} (last processed {self.last_stamp:.6f})")
                return None
        try:
            image = self._decode(msg)
        except ImageError as err:
            self._warn("bad_image", f"skipping image: {err}")
            return None
        intr = self._intrinsics_for(image.shape[1], image.shape[0])
        if intr is None:
            self.counters["waiting_for_camera_info"] += 1
            return None
        stage = self.pipeline.detect_stage(image, stamp)
        self.last_stamp = stamp
        if self.run_first_stamp is None:
            self.run_first_stamp = stamp
        self.recent_stamps.append(stamp)
        removed, self.jump_removed_ids = self.jump_removed_ids, []
        return DetectedImage(msg.header, received, image, intr, stage, removed,
                             time.monotonic() - started - stage.detect_s)

    def _publish(self, detected: DetectedImage):
        """Second half (the worker, or the lifter thread with pipeline_overlap): lifter, filter,
        the poses published, the visual outputs handed over."""
        started = time.monotonic()
        result = self.pipeline.lift_stage(detected.stage, detected.intrinsics)
        removed = result.removed_track_ids + detected.removed_ids
        self.counters["rejected_people"] += result.rejected
        header = detected.header
        if self.p["frame_id"]:
            header.frame_id = self.p["frame_id"]
        # the pipeline's people passed its numerical guards already (FrameResult)
        out = people_to_msg(result.people, header, latency_s=time.monotonic() - detected.received, check=False)
        self.pub_people.publish(out)
        # markers only for a listener (RViz, a bag recorder): with none they are about 1 ms of
        # waste a frame with three people; RViz subscribing later gets them from its first frame on
        markers = self.p["publish_markers"] and self.pub_markers.get_subscription_count() > 0
        if markers or self.p["publish_debug_image"]:
            self._visual.put(VisualFrame(header, result.people, removed, markers, self.p["marker_lifetime_s"],
                                         detected.image if self.p["publish_debug_image"] else None))
        now = time.monotonic()
        self.latencies.append(now - detected.received)
        # the worker's own cost: decoding, lifter bookkeeping, conversion, publishing the poses
        # (not the wait between the two threads with pipeline_overlap)
        t = result.timings
        self.stage_times["detect"].append(t["detect"])
        self.stage_times["sampler"].append(t["sampler"])
        self.stage_times["overhead"].append(detected.own_s + now - started - t["sampler"])
        self.rate_out.append(now)
        self.counters["frames_out"] += 1

    def _draw(self):
        """The visual-output thread: the markers and the debug image of the newest published
        frame. They run while the worker detects on the next image (ONNX Runtime releases the
        GIL), so a planner's poses do not wait for what RViz shows."""
        while (frame := self._visual.take()) is not None:
            started = time.monotonic()
            try:
                if frame.markers:
                    self.pub_markers.publish(self.marker_cache.build(frame.people, frame.removed_ids, frame.header,
                                                                     frame.lifetime_s))
                if frame.image is not None:
                    from diffpose_ros.render import draw_people_2d
                    data, w, h, step = encode_bgr8(draw_people_2d(frame.image, frame.people))
                    self.pub_debug.publish(Image(header=frame.header, height=h, width=w, encoding="bgr8",
                                                 step=step, data=data))
            except Exception as err:  # a frame's markers must never end the thread
                if not self.context.ok():     # shutting down: the publishers are gone
                    return
                self._warn("processing_visual_error", f"markers / debug image failed: {type(err).__name__}: {err}")
            self.stage_times["visual"].append(time.monotonic() - started)

    def _time_jumped_back(self, stamp: float) -> bool:
        """An image not newer than the last processed one: time jumped back (as tf2's buffer
        treats it) when it is older by more than time_jump_s, repeats a stamp processed before
        the last one (a bag played again), or precedes the first stamp of this run. Otherwise it
        is a late or duplicate frame, to be skipped."""
        if stamp == self.last_stamp:
            return False
        return (self.last_stamp - stamp > self.p["time_jump_s"] or stamp in self.recent_stamps
                or stamp <= self.run_first_stamp)

    def _reset_for_time_jump(self, stamp: float):
        """Start over at `stamp`: no track or temporal window continues across the jump (track
        ids keep counting, so none is reused); logged once per jump, counted as time_jumps."""
        self.jump_removed_ids = self.jump_removed_ids + self.pipeline.forget_tracks()
        self.counters["time_jumps"] += 1
        self.get_logger().warning(
            f"time jumped back from {self.last_stamp:.6f} to {stamp:.6f} (bag played again, simulator reset "
            f"or use_sim_time restart): tracker and temporal buffers reset [time_jumps: {self.counters['time_jumps']}]")
        self.last_stamp = self.run_first_stamp = None
        self.recent_stamps.clear()

    # ---------------------------------------------------------------- diagnostics
    @staticmethod
    def _rate(times) -> float:
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)

    def _publish_diagnostics(self):
        lat = np.asarray(self.latencies) * 1e3
        p50, p95, p99 = (np.percentile(lat, [50, 95, 99]) if lat.size else (float("nan"),) * 3)
        status = DiagnosticStatus(name=f"diffpose_ros: {self.get_fully_qualified_name()}",
                                  hardware_id=self.p["image_topic"])
        dropped = self.counters["dropped_stale"]
        bad = sum(v for k, v in self.counters.items() if k.startswith(("bad_", "stamp_", "processing_")))
        status.level = DiagnosticStatus.OK if bad == 0 else DiagnosticStatus.WARN
        status.message = f"{self._rate(self.rate_out):.1f} Hz out, {dropped} stale dropped, {bad} bad inputs"
        pipeline = self.pipeline
        values = {"backend": pipeline.backend_name if pipeline is not None else "loading",
                  **(pipeline.sampling_status() if pipeline is not None else {"sampler_graph": "loading"}),
                  # pipeline_overlap: the detector on the next image while the lifter works
                  "pipeline": "overlapped (detector and lifter threads)" if self.p["pipeline_overlap"] else "sequential",
                  "input_rate_hz": f"{self._rate(self.rate_in):.2f}",
                  "output_rate_hz": f"{self._rate(self.rate_out):.2f}",
                  "latency_p50_ms": f"{p50:.1f}", "latency_p95_ms": f"{p95:.1f}", "latency_p99_ms": f"{p99:.1f}",
                  # where the body size comes from (the floor needs the camera's height and tilt)
                  "body_size": (f"from the floor (camera {self.p['camera_height_m']:.2f} m up, pitch "
                                f"{self.p['camera_pitch_deg']:.1f} deg, roll {self.p['camera_roll_deg']:.1f} deg)"
                                if self.p["camera_height_m"] > 0 else "typical adult (camera_height_m not set)")}
        for stage, times in self.stage_times.items():
            if times:
                values[f"{stage}_p50_ms"] = f"{np.median(times) * 1e3:.2f}"
        values.update({k: str(v) for k, v in sorted(self.counters.items())})
        values["visual_frames_skipped"] = str(self._visual.skipped)   # markers drawn for a newer frame instead
        if pipeline is not None:       # follow mode: detector frames on the whole image / a region / redone
            values.update({f"detector_frames_{k}": str(v) for k, v in pipeline.follower.counts.items()})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        self.pub_diag.publish(DiagnosticArray(header=self._diag_header(), status=[status]))

    def _diag_header(self):
        from std_msgs.msg import Header
        return Header(stamp=self.get_clock().now().to_msg())

    # ---------------------------------------------------------------- shutdown
    def stop(self, timeout: float = 0.5) -> bool:
        """End the worker (loading or processing), the visual-output thread and any background
        graph build: the child process of an export is killed and reaped, its partial file
        removed (that needs no thread's help). Then give the threads ``timeout`` to end: True
        when all have; a frame or model load still running is abandoned by main() (nothing of it
        needs saving)."""
        self._cancel.set()
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            pipeline = self.pipeline
        self._visual.close()
        self._handoff.close()
        kill_children(wait=0.5)            # also an export the worker waits for at start-up
        deadline = time.monotonic() + timeout
        closed = pipeline.close(max(0.0, deadline - time.monotonic())) if pipeline is not None else True
        self._worker.join(timeout=max(0.0, deadline - time.monotonic()))
        self._visual_thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._lift_thread.is_alive():
            self._lift_thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return closed and not any(t.is_alive() for t in (self._worker, self._visual_thread, self._lift_thread))


def main(args=None):
    """Run the node until SIGINT/SIGTERM; ends the process (exit 0, or 2 when it cannot start)."""
    STARTED.set()
    install_stop_handlers()   # SIGINT/SIGTERM only set STOP (a second one during cleanup too)
    node = None
    code = 0
    try:
        # rclpy's own handlers would turn SIGINT into a KeyboardInterrupt wherever the main
        # thread is; the loop below checks STOP instead
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        try:
            node = PoseNode()
        except Exception as err:   # bad parameters: say so, exit 2 (model errors: see _work)
            rclpy.logging.get_logger("diffpose_pose_node").fatal(f"cannot start: {type(err).__name__}: {err}")
            code = 2
        else:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            while not STOP.is_set() and not node.start_failed.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
            if node.start_failed.is_set():
                code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stopped = True
        if node is not None:
            if STOP_SIGNALS:
                node.get_logger().info(f"{signal.Signals(STOP_SIGNALS[0]).name}: stopping")
            stopped = node.stop()
            if not stopped:
                node.get_logger().info("a frame or model load was still running; not waiting for it")
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        # Everything of ours is cleaned up now: the node is destroyed, rclpy shut down, build
        # processes killed and reaped, no file open for writing. The interpreter teardown that
        # would follow is skipped: it takes seconds on a loaded CPU (torch, ONNX Runtime), and
        # if a thread is still inside native code (a model session being created, torch being
        # imported) it aborts the process ("terminate called without an active exception").
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
