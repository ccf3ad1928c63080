"""Body size and proportions of the 17-joint skeleton: measurement, randomisation, mirroring.

Standing height. A mocap skeleton has no "height" joint, so the standing height (stature) is
computed from the 17 joints of a clip as a straight chain

    chain = ankle height + shin + thigh + |pelvis -> thorax| + |thorax -> head|
    stature = CHAIN_TO_STATURE * chain

with the limb lengths as medians over the clip (they are rigid), the two trunk distances as
their 90th percentile (the most upright frames; bending shortens them), and the ankle height
as the 10th percentile of the lower ankle above the floor (a foot flat on the floor). A
standing body is not a straight column (the neck and head lean forward of the trunk), so the
chain is longer than the stature; CHAIN_TO_STATURE makes the H36M-like REFERENCE body below,
1.75 m tall, measure 1.75 m.

Randomisation (BodyConfig, `draw_bodies` + `apply_body`): forward kinematics on the 17-joint
tree, every bone vector (parent -> child) of the motion scaled by its own factor, from the root
outwards, so the motion (all joint rotations) is kept and only the sizes change:
  * standing height drawn from a mixture of two normals, adult women N(1.63, 0.065) and men
    N(1.77, 0.07) (European/US adult statures, rounded), half each, redrawn outside
    `height_range` (1.45-1.95 m). Realistic rather than uniform: a monocular camera cannot see
    size, so a model learns to predict the prior's mean for an ambiguous image; that mean
    should be the one of the people a robot meets (1.70 m), and the tails still cover short
    and tall adults;
  * every bone group by an independent factor 1 + N(0, `bone_sd`) (4 %: the spread of segment
    to stature ratios among adults is 3-5 %), LEFT/RIGHT SYMMETRIC (real people's limb
    asymmetry is 1-2 %; independent sides would teach the model that its two thighs may
    differ by 8 %), plus a small independent `asym_sd` (1 %) per side on the limbs. Hip width
    and shoulder width scale both sides together (the pelvis and thorax stay the midpoints of
    hips and shoulders, as the live 2D path defines them), and the two trunk bones share one
    factor (the spine joint stays their midpoint);
  * the whole body is then scaled so its stature is exactly the drawn height (`height_m`);
    `body_scale` is that factor relative to the clip's own skeleton;
  * feet stay on the floor: the root trajectory is scaled about the floor (a bigger person takes
    longer steps) and every frame is shifted vertically so that its lowest joint is as high
    above the floor as in the original frame times `body_scale` (contacts stay contacts; a jump
    stays a jump).
Mirroring (`mirror_world`): x -> -x in the world and left/right joints swapped: a left-handed
wave becomes a right-handed one, and the mirrored motion is as physical as the original.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose_ros.skeleton import H36M_FLIP, H36M_JOINTS, H36M_PARENTS, NUM_JOINTS, mirror

J = {n: i for i, n in enumerate(H36M_JOINTS)}

# H36M-like reference body at 1.75 m, metres. Real adults of about 1.75 m measured in the
# H36M convention (shared/docs/measured-findings.md): thigh 0.468, upper arm 0.291, hip
# half-width 0.130. The others from the H36M skeleton offsets (the `h36m` bone lengths of
# the 32-joint skeleton used by Martinez et al. / QuaterNet: thigh 442.9, shin 454.2, pelvis ->
# spine 233.4, spine -> thorax 257.1, thorax -> neck/nose 121.1, neck/nose -> head 115.0,
# thorax -> shoulder 151.0, upper arm 278.9, forearm 251.7 mm), scaled by 468 / 442.9 = 1.057
# so that the thigh matches; its upper arm then comes out at 0.295 (measured 0.291), a check.
# Ankle height 0.039 x stature (Winter's segment proportions).
REFERENCE_HEIGHT = 1.75
REFERENCE = {
    "thigh": 0.468, "shin": 0.480, "upper_arm": 0.291, "forearm": 0.266,
    "hip_width": 0.260, "shoulder_width": 0.319, "spine": 0.518, "neck": 0.128, "head": 0.122,
    "ankle_height": 0.068,
}
REFERENCE_THORAX_TO_HEAD = 0.249      # |thorax -> head|: the two H36M head bones (121.1 + 115.0 mm, nearly collinear) x 1.057
CHAIN_TO_STATURE = REFERENCE_HEIGHT / (REFERENCE["ankle_height"] + REFERENCE["shin"] + REFERENCE["thigh"]
                                       + REFERENCE["spine"] + REFERENCE_THORAX_TO_HEAD)

# bone groups: name -> ((left child joints), (right child joints)) or (joints,) for unpaired;
# a bone is named by its child joint (its parent is H36M_PARENTS[child])
BONE_GROUPS = {
    "hip_width": ((J["l_hip"],), (J["r_hip"],)),
    "thigh": ((J["l_knee"],), (J["r_knee"],)),
    "shin": ((J["l_ankle"],), (J["r_ankle"],)),
    "trunk": ((J["spine"], J["thorax"]),),
    "neck": ((J["neck_nose"],),),
    "head": ((J["head"],),),
    "shoulder_width": ((J["l_shoulder"],), (J["r_shoulder"],)),
    "upper_arm": ((J["l_elbow"],), (J["r_elbow"],)),
    "forearm": ((J["l_wrist"],), (J["r_wrist"],)),
}
LIMBS = ("thigh", "shin", "upper_arm", "forearm")      # groups with an asymmetric part


@dataclass
class BodyConfig:
    enabled: bool = True
    height_mixture: tuple = ((0.5, 1.63, 0.065), (0.5, 1.77, 0.07))   # (weight, mean m, sd m)
    height_range: tuple = (1.45, 1.95)
    bone_sd: float = 0.04
    asym_sd: float = 0.01
    max_dev: float = 0.12            # bone factors clipped to 1 +- max_dev


def _dist(a, b):
    return np.linalg.norm(a - b, axis=-1)


def skeleton_stats(joints, floor: float) -> dict:
    """Per-clip measurements of a (F, 17, 3) world clip (Y up, metres) standing on `floor`:
    the table's bone lengths, the chain parts and the stature (see the module docstring)."""
    x = np.asarray(joints, np.float64)
    if x.ndim != 3 or x.shape[1:] != (NUM_JOINTS, 3) or len(x) == 0:
        raise ValueError(f"joints must be (F, 17, 3) with F > 0, got {x.shape}")

    def med(a, b):
        return float(np.median(_dist(x[:, a], x[:, b])))

    st = {
        "thigh": (med(J["l_hip"], J["l_knee"]) + med(J["r_hip"], J["r_knee"])) / 2,
        "shin": (med(J["l_knee"], J["l_ankle"]) + med(J["r_knee"], J["r_ankle"])) / 2,
        "upper_arm": (med(J["l_shoulder"], J["l_elbow"]) + med(J["r_shoulder"], J["r_elbow"])) / 2,
        "forearm": (med(J["l_elbow"], J["l_wrist"]) + med(J["r_elbow"], J["r_wrist"])) / 2,
        "hip_width": med(J["l_hip"], J["r_hip"]),
        "shoulder_width": med(J["l_shoulder"], J["r_shoulder"]),
        "spine": float(np.percentile(_dist(x[:, J["pelvis"]], x[:, J["thorax"]]), 90)),
        "neck": med(J["thorax"], J["neck_nose"]),
        "head": med(J["neck_nose"], J["head"]),
        "thorax_to_head": float(np.percentile(_dist(x[:, J["thorax"]], x[:, J["head"]]), 90)),
        "ankle_height": float(np.percentile(np.minimum(x[:, J["l_ankle"], 1], x[:, J["r_ankle"], 1]) - floor, 10)),
    }
    st["ankle_height"] = max(st["ankle_height"], 0.0)
    st["stature"] = stature_from_parts(st)
    return st


