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
