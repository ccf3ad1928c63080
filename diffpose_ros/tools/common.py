"""What the lifter tools (train, fit-gmm, calibrate, evaluate, ablation) share: the data arguments,
the motion bank and protocol splits, the generators and the fixed evaluation sets.

The bundle records the data it was trained on (config["data"]: sources, protocol, fps); the other
tools read it from there, so a bundle is always evaluated and calibrated on clips it never trained
on, with the generator settings it trained with.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

VAL_SAMPLES = 12000     # held-out draws of the val clips for H_K and calibration
TEST_PER_CLIP = 30      # per test clip (the test sets have 60 to 220 clips)
TEST_ROWS = ("test_source", "test_actions", "test_styles")
TEST_SCALES = (1.0, 0.9, 1.15)


def plot_path(value: str):
    """argparse type of the evaluation tools' --plot: a file, or "none" (also "" or ".") for no plot."""
    return None if value in ("", ".", "none") else Path(value)


def add_data_args(p: argparse.ArgumentParser, training: bool = False):
    """--data / --protocol / --fps (training) or the override flags (other tools)."""
    if training:
        p.add_argument("--data", nargs="+", default=["shared"], metavar="SPEC",
                       help="motion sources (data/sources.py): shared, bvh:DIR[:map=..][:units=..]"
                            "[:fps=..][:weight=..], h36m:FILE[:subjects=..]; default: shared")
        p.add_argument("--protocol", default="leave-out-v1", choices=["leave-out-v1", "all"],
                       help="which clips train (leave-out-v1 keeps whole sources, actions and styles "
                            "out for diffpose-evaluate; all = everything but the val share)")
        p.add_argument("--fps", type=float, default=None,
                       help="frame rate of the motion bank (default: 30 frame model, 10 temporal)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)


def load_bank(data_cfg: dict, progress: bool = True):
    from ..data.motion import MotionBank
    return MotionBank.load(sources=data_cfg["sources"], fps=float(data_cfg["fps"]), progress=progress)


def splits_for(bank, data_cfg: dict) -> dict:
    from ..data.protocol import protocol_splits
    return protocol_splits(bank, data_cfg["protocol"])


def generator(bank, clips, window: int, data_cfg: dict | None = None):
    from ..data.generator import PairGenerator
    weights = (data_cfg or {}).get("source_weights")
    return PairGenerator(bank, clips, window=window, source_weights=weights)


# The published covariance carries the body-size ambiguity of a monocular camera for people from
# a small child to a very tall adult: calibration draws heights from this wider prior (the model
# itself trains on adult statures), so that the ellipsoids hold for the 0.9 / 1.15 scaled
# skeletons of the protocol too (1.3 to 2.0 m), at the price of over-covering average adults.
CALIBRATION_HEIGHTS = {"height_mixture": ((1.0, 1.70, 0.16),), "height_range": (1.25, 2.15)}


def held_out_draws(bank, clips, window: int, n: int, seed: int = 0, data_cfg: dict | None = None,
                   heights: dict | None = None) -> dict:
    """n samples of held-out clips drawn like training samples (random body, camera, mirror and
    noise; seeded, so the same every time): for H_K, monitoring and calibration. `heights`
    overrides the body prior (CALIBRATION_HEIGHTS)."""
    from ..data.body import BodyConfig
    from ..data.generator import PairGenerator
    body = BodyConfig(**heights) if heights else None
    gen = PairGenerator(bank, clips, window=window, body=body,
                        source_weights=(data_cfg or {}).get("source_weights"))
    return gen.sample(np.random.default_rng([seed, 7]), n)


TYPICALITY_SAMPLES = 20_000


def training_poses(bank, clips, seed: int = 0, data_cfg: dict | None = None, n: int = TYPICALITY_SAMPLES):
    """True root-relative poses (n,17,3) of the training clips, drawn like training samples
    (body, mirror; one frame each): what the lifter's pose typicality is measured against."""
    return held_out_draws(bank, clips, 1, n, seed + 5, data_cfg)["pose3d"]


def fixed_set(bank, clips, window: int, n_per_clip: int, scale: float = 1.0, seed: int = 0,
              data_cfg: dict | None = None) -> dict:
    return generator(bank, clips, window, data_cfg).fixed_set(seed=seed, n_per_clip=n_per_clip, scale=scale)


def subset_order(d: dict, seed: int = 0) -> np.ndarray:
    """A seeded order of a fixed set's samples: its first n, sorted, are subset(d, n, seed), so
    the subsets of one seed are nested."""
    return np.random.default_rng(seed).permutation(len(d["pose3d"]))


def take(d: dict, idx) -> dict:
    return {k: v[idx] for k, v in d.items()}


def subset(d: dict, n: int | None, seed: int = 0) -> dict:
    """At most n samples of a fixed set (a seeded random choice, kept in order)."""
    if n is None or n >= len(d["pose3d"]):
        return d
    return take(d, np.sort(subset_order(d, seed)[:n]))


def bundle_data_config(b) -> dict:
    cfg = b.config.get("data")
    if not cfg or "protocol" not in cfg:
        raise ValueError(f"{b.path}: the bundle does not record its training data (config['data']); "
                         "retrain it with diffpose-train")
    return cfg