def stature_from_parts(st) -> float:
    return CHAIN_TO_STATURE * (st["ankle_height"] + st["shin"] + st["thigh"] + st["spine"] + st["thorax_to_head"])


# ------------------------------------------------------------------ randomisation

def draw_heights(rng, n, cfg: BodyConfig) -> np.ndarray:
    w = np.array([c[0] for c in cfg.height_mixture], float)
    mu = np.array([c[1] for c in cfg.height_mixture], float)
    sd = np.array([c[2] for c in cfg.height_mixture], float)
    out = np.empty(n)
    todo = np.arange(n)
    lo, hi = cfg.height_range
    while len(todo):
        comp = rng.choice(len(w), size=len(todo), p=w / w.sum())
        h = rng.normal(mu[comp], sd[comp])
        ok = (h >= lo) & (h <= hi)
        out[todo[ok]] = h[ok]
        todo = todo[~ok]
    return out


def draw_bodies(rng, parts: dict, cfg: BodyConfig | None = None, heights=None):
    """Random bodies for n samples. `parts`: per-sample arrays (n,) of the clip's chain parts
    (ankle_height, shin, thigh, spine, thorax_to_head: `MotionBank.stats`).
    Returns (factors (n, 17) per bone, named by child joint; factor[:, 0] = body_scale,
    body_scale (n,), height_m (n,))."""
    cfg = cfg or BodyConfig()
    n = len(parts["shin"])
    height = draw_heights(rng, n, cfg) if heights is None else np.asarray(heights, float)
    rel = np.ones((n, NUM_JOINTS))
    group_f = {}
    for name, sides in BONE_GROUPS.items():
        common = np.clip(rng.normal(0, cfg.bone_sd, n), -cfg.max_dev, cfg.max_dev)
        side_f = []
        for side in sides:
            f = 1 + common
            if name in LIMBS and cfg.asym_sd > 0:
                f = f + rng.normal(0, cfg.asym_sd, n)
            f = np.clip(f, 1 - cfg.max_dev, 1 + cfg.max_dev)
            rel[:, list(side)] = f[:, None]
            side_f.append(f)
        group_f[name] = np.mean(side_f, axis=0)
    chain = (parts["ankle_height"] * group_f["shin"] + parts["shin"] * group_f["shin"]
             + parts["thigh"] * group_f["thigh"] + parts["spine"] * group_f["trunk"]
             + parts["thorax_to_head"] * (group_f["neck"] + group_f["head"]) / 2)
    scale = height / (CHAIN_TO_STATURE * chain)
    factors = rel * scale[:, None]
    factors[:, 0] = scale
    return factors, scale, height


