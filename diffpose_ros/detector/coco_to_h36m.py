"""COCO-17 keypoints (detector order) -> H36M-17 joints (lifter order).

Vectorised over any leading shape: ``coco_to_h36m(kpts (...,17,2), conf (...,17))``.

Joint by joint (C.x = COCO keypoint, H.x = H36M joint):

* r/l hip, knee, ankle, shoulder, elbow, wrist: taken directly from COCO.
* pelvis = midpoint of the hips. H36M's pelvis is the hip-joint centre midpoint; COCO hips
  are annotated at the hip joints too, so the midpoint is the same point.
* thorax = midpoint of the shoulders (the usual choice; H36M's thorax sits at the base of
  the neck, between the shoulder joints).
* spine = 0.5 pelvis + 0.5 thorax. H36M's mean segment lengths are about 233 mm
  (pelvis-spine) and 257 mm (spine-thorax), i.e. the spine joint lies at 0.48 of the way up;
  with a bent torso the chord midpoint differs from that by well under 1 cm, so the plain
  midpoint is used.
* neck_nose = nose. H36M's joint 9 is on the face about 12 cm above the thorax, i.e.
  at about nose height; mixing in the thorax would move it down the neck. When the person
  faces away, the nose confidence drops and the uncertainty model widens it accordingly.
* head = the face centre (confidence-weighted mean of eyes and ears, which sit at eye level)
  pushed up along the neck direction (thorax -> face centre) by HEAD_UP = 0.35 of that
  distance. H36M's head joint is near the forehead, ~11 cm above the nose joint; the
  ear/eye level is ~15-18 cm above mid-shoulders, so 0.35 x that is the ~6 cm from eye level
  to the forehead.

Confidences: a derived joint is only as reliable as the least reliable keypoint it is built
from, so the *minimum* of the inputs is used (pelvis: both hips; thorax: both shoulders;
spine: both hips and shoulders). The face centre averages whichever face points are seen
(profile views hide one eye and one ear), so its confidence is the *maximum* over the four
face points, combined with the thorax by the minimum for the head.
"""
from __future__ import annotations

import numpy as np

from diffpose_ros.skeleton import COCO_JOINTS, H36M_JOINTS

C = {name: i for i, name in enumerate(COCO_JOINTS)}
H = {name: i for i, name in enumerate(H36M_JOINTS)}

# H36M joints copied from one COCO keypoint
DIRECT = {
    "r_hip": "r_hip", "r_knee": "r_knee", "r_ankle": "r_ankle",
    "l_hip": "l_hip", "l_knee": "l_knee", "l_ankle": "l_ankle",
    "neck_nose": "nose",
    "l_shoulder": "l_shoulder", "l_elbow": "l_elbow", "l_wrist": "l_wrist",
    "r_shoulder": "r_shoulder", "r_elbow": "r_elbow", "r_wrist": "r_wrist",
}
SPINE_FRACTION = 0.5   # spine = pelvis + SPINE_FRACTION * (thorax - pelvis)
HEAD_UP = 0.35         # head = face + HEAD_UP * (face - thorax)
FACE = ("l_eye", "r_eye", "l_ear", "r_ear")


def coco_to_h36m(keypoints: np.ndarray, conf: np.ndarray | None = None):
    """Map (...,17,2) COCO keypoints (+ (...,17) confidences) to H36M-17.

    Returns ``(h36m_keypoints (...,17,2), h36m_conf (...,17))``; ``conf`` defaults to ones.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[-2:] != (17, 2):
        raise ValueError(f"keypoints must have shape (...,17,2), got {kp.shape}")
    cf = np.ones(kp.shape[:-1]) if conf is None else np.asarray(conf, dtype=np.float64)
    if cf.shape != kp.shape[:-1]:
        raise ValueError(f"conf shape {cf.shape} does not match keypoints {kp.shape[:-1]}")

    out = np.zeros_like(kp)
    out_c = np.zeros_like(cf)
    for h, c in DIRECT.items():
        out[..., H[h], :] = kp[..., C[c], :]
        out_c[..., H[h]] = cf[..., C[c]]

    hips = [C["l_hip"], C["r_hip"]]
    shoulders = [C["l_shoulder"], C["r_shoulder"]]
    pelvis = kp[..., hips, :].mean(axis=-2)
    thorax = kp[..., shoulders, :].mean(axis=-2)
    pelvis_c = cf[..., hips].min(axis=-1)
    thorax_c = cf[..., shoulders].min(axis=-1)
    out[..., H["pelvis"], :], out_c[..., H["pelvis"]] = pelvis, pelvis_c
    out[..., H["thorax"], :], out_c[..., H["thorax"]] = thorax, thorax_c
    out[..., H["spine"], :] = pelvis + SPINE_FRACTION * (thorax - pelvis)
    out_c[..., H["spine"]] = np.minimum(pelvis_c, thorax_c)

    face_idx = [C[n] for n in FACE]
    w = cf[..., face_idx] + 1e-6                      # weights: seen face points dominate
    face = (kp[..., face_idx, :] * w[..., None]).sum(axis=-2) / w.sum(axis=-1)[..., None]
    out[..., H["head"], :] = face + HEAD_UP * (face - thorax)
    out_c[..., H["head"]] = np.minimum(cf[..., face_idx].max(axis=-1), thorax_c)
    return out, out_c
