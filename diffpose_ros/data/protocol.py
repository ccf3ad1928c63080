"""Evaluation protocols: which clips of a MotionBank train, validate and test a model.

    splits = protocol_splits(bank, "leave-out-v1")     # {name: sorted clip indices}

"leave-out-v1" measures generalisation (issue 12): whole motion sources, actions and styles
that training never sees.
  * test_source:  every clip of `cmu-iclone` (a skeleton, a body size and motions of its own);
  * test_actions: Bandai Namco actions bow and guide (dataset 1) and wave-both-hands (dataset 2),
                  every style;
  * test_styles:  Bandai Namco styles tired (dataset 1), elderly and exhausted (dataset 2), every
                  action not already in test_actions;
  * train / val:  all other clips; val is ~8 % of them chosen by a hash of the clip key (stable
                  when clips are added), for monitoring and calibration.
The scaled-skeleton rows are `PairGenerator(bank, splits[name]).fixed_set(..., scale=0.9 / 1.15)`.

"all": every clip trains except the val share (not shipped: the shipped weights are trained with
leave-out-v1, so that every protocol number describes them).

The test sets are disjoint from train/val and from each other.
"""
from __future__ import annotations

import hashlib

import numpy as np

PROTOCOLS = ("leave-out-v1", "all")
VAL_PERCENT = 8
LEAVE_OUT_V1 = {
    "test_source": ("cmu-iclone",),
    "test_actions": {"bandai-namco-1": ("bow", "guide"), "bandai-namco-2": ("wave-both-hands",)},
    "test_styles": {"bandai-namco-1": ("tired",), "bandai-namco-2": ("elderly", "exhausted")},
}


def key_hash(key: str) -> int:
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)


def _val_mask(keys) -> np.ndarray:
    return np.array([key_hash(k) % 100 < VAL_PERCENT for k in keys], bool)


def protocol_splits(bank, name: str = "leave-out-v1") -> dict:
    """{split name: sorted int64 clip indices} of a protocol (see the module docstring)."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {list(PROTOCOLS)}")
    meta = bank.meta
    source, action, style = meta["source"], meta["action"], meta["style"]
    n = len(source)
    taken = np.zeros(n, bool)
    splits = {}
    if name == "leave-out-v1":
        test_source = np.isin(source, LEAVE_OUT_V1["test_source"])
        test_actions = np.zeros(n, bool)
        for src, acts in LEAVE_OUT_V1["test_actions"].items():
            test_actions |= (source == src) & np.isin(action, acts)
        test_styles = np.zeros(n, bool)
        for src, sty in LEAVE_OUT_V1["test_styles"].items():
            test_styles |= (source == src) & np.isin(style, sty)
        test_styles &= ~test_actions
        for split, mask in (("test_source", test_source), ("test_actions", test_actions),
                            ("test_styles", test_styles)):
            splits[split] = np.flatnonzero(mask & ~taken)
            taken |= mask
    rest = ~taken
    val = rest & _val_mask(meta["key"])
    splits["train"] = np.flatnonzero(rest & ~val)
    splits["val"] = np.flatnonzero(val)
    order = ["train", "val"] + [k for k in splits if k.startswith("test")]
    return {k: splits[k].astype(np.int64) for k in order}


def split_table(bank, splits: dict) -> list[dict]:
    """Rows {split, source, clips, frames, seconds} (seconds at the bank's frame rate), plus a
    row per split with source 'all'."""
    rows = []
    for split, idx in splits.items():
        src = bank.meta["source"][idx]
        for s in sorted(set(src.tolist())) + ["all"]:
            sel = idx if s == "all" else idx[src == s]
            frames = int(bank.length[sel].sum())
            rows.append({"split": split, "source": s, "clips": int(len(sel)), "frames": frames,
                         "seconds": round(frames / bank.fps, 1)})
    return rows