def uniform_bodies(parts: dict, scale):
    """The clip's own proportions scaled by `scale` (scalar or (n,)): (factors, body_scale, height_m)."""
    n = len(parts["shin"])
    scale = np.broadcast_to(np.asarray(scale, float), (n,)).copy()
    st = CHAIN_TO_STATURE * (parts["ankle_height"] + parts["shin"] + parts["thigh"] + parts["spine"]
                             + parts["thorax_to_head"])
    return np.repeat(scale[:, None], NUM_JOINTS, axis=1), scale, st * scale


def _ancestor_matrix():
    """A (17, 17): A[j, c] = 1 if bone c (parent -> c) lies on the chain root -> j."""
    A = np.zeros((NUM_JOINTS, NUM_JOINTS))
    for j in range(NUM_JOINTS):
        c = j
        while c > 0:
            A[j, c] = 1.0
            c = H36M_PARENTS[c]
    return A


_ANCESTORS = _ancestor_matrix()
_PARENT_IDX = np.array([max(p, 0) for p in H36M_PARENTS])


def apply_body(x, floor, factors):
    """Rescale motion x (n, T, 17, 3) (world, Y up) whose floor is `floor` (n,) with per-bone
    `factors` (n, 17) (factors[:, 0] = body_scale); returns the new (n, T, 17, 3).

    Forward kinematics on the tree: every joint = the new root + the sum of the scaled bone
    vectors on its chain (one matrix product with the ancestor matrix instead of a loop)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    floor = np.asarray(floor, x.dtype)[:, None]
    factors = np.asarray(factors, x.dtype)
    g = factors[:, 0][:, None]
    bones = x[:, :, _PARENT_IDX]
    np.subtract(x, bones, out=bones)                                        # bone 0 is zero
    bones *= factors[:, None, :, None]
    root = x[:, :, 0] * g[..., None]
    root[..., 1] = floor + g * (x[:, :, 0, 1] - floor)                      # scaled about the floor
    y = root[:, :, None, :] + np.matmul(_ANCESTORS.astype(x.dtype), bones)
    # keep each frame's lowest joint at body_scale x its original height above the floor
    want = floor + g * (x[..., 1].min(axis=2) - floor)
    y[..., 1] += (want - y[..., 1].min(axis=2))[..., None]
    return y


_FLIP = np.asarray(H36M_FLIP)


def mirror_world(x):
    """x (..., 17, 3) world -> its mirror image (x -> -x, left and right joints swapped)."""
    return mirror(np.asarray(x))


def gather_mirrored(joints, idx, mirrored):
    """joints[idx] (idx (n, T) frame indices into joints (N, 17, 3)) with the samples where
    `mirrored` (n,) is set mirrored as by mirror_world, in one gather."""
    perm = np.where(np.asarray(mirrored)[:, None], _FLIP[None, :], np.arange(NUM_JOINTS)[None, :])
    out = joints[idx[:, :, None], perm[:, None, :]]
    out[..., 0] *= np.where(mirrored, -1.0, 1.0).astype(out.dtype)[:, None, None]
    return out


# ------------------------------------------------------------------ reporting

TABLE_BONES = ("thigh", "shin", "upper_arm", "forearm", "hip_width", "shoulder_width", "spine", "neck", "head")
# real adults of about 1.75 m in the H36M convention (shared/docs/measured-findings.md)
MEASURED_REAL_PEOPLE = {"thigh": 0.468, "upper_arm": 0.291, "hip_width": 0.260}


def bone_table(bank) -> list[dict]:
    """Per source: median bone lengths (m) scaled to a 1.75 m standing height, the source's own
    standing height, and the reference rows. `spine` = pelvis -> thorax, `neck` = thorax ->
    neck_nose, `head` = neck_nose -> head."""
    rows = []
    src = bank.meta["source"]
    for s in bank.source_names:
        idx = np.flatnonzero(src == s)
        k = REFERENCE_HEIGHT / bank.stats["stature"][idx]
        row = {"source": s, "clips": int(len(idx)), "own_height_m": round(float(np.median(bank.stats["stature"][idx])), 3)}
        row.update({b: round(float(np.median(bank.stats[b][idx] * k)), 3) for b in TABLE_BONES})
        rows.append(row)
    rows.append({"source": "reference (H36M-like, data/body.REFERENCE)", "clips": None, "own_height_m": REFERENCE_HEIGHT,
                 **{b: REFERENCE[b] for b in TABLE_BONES}})
    rows.append({"source": "real people, 1.75 m (measured-findings.md)", "clips": None, "own_height_m": REFERENCE_HEIGHT,
                 **{b: MEASURED_REAL_PEOPLE.get(b) for b in TABLE_BONES}})
    return rows
