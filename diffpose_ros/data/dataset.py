"""2D-3D training pairs from the shared mocap clips seen through random virtual cameras.

Pipeline per clip: BVH -> forward kinematics (metres) -> 17 H36M joints (skeleton map) ->
`cameras_per_clip` virtual cameras, each fixed over the clip (one "sequence" per camera) ->
projection -> detector-like noise -> normalised coordinates.

Splits are by clip, never by frame: a clip's split is a hash of its path relative to the
mocap folder (train/val/test ~ 80/10/10), so it never changes when clips are added or when
only some are loaded. Every random draw is seeded from (seed, clip hash, camera index), so a
sequence is the same whatever `limit_clips` or worker count is used.

Samples whose pelvis is behind / within MIN_ROOT_DEPTH of the camera, or with fewer than
MIN_VISIBLE_JOINTS joints inside the image, are dropped (a detector would not report such a
person); the remaining samples keep their out-of-image joints, marked invisible.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np

from diffpose_ros import camera, paths
from diffpose_ros.data.cache import save_npz
from diffpose_ros.data.noise import NoiseConfig, apply_noise
from diffpose_ros.data.virtual_camera import CameraConfig, sample_camera
from diffpose_ros.skeleton import ROOT

MOCAP_DIR = paths.MOCAP_DIR
CODE_VERSION = "data-v2"       # bump when the generated samples change
SPLITS = ("train", "val", "test")
SPLIT_PERCENT = (80, 10, 10)
MIN_ROOT_DEPTH = 0.3
MIN_VISIBLE_JOINTS = 8
MAX_NORM_COORD = 10.0          # |x/z|, |y/z| bound for clean coordinates of joints behind the camera

# the fixed-camera path keeps the camera ranges the shipped weights were trained with; the
# generator (data/generator.py) uses CameraConfig's wider defaults
LEGACY_CAMERA = CameraConfig(height_range=(0.3, 2.0), hfov_range=(50.0, 110.0), offcentre=0.6)
# ... and the confidence model they were trained with (before the calibration against the detector)
LEGACY_NOISE = NoiseConfig(conf_scale_range=(0.85, 1.0), conf_noise=0.05, conf_width=(1.0, 1.0, 1.0))

ARRAY_KEYS = ("keypoints", "keypoints_clean", "conf", "visible", "keypoints_px", "pose3d", "root",
              "K", "image_size", "clip", "seq", "frame")


def clip_hash(relpath: str) -> int:
    return int(hashlib.sha1(relpath.encode()).hexdigest()[:8], 16)


def clip_split(relpath: str) -> str:
    """'train' / 'val' / 'test' from the clip's relative path (deterministic)."""
    h = clip_hash(relpath) % 100
    return SPLITS[0] if h < SPLIT_PERCENT[0] else SPLITS[1] if h < sum(SPLIT_PERCENT[:2]) else SPLITS[2]


def list_clips(mocap_dir=MOCAP_DIR) -> list[str]:
    """Relative POSIX paths of all .bvh files under mocap_dir, sorted."""
    root = Path(mocap_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"mocap folder not found: {root}")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.bvh"))


def split_clips(split: str, mocap_dir=MOCAP_DIR) -> list[str]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return [c for c in list_clips(mocap_dir) if clip_split(c) == split]


def load_clip_h36m(path, skeleton_map: str | None = None):
    """(pose (F,17,3) float32 world metres, floor height, map name) for one BVH clip at its own rate."""
    from diffpose_ros.data.motion import load_clip
    from diffpose_ros.data.sources import ClipRef
    d = load_clip(ClipRef("bvh", str(path), str(path), "", skeleton_map=skeleton_map), fps=None)
    return d["joints"], d["floor"], d["map"]


def _load_worker(args):
    return load_clip_h36m(*args)


