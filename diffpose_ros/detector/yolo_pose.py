"""Multi-person COCO-17 keypoint detector: YOLOv8/YOLO11-pose ONNX run with onnxruntime.

No torch and no ultralytics at run time. The ONNX model (exported by ``export.py`` or
supplied by the user) takes a 1x3xHxW RGB float image in [0, 1] and returns 1x56xN
candidates: box centre/size (4, input pixels), person score (1, already a probability) and
17 keypoints as (x, y, visibility probability). We letterbox the image, keep the candidates
above the score threshold, run class-agnostic NMS and map boxes and keypoints back to the
original pixel grid.

Input shape. A model with a fixed HxW input gets exactly that. A model with dynamic height and
width (the bundled export) gets the image scaled so that its longer side is ``input_size`` and
only as much grey padding as keeps the network's numbers those of the square input (see
``rect_shape``): a 640x480 camera at input_size 640 is a 640x512 input instead of 640x640.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

NUM_KPTS = 17
OUT_CHANNELS = 4 + 1 + NUM_KPTS * 3  # 56
LETTERBOX_FILL = 114  # the grey ultralytics pads with during training
STRIDE = 32           # the coarsest feature map of YOLOv8/YOLO11: input sides must be multiples of it
DEFAULT_INPUT_SIZE = 640
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
LETTERBOX_MODES = ("aligned", "square", "tight")


def default_model_path() -> Path:
    from diffpose_ros.detector.export import DEFAULT_ONNX
    return DEFAULT_ONNX


@dataclass
class Detection:
    box: np.ndarray            # (4,) x1, y1, x2, y2 in original image pixels
    score: float               # person confidence
    keypoints: np.ndarray      # (17, 2) pixels, COCO order
    keypoint_conf: np.ndarray  # (17,) visibility probability


@dataclass(frozen=True)
class Letterbox:
    """Affine map original pixels -> network input pixels: p_in = p * (scale_x, scale_y) + pad.

    The two scales differ only by the rounding of the resized width/height; using the exact
    ones keeps the round trip error far below a pixel for any aspect ratio.
    """
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return xy * np.array([self.scale_x, self.scale_y]) + np.array([self.pad_x, self.pad_y])

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - np.array([self.pad_x, self.pad_y])) / np.array([self.scale_x, self.scale_y])


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Accept HxW, HxWx1 (grey) or HxWx3 (BGR) uint8; return HxWx3 BGR uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"image must be HxW, HxWx1 or HxWx3, got shape {image.shape}")


def check_input_size(size) -> int:
    size = int(size)
    if size < STRIDE or size > 4096 or size % STRIDE:
        raise ValueError(f"detector input size must be a multiple of {STRIDE} in [{STRIDE}, 4096], got {size}")
    return size


def rect_shape(h: int, w: int, size: int, mode: str = "aligned", stride: int = STRIDE) -> tuple[int, int]:
    """Network input (height, width) for an h x w image whose longer side is scaled to ``size``.

    square   size x size, the image centred (what a fixed 640x640 export gets)
    aligned  the square letterbox with its whole stride-high bands of pure padding cut off, the
             same number from each side: the image keeps the grid phase it has in the square
             input, so the network sees the same content at the same place (640x480 at 640 ->
             640x512, 16 px of grey above and below)
    tight    each side rounded up to a multiple of the stride (640x480 at 640 -> 640x480)

    Measured (diffpose-bench-detector): "tight" moves photo keypoints 1.7 px (median) from the
    square input and loses most small, low-score pedestrians of vtest.avi; a shift of the
    content by a non-multiple of the stride alone moves keypoints about 2 px; "aligned" stays
    within 0.5 px. The grey margin matters to the network beyond the pixels it covers.
    """
    if h < 1 or w < 1:
        raise ValueError(f"empty image of shape {(h, w)}")
    if mode not in LETTERBOX_MODES:
        raise ValueError(f"letterbox mode must be one of {', '.join(LETTERBOX_MODES)}, got {mode!r}")
    if mode == "square":
        return size, size
    scale = min(size / h, size / w)
    nh, nw = min(size, max(1, round(h * scale))), min(size, max(1, round(w * scale)))
    if mode == "tight":
        return -(-nh // stride) * stride, -(-nw // stride) * stride
    # the square letterbox puts (size - n) // 2 grey pixels before the image; drop whole
    # stride bands of them on both sides
    return tuple(size - 2 * stride * (((size - n) // 2) // stride) for n in (nh, nw))


def letterbox(image: np.ndarray, size) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio to fit ``size`` (S for S x S, or (height, width)), pad
    the rest with grey, centred."""
    out_h, out_w = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"empty image of shape {image.shape}")
    scale = min(out_h / h, out_w / w)
    new_w, new_h = min(out_w, max(1, round(w * scale))), min(out_h, max(1, round(h * scale)))
    if (new_w, new_h) == (w, h):
        resized = image
    else:
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    left, top = (out_w - new_w) // 2, (out_h - new_h) // 2
    if (new_h, new_w) == (out_h, out_w):
        out = resized
    else:
        out = np.full((out_h, out_w, image.shape[2]), LETTERBOX_FILL, dtype=np.uint8)
        out[top:top + new_h, left:left + new_w] = resized
    return out, Letterbox(new_w / w, new_h / h, float(left), float(top))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between xyxy boxes a (N,4) and b (M,4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; returns kept indices sorted by decreasing score."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def create_session(model_path, providers=("CPUExecutionProvider",), threads: int = 2,
                   optimization: str = "all", spinning: bool = False):
    """The one place an inference session is made (swap point for other backends).

    ``optimization`` is ONNX Runtime's graph optimisation level; "all" (ORT's own default)
    includes the CPU layout transformations (NCHWc) that make the convolutions fast.
    ``spinning`` lets idle pool threads busy-wait for work; off by default because the machine
    is shared with the lifter and ROS (on 2 cores a spinning pool takes the core another stage
    needs); diffpose-bench-detector measures both."""
    import onnxruntime as ort

    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization must be one of {', '.join(OPTIMIZATION_LEVELS)}, got {optimization!r}")
    if providers == "auto":
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    spin = "1" if spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return ort.InferenceSession(str(model_path), sess_options=opts, providers=list(providers))


