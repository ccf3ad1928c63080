"""Cache files of the data pipeline (in paths.cache_dir()), written so a crash leaves no half file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def save_npz(path, arrays: dict) -> Path:
    """np.savez to a temporary file beside `path`, then an atomic rename: readers see the old
    file or the whole new one, never a partial one (two processes may fill the same cache)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
