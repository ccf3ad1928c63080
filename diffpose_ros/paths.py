"""Where the package finds its data, weights and caches (no ROS needed)."""
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"

# ../shared/data next to the checkout; DIFFPOSE_SHARED_DATA overrides it
SHARED_DATA = Path(os.environ.get("DIFFPOSE_SHARED_DATA", REPO_DIR.parent / "shared" / "data"))
MOCAP_DIR = SHARED_DATA / "mocap"
IMAGES_DIR = SHARED_DATA / "images"


def cache_dir() -> Path:
    """Writable cache (datasets, TensorRT engines): $DIFFPOSE_CACHE or ~/.cache/diffpose_ros."""
    path = Path(os.environ.get("DIFFPOSE_CACHE", Path.home() / ".cache" / "diffpose_ros"))
    path.mkdir(parents=True, exist_ok=True)
    return path
