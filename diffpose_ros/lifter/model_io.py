"""Save / load a lifter bundle (a directory; no network, no GPU needed to load).

Files in a DiffPose bundle directory:
  config.json       architecture, diffusion schedule, covariance settings
  model.pt          state dicts of encoder, scale (the residual scale sigma) and denoiser
                    (torch.load weights_only)
  gmm.npz           mixture {weights (M,), means (M,48), covs (M,48,48)} of H_K (normalised units)
  calibration.json  covariance calibration per (steps, N), fitted on held-out clips (calibration.py)
A baseline bundle has config.json (model = "baseline") and model.pt only.
"""
import copy
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .denoiser import Denoiser
from .encoder import build_encoder
from .initial import ResidualScale

DEFAULT_CONFIG = {
    "format": "diffpose_ros-lifter",
    "version": 2,
    "model": "frame",
    "window": 1,
    "encoder": {"hidden": 96, "layers": 3, "heads": 4, "cheb_k": 3, "temporal_hidden": 64},
    "denoiser": {"hidden": 96, "layers": 3, "heads": 4, "cheb_k": 3, "step_dim": 64, "loss": "mse"},
    "diffusion": {"n_steps": 50, "schedule": "cosine"},
    "sampling": {"start_step": 50, "aggregation": "mean", "mirror": False},
    "covariance": {"shrinkage_n0": 2.0, "floor_m": 0.005},
}
FORMAT_VERSION = 2


@dataclass
class Bundle:
    config: dict
    encoder: torch.nn.Module
    scale: ResidualScale
    denoiser: torch.nn.Module = None
    gmm: dict = None          # numpy arrays: weights, means, covs
    calibration: dict = field(default_factory=dict)
    path: Path = None

    @property
    def temporal(self) -> bool:
        return self.config["model"] == "temporal"

    @property
    def window(self) -> int:
        return int(self.config["window"]) if self.temporal else 1

    @property
    def mirror(self) -> bool:
        """config["sampling"]["mirror"]: the sampler lifts its odd hypotheses from the input's
        mirror image (sampler.py)."""
        return bool((self.config.get("sampling") or {}).get("mirror", False))

    @property
    def window_fps(self) -> float:
        """The frame rate of the training windows (diffpose-train's --fps; 10 for a temporal
        model that does not record it): the lifter samples its windows at this rate."""
        return float((self.config.get("data") or {}).get("fps") or 10.0)


def make_config(model="frame", window=27, **overrides) -> dict:
    if model not in ("frame", "temporal"):
        raise ValueError(f"model must be 'frame' or 'temporal', got {model!r}")
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    cfg["model"] = model
    cfg["window"] = int(window) if model == "temporal" else 1
    for key, val in overrides.items():
        if isinstance(val, dict):
            cfg[key].update(val)
        else:
            cfg[key] = val
    return cfg


def build_modules(cfg: dict):
    enc = build_encoder(cfg["encoder"], cfg["model"] == "temporal", cfg["window"])
    den = Denoiser(context_dim=cfg["encoder"]["hidden"], n_steps=cfg["diffusion"]["n_steps"],
                   **cfg["denoiser"])
    return enc, ResidualScale(), den


def identity_gmm(n_components=5, dim=48, seed=0) -> dict:
    """Untrained placeholder mixture: standard normal kernels (equal weights, zero means)."""
    return {"weights": np.full(n_components, 1.0 / n_components),
            "means": np.zeros((n_components, dim)),
            "covs": np.repeat(np.eye(dim)[None], n_components, 0)}


def init_bundle(out_dir=None, model="frame", window=27, seed=0, **overrides) -> Bundle:
    """A freshly initialised (untrained) bundle, saved to out_dir if given (for export tests)."""
    torch.manual_seed(seed)
    cfg = make_config(model, window, **overrides)
    enc, scale, den = build_modules(cfg)
    b = Bundle(cfg, enc, scale, den, identity_gmm(), {})
    if out_dir is not None:
        save_bundle(b, out_dir)
    return b


def _atomic_write(path: Path, write_fn):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; shipped files must be world-readable
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_json(obj, path):
    def w(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
    _atomic_write(Path(path), w)


def save_bundle(b: Bundle, out_dir) -> Path:
    out = Path(out_dir)
    save_json(b.config, out / "config.json")
    state = {"encoder": b.encoder.state_dict(), "scale": b.scale.state_dict()}
    if b.denoiser is not None:
        state["denoiser"] = b.denoiser.state_dict()
    _atomic_write(out / "model.pt", lambda tmp: torch.save(state, tmp))
    if b.gmm is not None:
        _atomic_write(out / "gmm.npz", lambda tmp: np.savez(
            open(tmp, "wb"), **{k: np.asarray(v, np.float64) for k, v in b.gmm.items()}))
    save_json(b.calibration or {}, out / "calibration.json")
    b.path = out
    return out


def load_bundle(weights_dir) -> Bundle:
    d = Path(weights_dir)
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no lifter bundle in {d} (missing config.json)")
    current = cfg_path
    try:   # any damage to a file names that file, instead of a deep torch/json/numpy message
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("model") == "baseline":
            raise ValueError(f"{d} holds a baseline model; load it with baseline.load_baseline")
        if cfg.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {cfg.get('version')} (this code reads version "
                             f"{FORMAT_VERSION}); retrain with diffpose-train")
        enc, scale, den = build_modules(cfg)
        current = d / "model.pt"
        state = torch.load(current, map_location="cpu", weights_only=True)
        enc.load_state_dict(state["encoder"])
        scale.load_state_dict(state["scale"])
        if "denoiser" in state:
            den.load_state_dict(state["denoiser"])
        else:
            den = None
        gmm = None
        current = d / "gmm.npz"
        if current.is_file():
            with np.load(current) as z:
                gmm = {k: z[k] for k in ("weights", "means", "covs")}
        current = d / "calibration.json"
        cal = json.loads(current.read_text()) if current.is_file() else {}
    except FileNotFoundError:
        raise
    except Exception as err:
        raise ValueError(f"corrupt or incompatible lifter weights file {current}: "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    for m in (enc, scale, den):
        if m is not None:
            m.eval()
    return Bundle(cfg, enc, scale, den, gmm, cal, d)