def make_sequence(pose_world, floor, frames, rng, noise: NoiseConfig | None, cam_cfg: CameraConfig | None = None):
    """Samples of one sequence (camera fixed over the clip) for the given frame indices; dict of arrays."""
    cam = sample_camera(rng, pose_world[:, ROOT], floor, cam_cfg or LEGACY_CAMERA)
    p_cam = cam.to_camera(pose_world[frames].astype(np.float64))               # (N,17,3)
    px = camera.project(p_cam, cam.K)
    front = camera.in_front(p_cam)
    visible = front & camera.in_image(px, cam.image_size)
    keep = (p_cam[:, ROOT, 2] > MIN_ROOT_DEPTH) & (visible.sum(1) >= MIN_VISIBLE_JOINTS)
    p_cam, px, front, visible, frames = p_cam[keep], px[keep], front[keep], visible[keep], frames[keep]
    noisy, conf, _, _ = apply_noise(rng, px, visible, front, cam.image_size, noise or LEGACY_NOISE,
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


def _cache_key(**kw) -> str:
    return hashlib.sha1(json.dumps(kw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dataset_cache_file(split, clips, stride, cameras_per_clip, noise, cam_cfg, mocap_dir, skeleton_map, seed) -> Path:
    """Cache path: a hash of every argument that changes the samples, the clip files and CODE_VERSION."""
    mocap_dir = Path(mocap_dir)
    files = [(c, (mocap_dir / c).stat().st_size) for c in clips]
    key = _cache_key(split=split, stride=stride, cpc=cameras_per_clip, noise=dataclasses.asdict(noise),
                     cam=dataclasses.asdict(cam_cfg), mocap=str(mocap_dir.resolve()), files=files,
                     map=skeleton_map, seed=seed, version=CODE_VERSION,
                     filters=(MIN_ROOT_DEPTH, MIN_VISIBLE_JOINTS, MAX_NORM_COORD))
    return paths.cache_dir() / "datasets" / f"{split}_{key}.npz"


def load_pairs(split: str, stride: int = 5, cameras_per_clip: int = 2, noise: NoiseConfig | None = None,
               mocap_dir=MOCAP_DIR, skeleton_map: str | None = None, seed: int = 0,
               cache: bool = True, limit_clips: int | None = None, workers: int = 2,
               progress: bool = False, camera_config: CameraConfig | None = None) -> dict:
    """Noisy 2D / clean 3D pairs of one split; see the module docstring.

    Returns float32/int32/bool arrays with S samples: keypoints (S,17,2) noisy normalised,
    keypoints_clean (S,17,2), conf (S,17), visible (S,17) bool, keypoints_px (S,17,2),
    pose3d (S,17,3) root-relative camera frame metres, root (S,3), K (S,3,3), image_size (S,2)
    (w,h), clip (S,), seq (S,) = clip * cameras_per_clip + camera, frame (S,) original frame
    number; plus clip_names (C,) str (relative paths, indexed by `clip`).
    """
    if stride < 1 or cameras_per_clip < 1:
        raise ValueError(f"stride and cameras_per_clip must be >= 1, got {stride}, {cameras_per_clip}")
    mocap_dir = Path(mocap_dir)
    clips = split_clips(split, mocap_dir)
    if limit_clips is not None:
        clips = clips[:limit_clips]
    if not clips:
        raise ValueError(f"no clips for split {split!r} in {mocap_dir}")
    noise = noise or LEGACY_NOISE
    cam_cfg = camera_config or LEGACY_CAMERA
    cache_file = dataset_cache_file(split, clips, stride, cameras_per_clip, noise, cam_cfg, mocap_dir,
                                    skeleton_map, seed) if cache else None
    if cache_file is not None and cache_file.exists():
        with np.load(cache_file) as z:
            return {k: z[k] for k in z.files}

    jobs = [(str(mocap_dir / c), skeleton_map) for c in clips]
    if workers > 1 and len(jobs) >= 8:
        ctx = multiprocessing.get_context("fork" if os.name == "posix" else None)
        with ctx.Pool(workers) as pool:
            it = pool.imap(_load_worker, jobs, chunksize=4)
            loaded = _progress(it, len(jobs), progress, f"bvh {split}")
    else:
        loaded = _progress(map(_load_worker, jobs), len(jobs), progress, f"bvh {split}")

    parts = []
    for ci, (c, (pose, floor, _)) in enumerate(zip(clips, loaded)):
        h = clip_hash(c)
        for cam_i in range(cameras_per_clip):
            rng = np.random.default_rng([seed, h, cam_i])
            start = (cam_i * stride) // cameras_per_clip     # cameras see interleaved frames
            frames = np.arange(start, len(pose), stride)
            part = make_sequence(pose, floor, frames, rng, noise, cam_cfg)
            n = len(part["frame"])
            part["clip"] = np.full(n, ci, np.int32)
            part["seq"] = np.full(n, ci * cameras_per_clip + cam_i, np.int32)
            parts.append(part)
    out = {k: np.concatenate([p[k] for p in parts]) for k in ARRAY_KEYS}
    out["clip_names"] = np.array(clips)
    if cache_file is not None:
        save_npz(cache_file, out)
    return out


def _progress(it, total, enabled, desc):
    if not enabled:
        return list(it)
    from tqdm import tqdm
    return list(tqdm(it, total=total, desc=desc))


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
