"""The clip bank: every motion clip as H36M-17 joints in its world frame, resampled to one rate.

    bank = MotionBank.load(sources=None, fps=10.0, progress=True)

`sources`: source specs (data/sources.py; None = the shared data). Per clip: BVH -> forward
kinematics of the joints the skeleton map needs (data/bvh.py) -> the map's 17 joints
(data/mapping.py) -> the dropped T-pose frame -> resampled to `fps` by linear interpolation of
the joint positions at t = k / fps (exact frames for 30/60/120 -> 10 fps) -> float32. World
frame: Y up, metres, as the BVH files are (checked: the person's left is +X when facing +Z). The
floor height of every clip is estimated from its feet (the 5th percentile over frames of the
lowest foot joint of the full BVH skeleton: the map's `floor_joints`), because not every
capture is floor-calibrated (the CMU Indian dance and martial arts clips are not). Human3.6M
(Z up, calibrated floor at z = 0) is turned to Y up.

Storage: `joints` (N, 17, 3) float32 holds all clips back to back; clip c is
joints[start[c] : start[c] + length[c]]. Per-clip metadata arrays (`meta`): key, source,
action, style, subject, category, map, fps_src, weight, floor, and the body measurements of
data/body.py (`stats`: bone lengths, chain parts, stature). The whole bank is cached as one npz
in <cache>/motion/, keyed by the clip files (paths, sizes, mtimes), the specs, the skeleton maps'
contents, `fps` and CODE_VERSION; a second load reads the npz.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffpose_ros import paths
from diffpose_ros.data import body as body_mod
from diffpose_ros.data import sources as src
from diffpose_ros.data.bvh import UNIT_SCALES, forward_kinematics, parse_bvh
from diffpose_ros.data.cache import save_npz
from diffpose_ros.data.mapping import MAPS_DIR, detect_map, floor_joint_indices, load_map, resolve_map, to_h36m

CODE_VERSION = "motion-v1"     # bump when the stored joints change for the same inputs
META_KEYS = ("key", "source", "action", "style", "subject", "category", "description", "map")
STAT_KEYS = ("thigh", "shin", "upper_arm", "forearm", "hip_width", "shoulder_width", "spine", "neck",
             "head", "thorax_to_head", "ankle_height", "stature")
FLOOR_PERCENTILE = 5
MIN_FRAMES = 2
# After a T-pose frame 0, the cgspeed conversions (both Daz archives) blend into the motion in
# 3 frames at 120 fps with joints moving 12-29 m/s and ankles up to 18 cm below the floor: frames
# at the start whose fastest joint exceeds this speed (m/s) are dropped too (at most 0.5 s).
MAX_BLEND_SPEED = 8.0


class MotionDataError(ValueError):
    """A clip that cannot be used; the message names the file."""


def resample(x, fps_src: float, fps: float):
    """(F, ...) sampled at fps_src -> (F', ...) at fps, linear interpolation, first frame kept."""
    F = len(x)
    if F < 2 or abs(fps_src - fps) < 1e-9:
        return x
    n = int(np.floor((F - 1) * fps / fps_src + 1e-9)) + 1
    t = np.arange(n) * (fps_src / fps)
    i0 = np.minimum(np.floor(t).astype(int), F - 1)
    i1 = np.minimum(i0 + 1, F - 1)
    w = (t - i0).reshape(-1, *([1] * (x.ndim - 1)))
    return x[i0] * (1 - w) + x[i1] * w


def _bvh_options(ref: src.ClipRef, skel: dict):
    opts = skel.get("bvh", {})
    if ref.unit_scale is not None:
        scale = ref.unit_scale
    elif "unit_scale" in opts:
        scale = float(opts["unit_scale"])
    else:
        scale = UNIT_SCALES[opts.get("units", "cm")]
    return scale, ref.position_channels or opts.get("position_channels", "replace")


def load_clip(ref: src.ClipRef, fps: float | None, h36m_world=None) -> dict:
    """One clip as {'joints' (F,17,3) float32 at fps (None: the clip's own rate), 'floor', 'map',
    'fps_src'}; MotionDataError naming the file."""
    if ref.kind == "h36m":
        world = np.asarray(h36m_world, np.float64)
        joints = np.stack([world[..., 0], world[..., 2], -world[..., 1]], axis=-1)   # Z up -> Y up
        floor, map_name, fps_src = 0.0, "h36m", float(ref.fps)
    else:
        try:
            bvh = parse_bvh(ref.path)
        except ValueError as e:
            raise MotionDataError(str(e)) from None
        try:
            map_name = ref.skeleton_map or detect_map(bvh.names, source=ref.path)
            skel = load_map(map_name)
            W, rigid = resolve_map(bvh.names, skel)
        except ValueError as e:
            raise MotionDataError(f"{ref.path}: {e}") from None
        scale, pos_mode = _bvh_options(ref, skel)
        floor_idx = floor_joint_indices(bvh.names, skel)
        used = sorted(set(np.flatnonzero(np.abs(W).sum(0) > 0).tolist()) | set(floor_idx))
        pos, rot = forward_kinematics(bvh, scale, pos_mode, joints=used, return_rotations=True)
        if ref.drop_first:
            pos, rot = pos[ref.drop_first:], rot[ref.drop_first:]
        if len(pos) < MIN_FRAMES:
            raise MotionDataError(f"{ref.path}: only {len(pos)} frames after dropping {ref.drop_first}")
        joints = to_h36m(pos, bvh.names, skel, rot if rigid else None)
        floor = float(np.percentile(pos[:, floor_idx, 1].min(axis=1), FLOOR_PERCENTILE))
        fps_src = float(ref.fps) if ref.fps else 1.0 / bvh.frame_time if bvh.frame_time > 0 else 0.0
        if not fps_src > 0:
            raise MotionDataError(f"{ref.path}: Frame Time {bvh.frame_time} gives no frame rate; pass fps=")
    if ref.drop_first and len(joints) > 2:
        speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=-1) * fps_src
        n_blend = 0
        while n_blend < min(len(speed), int(0.5 * fps_src)) and speed[n_blend] > MAX_BLEND_SPEED:
            n_blend += 1
        joints = joints[n_blend:]
    if not np.all(np.isfinite(joints)):
        raise MotionDataError(f"{ref.path}: non-finite joint positions after forward kinematics")
    joints = resample(joints, fps_src, fps or fps_src).astype(np.float32)
    return {"joints": joints, "floor": floor, "map": map_name if isinstance(map_name, str) else str(map_name),
            "fps_src": fps_src}


