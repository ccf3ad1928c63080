"""One clip seen by one camera that stays fixed over the whole clip: a track as a robot sees it.

Training and the lifter's evaluation draw a fresh camera per sample (data/generator.py); the
per-track filter needs the opposite, a whole sequence from one viewpoint, so that the person
walks through the image over time (tools/evaluate_filter.py builds its sequences here):

    pose, floor, _ = load_clip_h36m(MOCAP_DIR / clip)         # (F,17,3) world metres, Y up
    rng = np.random.default_rng([seed, clip_hash(clip), camera_index])
    s = make_sequence(pose, floor, frames, rng, NoiseConfig(), CameraConfig(distance_range=(3, 6)))

A sample whose pelvis is behind or within MIN_ROOT_DEPTH of the camera, or with fewer than
MIN_VISIBLE_JOINTS joints in the image, is left out (a detector would not report that person;
the generator's rule); the remaining samples keep their out-of-image joints, marked invisible.
`causal_windows` cuts such sequences (or Human3.6M's) into the temporal model's causal windows.
"""
from __future__ import annotations

import hashlib

import numpy as np

from diffpose_ros import camera, paths
from diffpose_ros.data.generator import MAX_NORM_COORD, MIN_ROOT_DEPTH, MIN_VISIBLE_JOINTS
from diffpose_ros.data.noise import NoiseConfig, apply_noise
from diffpose_ros.data.virtual_camera import CameraConfig, sample_camera
from diffpose_ros.skeleton import ROOT

MOCAP_DIR = paths.MOCAP_DIR


def clip_hash(relpath: str) -> int:
    """A stable integer per clip path, to seed a clip's draws independently of the other clips."""
    return int(hashlib.sha1(relpath.encode()).hexdigest()[:8], 16)


def load_clip_h36m(path, skeleton_map: str | None = None):
    """(pose (F,17,3) float32 world metres, floor height, map name) for one BVH clip at its own rate."""
    from diffpose_ros.data.motion import load_clip
    from diffpose_ros.data.sources import ClipRef
    d = load_clip(ClipRef("bvh", str(path), str(path), "", skeleton_map=skeleton_map), fps=None)
    return d["joints"], d["floor"], d["map"]


def make_sequence(pose_world, floor, frames, rng, noise: NoiseConfig | None = None,
                  cam_cfg: CameraConfig | None = None) -> dict:
    """The samples of one sequence (one camera for the clip, aimed at its mean pelvis) at the
    given frame indices, with detector-like 2D noise correlated from frame to frame.

    Returns arrays over the S kept frames: keypoints (S,17,2) noisy normalised, keypoints_clean
    (S,17,2), conf (S,17), visible (S,17) bool, keypoints_px (S,17,2), pose3d (S,17,3)
    root-relative camera frame metres, root (S,3), K (S,3,3), image_size (S,2) (w, h), frame (S,).
    """
    cam = sample_camera(rng, pose_world[:, ROOT], floor, cam_cfg or CameraConfig())
    p_cam = cam.to_camera(pose_world[frames].astype(np.float64))               # (N,17,3)
    px = camera.project(p_cam, cam.K)
    front = camera.in_front(p_cam)
    visible = front & camera.in_image(px, cam.image_size)
    keep = (p_cam[:, ROOT, 2] > MIN_ROOT_DEPTH) & (visible.sum(1) >= MIN_VISIBLE_JOINTS)
    p_cam, px, front, visible, frames = p_cam[keep], px[keep], front[keep], visible[keep], frames[keep]
    noisy, conf, _, _ = apply_noise(rng, px, visible, front, cam.image_size, noise or NoiseConfig(),
                                    sequential=True)
    n = len(frames)
    return {
        "keypoints": camera.normalize(noisy, cam.K).astype(np.float32),
        # joints behind the camera have no meaningful projection: bound them (they are invisible)
        "keypoints_clean": np.clip(camera.normalize(px, cam.K), -MAX_NORM_COORD, MAX_NORM_COORD).astype(np.float32),
        "conf": conf.astype(np.float32),
        "visible": visible,
        "keypoints_px": noisy.astype(np.float32),
        "pose3d": (p_cam - p_cam[:, ROOT:ROOT + 1]).astype(np.float32),
        "root": p_cam[:, ROOT].astype(np.float32),
        "K": np.broadcast_to(cam.K, (n, 3, 3)).astype(np.float32),
        "image_size": np.broadcast_to(cam.image_size, (n, 2)).astype(np.float32),
        "frame": frames.astype(np.int32),
    }


def causal_windows(seq, frame_order_index, T: int) -> np.ndarray:
    """(S, T) int64: for each sample, the indices of the last T samples of its sequence
    (ordered by frame_order_index), the sample itself last; the first sample of the sequence
    is repeated to pad windows at the start. Windows never cross sequences."""
    seq = np.asarray(seq)
    order = np.asarray(frame_order_index)
    if seq.shape != order.shape or seq.ndim != 1:
        raise ValueError(f"seq and frame_order_index must be equal-length 1-D arrays, got {seq.shape}, {order.shape}")
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    S = len(seq)
    idx = np.lexsort((order, seq))                     # sorted by seq, then by order
    s_sorted = seq[idx]
    starts = np.r_[0, np.flatnonzero(s_sorted[1:] != s_sorted[:-1]) + 1] if S else np.zeros(0, int)
    group_start = np.repeat(starts, np.diff(np.r_[starts, S]))
    pos = np.arange(S)[:, None] + np.arange(-T + 1, 1)[None, :]
    pos = np.maximum(pos, group_start[:, None])
    out = np.empty((S, T), np.int64)
    out[idx] = idx[pos]
    return out
