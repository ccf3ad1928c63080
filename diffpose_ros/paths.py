"""Where the package finds its data, weights and caches (no ROS needed)."""
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"
# the DiffPose bundles shipped in WEIGHTS_DIR, by the name a setting may give them; the first
# is the default
BUNDLED_LIFTERS = ("frame", "temporal")

# ../shared/data next to the checkout; DIFFPOSE_SHARED_DATA overrides it
SHARED_DATA = Path(os.environ.get("DIFFPOSE_SHARED_DATA", REPO_DIR.parent / "shared" / "data"))
MOCAP_DIR = SHARED_DATA / "mocap"
IMAGES_DIR = SHARED_DATA / "images"

# the sample camera's default input; CMakeLists.txt installs the same files (when it finds them
# at build time) into share/diffpose_ros/sample_images, so that an install space has them
DEFAULT_SAMPLE_IMAGES = ("basketball1.png", "basketball2.png", "messi5.jpg")


def lifter_bundle(spec=None) -> Path:
    """The DiffPose bundle folder that a setting names: '' (or None) is the bundled frame model,
    'frame' or 'temporal' the bundled model of that name, anything else a folder. A folder that
    exists under the given name wins over a bundled name, so that `--weights temporal` in a
    directory holding one's own `temporal/` means that folder. Installed packages keep their
    weights inside site-packages, so the names spare a user from finding that path."""
    spec = "" if spec is None else str(spec)
    if spec == "":
        return WEIGHTS_DIR / BUNDLED_LIFTERS[0]
    if spec in BUNDLED_LIFTERS and not Path(spec).exists():
        return WEIGHTS_DIR / spec
    return Path(spec)


def cache_dir() -> Path:
    """The user's writable cache (datasets, exported sampler graphs, TensorRT engines), never
    the install space: $DIFFPOSE_CACHE if set, else $XDG_CACHE_HOME/diffpose_ros, else
    ~/.cache/diffpose_ros (the XDG base-directory default; a relative $XDG_CACHE_HOME is
    invalid by that spec and ignored)."""
    override = os.environ.get("DIFFPOSE_CACHE")
    if override:
        path = Path(override)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
        path = base / "diffpose_ros"
    path.mkdir(parents=True, exist_ok=True)
    return path


def installed_share_dir() -> Path | None:
    """share/diffpose_ros of a colcon install (None outside one, or without ament_index_python)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory("diffpose_ros"))
    except (PackageNotFoundError, OSError):    # not installed; no AMENT_PREFIX_PATH at all
        return None


def _sample_files(folder: Path) -> list[Path]:
    files = [folder / name for name in DEFAULT_SAMPLE_IMAGES]
    return files if all(f.is_file() for f in files) else []


def default_sample_images() -> list[Path]:
    """The sample camera's default photos: from the shared data next to the checkout (or
    $DIFFPOSE_SHARED_DATA), else from the install space. A clear error where neither has them."""
    places = [IMAGES_DIR]
    share = None if _sample_files(IMAGES_DIR) else installed_share_dir()   # look up ROS only if needed
    if share is not None:
        places.append(share / "sample_images")
    for place in places:
        if _sample_files(place):
            return _sample_files(place)
    raise FileNotFoundError(
        f"the sample camera's default photos ({', '.join(DEFAULT_SAMPLE_IMAGES)}) are in none of: "
        f"{', '.join(str(p) for p in places)}. Give the camera a source (sample_source:=<folder, image "
        "files or a video>), set DIFFPOSE_SHARED_DATA, or rebuild with ../shared/data beside the checkout")


def detector_model_problem(value: str) -> str | None:
    """What is wrong with a detector_model setting, or None: a user-given path must exist; the
    bundled model ('') must have been exported."""
    if value:
        if not Path(value).is_file():
            return (f"detector_model '{value}' does not exist (give the path of a YOLOv8/YOLO11-pose ONNX, "
                    "or '' for the bundled yolo11n-pose)")
        return None
    from diffpose_ros.detector.export import DEFAULT_ONNX
    if not DEFAULT_ONNX.is_file():
        return (f"the bundled detector {DEFAULT_ONNX} is not exported yet: run `ros2 run diffpose_ros "
                "export_detector` once (colcon install; needs `pip install --no-deps ultralytics==8.4.190`), "
                "or `diffpose-export-detector` in the project's venv, or set detector_model")
    return None