def _worker(args):
    ref, fps = args
    return load_clip(ref, fps)


@dataclass
class MotionBank:
    joints: np.ndarray                     # (N, 17, 3) float32, world, Y up, metres
    start: np.ndarray                      # (C,) int64
    length: np.ndarray                     # (C,) int64
    floor: np.ndarray                      # (C,) float64
    fps: float
    meta: dict                             # name -> (C,) str array (META_KEYS)
    fps_src: np.ndarray                    # (C,)
    weight: np.ndarray                     # (C,) source weight of the spec
    stats: dict                            # name -> (C,) float64 (STAT_KEYS)
    info: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.start)

    @property
    def num_frames(self) -> int:
        return int(self.length.sum())

    def clip(self, c: int) -> np.ndarray:
        return self.joints[self.start[c]:self.start[c] + self.length[c]]

    @property
    def source_names(self) -> list[str]:
        return sorted(set(self.meta["source"].tolist()))

    def indices(self, **where) -> np.ndarray:
        """Clip indices whose metadata equal the given values (a value may be a list/tuple)."""
        ok = np.ones(len(self), bool)
        for k, v in where.items():
            vals = [v] if isinstance(v, str) else list(v)
            ok &= np.isin(self.meta[k], vals)
        return np.flatnonzero(ok)

    # -------------------------------------------------------------- loading and caching
    @classmethod
    def load(cls, sources=None, fps: float = 10.0, progress: bool = True, cache: bool = True,
             workers: int = 2) -> "MotionBank":
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        t0 = time.perf_counter()
        refs = src.resolve(sources)
        if not refs:
            raise ValueError(f"no clips in sources {sources!r}")
        cache_file = _cache_file(refs, fps) if cache else None
        if cache_file is not None and cache_file.is_file():
            bank = cls._from_npz(cache_file)
            bank.info.update(cache=str(cache_file), cached=True, seconds=round(time.perf_counter() - t0, 2))
            return bank
        loaded = _load_all(refs, fps, progress, workers)
        bank = cls._assemble(refs, loaded, fps)
        if cache_file is not None:
            bank._save(cache_file)
        bank.info.update(cache=str(cache_file) if cache_file else None, cached=False,
                         seconds=round(time.perf_counter() - t0, 2))
        return bank

    @classmethod
    def _assemble(cls, refs, loaded, fps):
        lengths = np.array([len(d["joints"]) for d in loaded], np.int64)
        start = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
        meta = {k: np.array([getattr(r, k) for r in refs]) for k in META_KEYS if k != "map"}
        meta["map"] = np.array([d["map"] for d in loaded])
        floor = np.array([d["floor"] for d in loaded], np.float64)
        stats = [body_mod.skeleton_stats(d["joints"], d["floor"]) for d in loaded]
        return cls(joints=np.concatenate([d["joints"] for d in loaded]).astype(np.float32), start=start,
                   length=lengths, floor=floor, fps=float(fps), meta=meta,
                   fps_src=np.array([d["fps_src"] for d in loaded], np.float64),
                   weight=np.array([r.weight for r in refs], np.float64),
                   stats={k: np.array([s[k] for s in stats], np.float64) for k in STAT_KEYS})

    def _save(self, path: Path):
        arrays = {"joints": self.joints, "start": self.start, "length": self.length, "floor": self.floor,
                  "fps": np.float64(self.fps), "fps_src": self.fps_src, "weight": self.weight}
        arrays.update({f"meta_{k}": v for k, v in self.meta.items()})
        arrays.update({f"stat_{k}": v for k, v in self.stats.items()})
        save_npz(path, arrays)

    @classmethod
    def _from_npz(cls, path: Path):
        with np.load(path) as z:
            return cls(joints=z["joints"], start=z["start"], length=z["length"], floor=z["floor"],
                       fps=float(z["fps"]), fps_src=z["fps_src"], weight=z["weight"],
                       meta={k: z[f"meta_{k}"] for k in META_KEYS},
                       stats={k: z[f"stat_{k}"] for k in STAT_KEYS})


