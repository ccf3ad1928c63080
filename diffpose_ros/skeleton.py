"""Joint orders used everywhere in the project.

H36M-17 (the VideoPose3D layout) is the order of every 3D pose, every lifter input and every
published message. COCO-17 is the order of the 2D detector's output.
"""
import numpy as np

H36M_JOINTS = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "spine", "thorax", "neck_nose", "head",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)
NUM_JOINTS = len(H36M_JOINTS)
ROOT = 0

# parent of each joint (-1 for the root); bones are (parent, child)
H36M_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M_BONES = tuple((p, c) for c, p in enumerate(H36M_PARENTS) if p >= 0)

# left/right pairs, for flip augmentation and left/right-swap noise
H36M_LEFT = (4, 5, 6, 11, 12, 13)
H36M_RIGHT = (1, 2, 3, 14, 15, 16)
H36M_FLIP = tuple(
    H36M_RIGHT[H36M_LEFT.index(j)] if j in H36M_LEFT
    else H36M_LEFT[H36M_RIGHT.index(j)] if j in H36M_RIGHT else j
    for j in range(NUM_JOINTS)
)


def mirror(x):
    """x (..., 17, C), numpy or torch: its mirror image in the plane x = 0 (the first coordinate
    negated, left and right joints swapped). A 3D pose in a camera or world frame, or the
    normalised 2D keypoints (x, y, conf) of one: the mirror image of a person seen by a camera
    is the mirrored person seen by the mirrored camera, which projects to the mirrored 2D."""
    y = x[..., list(H36M_FLIP), :]
    sign = [-1.0] + [1.0] * (x.shape[-1] - 1)
    if hasattr(y, "new_tensor"):  # torch (also traced for ONNX: a constant)
        return y * y.new_tensor(sign)
    return y * np.asarray(sign, y.dtype)


COCO_JOINTS = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear",
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
    "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
# COCO keypoint OKS sigmas (Ronchi & Perona / cocoapi), in COCO order
COCO_OKS_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)


def h36m_adjacency():
    """Symmetric 17x17 skeleton adjacency (0/1, no self-loops) as nested lists."""
    adj = [[0] * NUM_JOINTS for _ in range(NUM_JOINTS)]
    for p, c in H36M_BONES:
        adj[p][c] = adj[c][p] = 1
    return adj
