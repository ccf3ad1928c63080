"""How the numbers in the shipped skeleton maps were chosen, as code (re-run to re-derive them).

    python -m diffpose_ros.data.map_design            # prints the derived numbers per map
    python -m diffpose_ros.data.map_design --write    # and writes them into skeleton_maps/*.json

The maps must put the 17 joints where the live 2D path puts them (detector/coco_to_h36m.py on
COCO keypoints) and where Human3.6M annotates them, not where a rig's joint centres happen to be:

* pelvis = midpoint of the hips, thorax = midpoint of the shoulders, spine = midpoint of pelvis
  and thorax: exactly coco_to_h36m's definitions, so the 2D a detector gives at run time is
  the projection of the training joints.
* hips and shoulders are moved along the hip (shoulder) axis, about their midpoint, so that
  their distance is HIP_WIDTH (SHOULDER_WIDTH) x the rig's standing height: the H36M-like widths
  of data/body.REFERENCE (0.260 and 0.319 m at 1.75 m). Rig hip joints sit closer together than
  the hip keypoints a detector or a Human3.6M annotation marks (measured on real people: 130 mm
  half-width against 75 mm in the previous model); shoulder joints vary from rig to rig.
* neck_nose = the nose tip, as coco_to_h36m feeds it (the COCO nose keypoint), and head =
  coco_to_h36m's head point: the face centre F (mean of eyes and ears) pushed up along
  thorax -> F by HEAD_UP = 0.35. Both are points rigid with the head joint (map spec
  {"at": head joint, "offset": ...}), placed in a neutral frame of the rig (a T-pose frame, or
  the frames of a normal walk) from
    - the eyes E: the rig's eye joints where it has them (iClone, Daz); else E = thorax +
      EYE_UP x trunk up + EYE_FORWARD x trunk forward, the mean ratios measured on the two rigs
      with eyes (iClone 0.452 / 0.236, Daz 0.425 / 0.223; trunk = |pelvis -> thorax|);
    - nose tip = E + NOSE_FROM_EYES x trunk (about 4 cm below and 3 cm ahead of the eye centres
      for a 47 cm trunk), face centre F = E + FACE_FROM_EYES x trunk (the ears are ~9 cm behind
      the eyes and about 1 cm lower: F is half way);
  with "up" the world vertical and "forward" the horizontal facing direction (left hip -> right
  hip crossed with up). Compared with Human3.6M's own joint 9 (about 12 cm straight above the
  thorax, inside the head at chin height) this nose is ~4 cm higher and ~12 cm forward: the
  live path's definition wins because it is what the lifter is given at run time
  (diffpose-build-dataset --bones prints both).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from diffpose_ros import paths
from diffpose_ros.data.body import REFERENCE, REFERENCE_HEIGHT, skeleton_stats
from diffpose_ros.data.bvh import UNIT_SCALES, forward_kinematics, parse_bvh
from diffpose_ros.data.mapping import MAPS_DIR, load_map, resolve_map, to_h36m
from diffpose_ros.detector.coco_to_h36m import HEAD_UP

HIP_WIDTH = REFERENCE["hip_width"] / REFERENCE_HEIGHT
SHOULDER_WIDTH = REFERENCE["shoulder_width"] / REFERENCE_HEIGHT
EYE_UP, EYE_FORWARD = (0.452 + 0.425) / 2, (0.236 + 0.223) / 2
NOSE_FROM_EYES = (-0.085, 0.064)           # (up, forward) x trunk
FACE_FROM_EYES = (-0.010, -0.096)

# per map: the rig's joints and a neutral clip/frames to derive the rigid points in
RIGS = {
    "bandai_namco": dict(hips=("UpperLeg_L", "UpperLeg_R"), shoulders=("UpperArm_L", "UpperArm_R"), head="Head",
                         eyes=None, clip=("mocap", "bandai-namco-1/dataset-1_walk_normal_001.bvh"), frames=None),
    "iclone_cc3": dict(hips=("CC_Base_L_Thigh", "CC_Base_R_Thigh"), shoulders=("CC_Base_L_Upperarm", "CC_Base_R_Upperarm"),
                       head="CC_Base_Head", eyes=("CC_Base_L_Eye", "CC_Base_R_Eye"),
                       clip=("cmu", "cmu_iclone_cc3/All_BVH/subjects/007/007_03.bvh"), frames=[0]),
    "daz": dict(hips=("lThigh", "rThigh"), shoulders=("lShldr", "rShldr"), head="head", eyes=("leftEye", "rightEye"),
                clip=("cmu", "cmu_daz_jaanga/bvh-reader/bvh-cmu-daz/05_01.bvh"), frames=[0]),
    "cmu_mb": dict(hips=("LeftUpLeg", "RightUpLeg"), shoulders=("LeftArm", "RightArm"), head="Head", eyes=None,
                   clip=("cmu", "cmu_mb_fairmotion/tests/data/01_01.bvh"), frames=[0]),
}


def _clip_path(where, rel):
    if where == "mocap":
        return paths.MOCAP_DIR / rel
    from diffpose_ros.data.sources import unpack_cmu
    return unpack_cmu(rel.split("/", 1)[0]) / rel


def _widen(a, b, w):
    return {a: round(0.5 + w / 2, 4), b: round(0.5 - w / 2, 4)}


def derive(name: str, iterations: int = 3) -> dict:
    """The derived numbers of one map: hip / shoulder widening and the two rigid head points."""
    rig, skel = RIGS[name], load_map(name)
    bvh = parse_bvh(_clip_path(*rig["clip"]))
    opts = skel["bvh"]
    scale = float(opts["unit_scale"]) if "unit_scale" in opts else UNIT_SCALES[opts.get("units", "cm")]
    pos, rot = forward_kinematics(bvh, scale, opts.get("position_channels", "replace"), return_rotations=True)
    i = {n: k for k, n in enumerate(bvh.names)}
    frames = np.arange(len(pos)) if rig["frames"] is None else np.asarray(rig["frames"])
    P = pos[frames]
    hl, hr = P[:, i[rig["hips"][0]]], P[:, i[rig["hips"][1]]]
    sl, sr = P[:, i[rig["shoulders"][0]]], P[:, i[rig["shoulders"][1]]]
    pelvis, thorax = (hl + hr) / 2, (sl + sr) / 2
    trunk = np.linalg.norm(thorax - pelvis, axis=-1)[:, None]
    up = np.array([0.0, 1.0, 0.0])
    fwd = np.cross(hl - hr, up)
    fwd[:, 1] = 0
    fwd /= np.linalg.norm(fwd, axis=-1, keepdims=True)
    if rig["eyes"]:
        eyes = (P[:, i[rig["eyes"][0]]] + P[:, i[rig["eyes"][1]]]) / 2
    else:
        eyes = thorax + trunk * (EYE_UP * up + EYE_FORWARD * fwd)
    nose = eyes + trunk * (NOSE_FROM_EYES[0] * up + NOSE_FROM_EYES[1] * fwd)
    face = eyes + trunk * (FACE_FROM_EYES[0] * up + FACE_FROM_EYES[1] * fwd)
    head_pt = face + HEAD_UP * (face - thorax)
    h, Rh = P[:, i[rig["head"]]], rot[frames, i[rig["head"]]]
    local = lambda x: np.median(np.einsum("fji,fj->fi", Rh, x - h), axis=0)   # noqa: E731  R^T (x - p)

    # widths: relative to the standing height of the mapped skeleton, which depends on the head
    # point and the widened hips, so iterate (converges in 2-3 rounds)
    joints = json.loads(json.dumps(skel["joints"]))
    joints["neck_nose"] = {"at": rig["head"], "offset": np.round(local(nose), 4).tolist()}
    joints["head"] = {"at": rig["head"], "offset": np.round(local(head_pt), 4).tolist()}
    width_h = np.median(np.linalg.norm(hl - hr, axis=-1))
    width_s = np.median(np.linalg.norm(sl - sr, axis=-1))
    all_rot = rot
    for _ in range(iterations):
        trial = dict(skel, joints=joints)
        W, rigid = resolve_map(bvh.names, trial)
        mapped = to_h36m(pos, bvh.names, trial, all_rot)
        floor_idx = [i[n] for n in skel["floor_joints"] if n in i]
        floor = float(np.percentile(pos[:, floor_idx, 1].min(axis=1), 5))
        stature = skeleton_stats(mapped, floor)["stature"]
        wh, ws = HIP_WIDTH * stature / width_h, SHOULDER_WIDTH * stature / width_s
        joints["l_hip"], joints["r_hip"] = _widen(*rig["hips"], wh), _widen(rig["hips"][1], rig["hips"][0], wh)
        joints["l_shoulder"] = _widen(*rig["shoulders"], ws)
        joints["r_shoulder"] = _widen(rig["shoulders"][1], rig["shoulders"][0], ws)
    return {"joints": joints, "stature": round(stature, 3), "hip_factor": round(wh, 3),
            "shoulder_factor": round(ws, 3), "rig_hip_width": round(float(width_h), 3),
            "rig_shoulder_width": round(float(width_s), 3)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="write the derived joints into the map files")
    ap.add_argument("--maps", nargs="+", default=list(RIGS), choices=list(RIGS))
    args = ap.parse_args(argv)
    out = {}
    for name in args.maps:
        d = derive(name)
        out[name] = {k: v for k, v in d.items() if k != "joints"}
        out[name].update(neck_nose=d["joints"]["neck_nose"], head=d["joints"]["head"])
        if args.write:
            path = MAPS_DIR / f"{name}.json"
            data = json.loads(path.read_text())
            data["joints"] = d["joints"]
            path.write_text(json.dumps(data, indent=2) + "\n")
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