class YoloPoseDetector:
    """Detect people and their COCO-17 keypoints in one image."""

    def __init__(self, model_path=None, score_threshold: float = 0.25, nms_iou: float = 0.5,
                 providers=("CPUExecutionProvider",), threads: int = 2, max_detections: int = 100,
                 input_size: int | None = None, optimization: str = "all", letterbox_mode: str = "aligned",
                 spinning: bool = False):
        model_path = Path(model_path) if model_path is not None else default_model_path()
        if not model_path.exists():
            raise FileNotFoundError(f"detector model {model_path} not found; run diffpose-export-detector")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        self.model_path = model_path
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_detections = int(max_detections)
        self.session = create_session(model_path, providers, threads, optimization, spinning)
        self.optimization = optimization
        if letterbox_mode not in LETTERBOX_MODES:
            raise ValueError(f"letterbox_mode must be one of {', '.join(LETTERBOX_MODES)}, got {letterbox_mode!r}")
        self.letterbox_mode = letterbox_mode   # dynamic models only; see rect_shape
        self.provider = self.session.get_providers()[0]
        wanted = "CUDAExecutionProvider" if providers == "auto" else list(providers)[0]
        if self.provider != wanted:  # onnxruntime falls back silently: say so
            log.warning("detector asked for %s but runs on %s", wanted, self.provider)
        log.info("detector %s running on %s (%d threads)", model_path.name, self.provider, threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        if len(shape) != 4 or shape[1] != 3:
            raise ValueError(f"{model_path}: expected a 1x3xHxW image input, got {shape}")
        fixed = [isinstance(d, int) and d > 0 for d in shape[2:]]
        if any(fixed) and not all(fixed):
            raise ValueError(f"{model_path}: input height and width must both be fixed or both dynamic, got {shape}")
        # (height, width) of a fixed-shape model; None: dynamic, letterboxed to the image's aspect
        self.fixed_shape = (int(shape[2]), int(shape[3])) if all(fixed) else None
        if self.fixed_shape is not None:
            if input_size is not None and check_input_size(input_size) != max(self.fixed_shape):
                raise ValueError(f"{model_path} has a fixed {shape[2]}x{shape[3]} input; input_size {input_size} "
                                 "needs a model with dynamic height and width (diffpose-export-detector)")
            self.input_size = max(self.fixed_shape)
        else:
            self.input_size = DEFAULT_INPUT_SIZE if input_size is None else input_size
        out = self.session.get_outputs()[0].shape
        if len(out) != 3 or (isinstance(out[1], int) and out[1] != OUT_CHANNELS):
            raise ValueError(f"{model_path}: output shape {out} is not (1, {OUT_CHANNELS}, N) = "
                             f"4 box + 1 person score + 17x3 keypoints; is it a single-class "
                             "YOLOv8/YOLO11-pose export (no NMS/end2end)?")

    @property
    def input_size(self) -> int:
        """Longer side of the network input; settable between frames on a dynamic model."""
        return self._input_size

    @input_size.setter
    def input_size(self, size: int):
        size = check_input_size(size)
        if getattr(self, "fixed_shape", None) is not None and size != max(self.fixed_shape):
            raise ValueError(f"{self.model_path} has a fixed {self.fixed_shape[0]}x{self.fixed_shape[1]} input; "
                             f"input_size {size} needs a model with dynamic height and width")
        self._input_size = size

    def input_shape(self, image_hw) -> tuple[int, int]:
        """Network input (height, width) for an image of this size."""
        if self.fixed_shape is not None:
            return self.fixed_shape
        return rect_shape(int(image_hw[0]), int(image_hw[1]), self.input_size, self.letterbox_mode)

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        bgr = to_bgr(image)
        boxed, lb = letterbox(bgr, self.input_shape(bgr.shape[:2]))
        # BGR -> RGB, HWC -> CHW, [0, 1]: one fused pass in OpenCV (numpy takes three)
        blob = cv2.dnn.blobFromImage(boxed, scalefactor=1.0 / 255.0, swapRB=True)
        return blob, lb

    def detect(self, image: np.ndarray, region=None) -> list[Detection]:
        """People in the image; with ``region`` (x1, y1, x2, y2 original pixels, a dynamic
        model only) only those inside it, for a fraction of the cost (see input_region)."""
        blob, lb = self.preprocess(image)
        u0 = v0 = 0
        if region is not None:
            v0, v1, u0, u1 = self.input_region(region, lb, blob.shape[2:])
            blob = np.ascontiguousarray(blob[:, :, v0:v1, u0:u1])
        self.last_input_shape = tuple(blob.shape[2:])
        raw = self.session.run(None, {self.input_name: blob})[0]
        if raw.ndim != 3 or raw.shape[1] != OUT_CHANNELS:
            raise ValueError(f"model returned shape {raw.shape}, expected (1, {OUT_CHANNELS}, N)")
        pred = raw[0]
        if u0 or v0:   # back to the whole input's pixels: boxes' centres and keypoints x, y
            pred = pred.copy()
            pred[[0, *range(5, OUT_CHANNELS, 3)]] += u0
            pred[[1, *range(6, OUT_CHANNELS, 3)]] += v0
        return self.postprocess(pred, lb, image.shape[:2])

    def input_region(self, region, lb: Letterbox, input_hw) -> tuple[int, int, int, int]:
        """(v0, v1, u0, u1): the rows and columns of the whole image's network input that cover
        ``region``, widened to whole stride cells. The network then runs on exactly those
        input pixels (same scale, same grid phase, so a person inside gets the numbers the
        whole image would give up to what the missing surroundings change); cost follows the
        pixel count."""
        if self.fixed_shape is not None:
            raise ValueError(f"{self.model_path} has a fixed input; detecting in a region needs dynamic height and width")
        x1, y1, x2, y2 = (float(v) for v in region)
        if not (np.isfinite([x1, y1, x2, y2]).all() and x2 > x1 and y2 > y1):
            raise ValueError(f"region must be a finite x1, y1, x2, y2 box with x2 > x1, y2 > y1, got {region}")
        (a, b), (c, d) = lb.to_input(np.array([[x1, y1], [x2, y2]]))
        H, W = int(input_hw[0]), int(input_hw[1])
        u0, v0 = (int(np.clip(np.floor(t / STRIDE) * STRIDE, 0, m - STRIDE)) for t, m in ((a, W), (b, H)))
        u1, v1 = (int(np.clip(np.ceil(t / STRIDE) * STRIDE, lo + STRIDE, m)) for t, m, lo in ((c, W, u0), (d, H, v0)))
        return v0, v1, u0, u1

    def postprocess(self, pred: np.ndarray, lb: Letterbox, image_hw) -> list[Detection]:
        """pred: (56, N) raw model output for one image."""
        pred = pred.T  # (N, 56)
        scores = pred[:, 4]
        pred = pred[scores >= self.score_threshold]
        if not len(pred):
            return []
        cxcy, wh = pred[:, 0:2], pred[:, 2:4]
        boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
        keep = nms(boxes, pred[:, 4], self.nms_iou)[: self.max_detections]
        h, w = image_hw
        dets = []
        for i in keep:
            box = lb.to_original(boxes[i].reshape(2, 2)).reshape(4)
            box[[0, 2]] = np.clip(box[[0, 2]], 0, w)
            box[[1, 3]] = np.clip(box[[1, 3]], 0, h)
            kpts = pred[i, 5:].reshape(NUM_KPTS, 3)
            dets.append(Detection(box=box, score=float(pred[i, 4]),
                                  keypoints=lb.to_original(kpts[:, :2]),
                                  keypoint_conf=kpts[:, 2].astype(np.float64)))
        return dets