def _load_all(refs, fps, progress, workers):
    out: list = [None] * len(refs)
    # Human3.6M: one npz holds every clip; read it once here
    h36m_files = {}
    for i, r in enumerate(refs):
        if r.kind == "h36m":
            if r.path not in h36m_files:
                from diffpose_ros.data.h36m import load_positions_3d
                h36m_files[r.path] = load_positions_3d(r.path)
            subject, action = r.item.split("/", 1)
            out[i] = load_clip(r, fps, h36m_files[r.path][subject][action])
    todo = [i for i, r in enumerate(refs) if r.kind == "bvh"]
    # biggest files first so that the pool's last tasks are short ones
    todo.sort(key=lambda i: -os.path.getsize(refs[i].path))
    jobs = [(refs[i], fps) for i in todo]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc="motion clips", unit="clip")
    try:
        if workers > 1 and len(jobs) >= 8:
            ctx = multiprocessing.get_context("fork" if os.name == "posix" else None)
            with ctx.Pool(workers) as pool:
                for i, d in zip(todo, pool.imap(_worker, jobs, chunksize=2)):
                    out[i] = d
                    if bar is not None:
                        bar.update()
        else:
            for i, job in zip(todo, jobs):
                out[i] = _worker(job)
                if bar is not None:
                    bar.update()
    finally:
        if bar is not None:
            bar.close()
    return out


def _cache_file(refs, fps) -> Path:
    files = []
    for r in refs:
        st = os.stat(r.path)
        files.append((r.to_json(), st.st_size, int(st.st_mtime)))
    maps = {p.name: hashlib.sha1(p.read_bytes()).hexdigest()[:12] for p in sorted(MAPS_DIR.glob("*.json"))}
    for r in refs:   # a user's own JSON map file
        if r.skeleton_map and r.skeleton_map.endswith(".json") and Path(r.skeleton_map).is_file():
            maps[r.skeleton_map] = hashlib.sha1(Path(r.skeleton_map).read_bytes()).hexdigest()[:12]
    # the code that computes the stored arrays: any change to it rebuilds the bank
    from diffpose_ros.data import bvh, mapping
    code = hashlib.sha1(b"".join(Path(m.__file__).read_bytes()
                                 for m in (body_mod, bvh, mapping, src))
                        + Path(__file__).read_bytes()).hexdigest()[:8]
    key = hashlib.sha1(json.dumps({"files": files, "fps": fps, "maps": maps, "version": CODE_VERSION,
                                   "body": code}, sort_keys=True).encode()).hexdigest()[:16]
    return paths.cache_dir() / "motion" / f"bank_{key}.npz"
