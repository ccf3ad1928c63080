"""Map a BVH skeleton onto the 17 H36M joints with JSON skeleton maps.

A map file (skeleton_maps/<name>.json) has {"name", "description", "joints": {h36m_name: spec}}.
A spec is one of
  * "JointName"                      - that joint (End Sites are "<parent>_end");
  * {"A": wa, "B": wb, ...}          - affine mix sum(w * position); weights must sum to 1 so
                                       the result moves with the skeleton (weights outside [0, 1]
                                       extrapolate, e.g. a head top along the neck direction);
                                       a key "A|B" means joint A, or B if A does not exist;
  * [spec, spec, ...]                - alternatives, the first one whose joints all exist wins.
A map resolves, for a list of joint names, to a (17, J) weight matrix W; positions map as W @ X.

Optional keys:
  * "bvh": {"units": "cm" | "m" | ..., "unit_scale": float, "position_channels": "replace" | "add"}
    - how files of this convention are read (bvh.load_bvh); a source spec can override them;
  * "floor_joints": [names] - foot joints (toes, heels) whose lowest point over a clip gives the
    floor height (data/motion.py), since not every capture is floor-calibrated.
Auto-detection (`detect_map`) picks the one shipped map whose joints all resolve; a file that fits
no map, or several, is an error naming it (pass the map explicitly then).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from diffpose_ros.skeleton import H36M_JOINTS

MAPS_DIR = Path(__file__).resolve().parent / "skeleton_maps"


def available_maps() -> list[str]:
    return sorted(p.stem for p in MAPS_DIR.glob("*.json"))


def load_map(name_or_path) -> dict:
    """Load a skeleton map by name (e.g. "cmu") or by path to a JSON file; validates its layout."""
    path = Path(name_or_path)
    if not path.suffix == ".json" or not path.exists():
        path = MAPS_DIR / f"{name_or_path}.json"
    if not path.exists():
        raise ValueError(f"unknown skeleton map {name_or_path!r}; available: {available_maps()}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON: {e}") from e
    joints = data.get("joints")
    if not isinstance(joints, dict):
        raise ValueError(f"{path}: missing 'joints' object")
    missing = [j for j in H36M_JOINTS if j not in joints]
    extra = [j for j in joints if j not in H36M_JOINTS]
    if missing or extra:
        raise ValueError(f"{path}: joints must be exactly the 17 H36M joints; missing {missing}, unknown {extra}")
    for h, spec in joints.items():
        for alt in (spec if isinstance(spec, list) else [spec]):
            if isinstance(alt, dict):
                if not alt or abs(sum(alt.values()) - 1.0) > 1e-6:
                    raise ValueError(f"{path}: weights for {h!r} must sum to 1, got {sum(alt.values())}")
            elif not isinstance(alt, str):
                raise ValueError(f"{path}: bad spec for {h!r}: {alt!r}")
    bvh = data.setdefault("bvh", {})
    if not isinstance(bvh, dict) or set(bvh) - {"units", "unit_scale", "position_channels"}:
        raise ValueError(f"{path}: 'bvh' must be an object with units / unit_scale / position_channels, got {bvh!r}")
    floor = data.setdefault("floor_joints", [])
    if not isinstance(floor, list) or not all(isinstance(n, str) for n in floor):
        raise ValueError(f"{path}: 'floor_joints' must be a list of joint names")
    data.setdefault("name", path.stem)
    data["path"] = str(path)
    return data


def _resolve_alt(alt, index):
    """Weights {joint_index: w} for one spec alternative, or None if a joint is missing."""
    if isinstance(alt, str):
        alt = {alt: 1.0}
    out = {}
    for key, w in alt.items():
        found = next((index[n] for n in key.split("|") if n in index), None)
        if found is None:
            return None
        out[found] = out.get(found, 0.0) + float(w)
    return out


def map_weights(joint_names, skel_map) -> np.ndarray:
    """(17, J) weight matrix mapping the named joints to H36M; ValueError if a joint cannot be resolved."""
    if isinstance(skel_map, (str, Path)):
        skel_map = load_map(skel_map)
    index = {n: i for i, n in enumerate(joint_names)}
    W = np.zeros((len(H36M_JOINTS), len(joint_names)))
    for k, h in enumerate(H36M_JOINTS):
        spec = skel_map["joints"][h]
        for alt in (spec if isinstance(spec, list) else [spec]):
            weights = _resolve_alt(alt, index)
            if weights is not None:
                for j, w in weights.items():
                    W[k, j] = w
                break
        else:
            raise ValueError(f"skeleton map {skel_map.get('name')!r} cannot place H36M joint {h!r} "
                             f"(spec {spec!r}) from joints {list(joint_names)}")
    return W


def detect_map(joint_names, source: str = "") -> str:
    """Name of the one shipped map whose joints all exist among joint_names (`source`, e.g. the
    file, only labels the error)."""
    fits = []
    for name in available_maps():
        try:
            map_weights(joint_names, load_map(name))
            fits.append(name)
        except ValueError:
            continue
    where = f"{source}: " if source else ""
    if not fits:
        raise ValueError(f"{where}unknown skeleton convention (no map in {available_maps()} fits); "
                         f"joint names found: {list(joint_names)}")
    if len(fits) > 1:
        raise ValueError(f"{where}ambiguous skeleton convention: maps {fits} all fit; name one explicitly")
    return fits[0]


def floor_joint_indices(joint_names, skel_map) -> list[int]:
    """Indices of the map's floor joints present in joint_names (all joints if it names none)."""
    if isinstance(skel_map, (str, Path)):
        skel_map = load_map(skel_map)
    index = {n: i for i, n in enumerate(joint_names)}
    found = [index[n] for n in skel_map.get("floor_joints", []) if n in index]
    return found or list(range(len(joint_names)))


def to_h36m(positions, joint_names, skel_map) -> np.ndarray:
    """Positions (F, J, 3) -> (F, 17, 3) in H36M order, with the same dtype."""
    positions = np.asarray(positions)
    if positions.ndim != 3 or positions.shape[1:] != (len(joint_names), 3):
        raise ValueError(f"positions must be (F, {len(joint_names)}, 3), got {positions.shape}")
    W = map_weights(joint_names, skel_map)
    return np.einsum("kj,fjd->fkd", W, positions).astype(positions.dtype, copy=False)
