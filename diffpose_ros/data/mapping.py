"""Map a BVH skeleton onto the 17 H36M joints with JSON skeleton maps.

A map file (skeleton_maps/<name>.json) has {"name", "description", "joints": {h36m_name: spec}}.
A spec is one of
  * "JointName"                      - that joint (End Sites are "<parent>_end");
  * {"A": wa, "B": wb, ...}          - affine mix sum(w * position); weights must sum to 1 so
                                       the result moves with the skeleton (weights outside [0, 1]
                                       extrapolate, e.g. a head top along the neck direction);
                                       a key "A|B" means joint A, or B if A does not exist;
  * {"at": "A", "offset": [x, y, z]} - a point rigidly attached to joint A: its position plus
                                       its world rotation times the offset (metres, in A's own
                                       frame: the frame its children's OFFSETs are given in). For
                                       points a rig has no joint for, e.g. the nose on the head;
                                       needs the joint rotations from forward kinematics;
  * [spec, spec, ...]                - alternatives, the first one whose joints all exist wins.
A map resolves, for a list of joint names, to a (17, J) weight matrix W plus the rigid offsets;
positions map as W @ X (+ R_A @ offset for the rigid points).

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
            if _is_rigid(alt):
                off = alt["offset"]
                if not isinstance(alt["at"], str) or not (isinstance(off, list) and len(off) == 3
                                                           and all(isinstance(v, (int, float)) for v in off)):
                    raise ValueError(f"{path}: rigid point for {h!r} needs 'at' (a joint name) and "
                                     f"'offset' (3 numbers, metres), got {alt!r}")
            elif isinstance(alt, dict):
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


def _is_rigid(alt) -> bool:
    return isinstance(alt, dict) and set(alt) == {"at", "offset"}


def _resolve_alt(alt, index):
    """(weights {joint_index: w}, rigid offset or None) for one spec alternative, or None if a
    joint is missing."""
    if _is_rigid(alt):
        j = index.get(alt["at"])
        return None if j is None else ({j: 1.0}, np.asarray(alt["offset"], np.float64))
    if isinstance(alt, str):
        alt = {alt: 1.0}
    out = {}
    for key, w in alt.items():
        found = next((index[n] for n in key.split("|") if n in index), None)
        if found is None:
            return None
        out[found] = out.get(found, 0.0) + float(w)
    return out, None


def resolve_map(joint_names, skel_map):
    """(W (17, J), rigid [(h36m index, joint index, offset (3,) metres)]); ValueError naming the
    H36M joint that cannot be placed."""
    if isinstance(skel_map, (str, Path)):
        skel_map = load_map(skel_map)
    index = {n: i for i, n in enumerate(joint_names)}
    W = np.zeros((len(H36M_JOINTS), len(joint_names)))
    rigid = []
    for k, h in enumerate(H36M_JOINTS):
        spec = skel_map["joints"][h]
        for alt in (spec if isinstance(spec, list) else [spec]):
            found = _resolve_alt(alt, index)
            if found is not None:
                weights, offset = found
                for j, w in weights.items():
                    W[k, j] = w
                if offset is not None:
                    rigid.append((k, next(iter(weights)), offset))
                break
        else:
            raise ValueError(f"skeleton map {skel_map.get('name')!r} cannot place H36M joint {h!r} "
                             f"(spec {spec!r}) from joints {list(joint_names)}")
    return W, rigid


def map_weights(joint_names, skel_map) -> np.ndarray:
    """(17, J) weight matrix of the map's joint positions (rigid points: their joint's row)."""
    return resolve_map(joint_names, skel_map)[0]


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


def to_h36m(positions, joint_names, skel_map, rotations=None) -> np.ndarray:
    """Positions (F, J, 3) (+ world rotations (F, J, 3, 3) if the map has rigid points) ->
    (F, 17, 3) in H36M order, with the positions' dtype."""
    positions = np.asarray(positions)
    if positions.ndim != 3 or positions.shape[1:] != (len(joint_names), 3):
        raise ValueError(f"positions must be (F, {len(joint_names)}, 3), got {positions.shape}")
    W, rigid = resolve_map(joint_names, skel_map)
    used = np.flatnonzero(np.abs(W).sum(0) > 0)          # unused joints may be NaN (pruned FK)
    out = np.einsum("kj,fjd->fkd", W[:, used], positions[:, used])
    if rigid:
        if rotations is None:
            raise ValueError("this skeleton map places points rigidly on joints: pass the joint rotations")
        for k, j, off in rigid:
            out[:, k] += np.asarray(rotations)[:, j] @ off
    return out.astype(positions.dtype, copy=False)
