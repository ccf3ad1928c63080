"""Training pairs drawn on the fly: a fresh camera, body and 2D noise for every sample.

    bank = MotionBank.load()                                   # data/motion.py
    gen = PairGenerator(bank, clip_indices, window=1 or T)
    batch = gen.sample(rng, 256)                               # training: new draws every call
    fixed = gen.fixed_set(seed=0, n_per_clip=20)               # evaluation: deterministic, cached

Per sample: a frame of a clip (the newest frame of a causal window of `window` frames, padded
at the clip start with its first frame as data/sequence.causal_windows does) -> left/right
mirror of the 3D motion with probability 0.5 (`mirror`) -> a random body (data/body.py) ->
a random camera, fixed over the window (data/virtual_camera.sample_cameras) -> projection ->
self-occlusion -> detector-like 2D noise, temporally correlated inside the window (data/noise.py) ->
normalised coordinates. A draw is rejected and drawn again when the pelvis is behind or within
MIN_ROOT_DEPTH of the camera in any frame of the window, or fewer than MIN_VISIBLE_JOINTS joints
of the newest frame are in the image (a detector would not report that person): a batch always
has n samples.

Frames are drawn uniformly over all frames of the clips given, times the per-source weight
(`source_weights` {source: w}, else the weights of the bank's source specs, default 1): weight 2
makes each frame of that source twice as likely.

Output: a dict of numpy arrays (the keys of data/sequence.make_sequence, plus the window):
  inputs (n,17,3) or (n,T,17,3) float32 = (x_norm, y_norm, conf), newest frame last;
  for the newest frame: keypoints / keypoints_clean (n,17,2) normalised, keypoints_px (n,17,2),
  conf (n,17), visible (n,17) bool (in front of the camera and inside the image), occluded (n,17)
  bool (in the image but hidden by the body: data/noise.self_occlusion), pose3d (n,17,3) root-relative camera frame metres,
  root (n,3), K (n,3,3), image_size (n,2) = (w, h);
  body_scale (n,) (size factor relative to the clip's own skeleton), height_m (n,) standing
  height, mirrored (n,) bool, clip (n,) index into the bank, frame (n,) frame index in the clip,
  source (n,) index into `gen.source_names`, cam_R (n,3,3) / cam_t (n,3) the camera
  (world -> camera, world = the mirrored and rescaled motion, floor at bank.floor[clip]),
  cam_height / cam_distance (n,) metres, cam_tilt_deg / hfov_deg (n,) degrees.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from diffpose_ros import camera, paths
from diffpose_ros.data import body as body_mod
from diffpose_ros.data.body import BodyConfig
from diffpose_ros.data.cache import save_npz
from diffpose_ros.data.noise import NoiseConfig, apply_noise, self_occlusion
from diffpose_ros.data.virtual_camera import CameraConfig, sample_cameras
from diffpose_ros.skeleton import ROOT

MIN_ROOT_DEPTH = 0.3
MIN_VISIBLE_JOINTS = 8
MAX_NORM_COORD = 10.0          # |x/z|, |y/z| bound for clean coordinates of joints behind the camera
GENERATOR_VERSION = "gen-v1"   # bump when samples change for the same arguments (fixed-set cache)
PARTS = ("ankle_height", "shin", "thigh", "spine", "thorax_to_head")


class PairGenerator:
    def __init__(self, bank, clip_indices=None, window: int = 1, camera: CameraConfig | None = None,
                 noise: NoiseConfig | None = None, body: BodyConfig | None = None, mirror: bool = True,
                 source_weights: dict | None = None):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        clips = np.arange(len(bank)) if clip_indices is None else np.asarray(clip_indices, np.int64).ravel()
        if clips.size == 0:
            raise ValueError("no clips given to the generator")
        if clips.min() < 0 or clips.max() >= len(bank):
            raise ValueError(f"clip indices must be in [0, {len(bank)}), got {clips.min()}..{clips.max()}")
        self.bank, self.clips, self.window = bank, np.unique(clips), int(window)
        self.camera = camera or CameraConfig()
        self.noise = noise or NoiseConfig()
        self.body = body or BodyConfig()
        self.mirror = bool(mirror)
        self.source_names = bank.source_names
        src = bank.meta["source"]
        if source_weights is not None:
            unknown = sorted(set(source_weights) - set(self.source_names))
            if unknown:
                raise ValueError(f"source_weights names unknown sources {unknown}; the bank has {self.source_names}")
            bad = {k: v for k, v in source_weights.items() if not v >= 0}
            if bad:
                raise ValueError(f"source weights must be >= 0, got {bad}")
            w_clip = np.array([float(source_weights.get(s, 1.0)) for s in src])
        else:
            w_clip = np.asarray(bank.weight, np.float64)
        p = w_clip[self.clips] * bank.length[self.clips]
        if not p.sum() > 0:
            raise ValueError("all selected clips have weight 0")
        self._clip_cdf = np.cumsum(p) / p.sum()
        self._source_index = {s: i for i, s in enumerate(self.source_names)}
        self._clip_source = np.array([self._source_index[s] for s in src], np.int32)
        self._parts = {k: np.asarray(bank.stats[k], np.float64) for k in PARTS}

    # -------------------------------------------------------------- public API
    def sample(self, rng: np.random.Generator, n: int) -> dict:
        """n fresh samples (see the module docstring)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        parts, need = [], n
        for _ in range(50):
            m = int(need * 1.12) + 8     # ~93 % of draws are valid with the default CameraConfig
            clip = self.clips[np.minimum(np.searchsorted(self._clip_cdf, rng.random(m)), len(self.clips) - 1)]
            frame = (rng.random(m) * self.bank.length[clip]).astype(np.int64)
            mirrored = (rng.random(m) < 0.5) if self.mirror else np.zeros(m, bool)
            if self.body.enabled:
                bodies = body_mod.draw_bodies(rng, {k: v[clip] for k, v in self._parts.items()}, self.body)
            else:
                bodies = body_mod.uniform_bodies({k: v[clip] for k, v in self._parts.items()}, 1.0)
            out = self._render(rng, clip, frame, mirrored, bodies, limit=need)
            parts.append(out)
            need -= len(out["clip"])
            if need <= 0:
                return _concat(parts, n)
        raise RuntimeError("could not draw enough valid samples: check CameraConfig (almost every draw "
                           "leaves the person outside the image or behind the camera)")

    def fixed_set(self, seed: int = 0, n_per_clip: int = 20, scale: float = 1.0, cache: bool = True,
                  mirror: bool = False) -> dict:
        """Deterministic evaluation samples: `n_per_clip` per clip at evenly spaced frames, each
        with its own camera and noise drawn from (seed, clip key), so a clip's samples do not
        depend on which other clips are in the set. The bodies are the clips' own skeletons
        scaled by `scale` about the floor (standard proportions: no per-bone jitter; 0.9 or 1.15
        for the scaled-skeleton rows); no mirroring unless `mirror`. Cached as an npz in
        <cache>/fixed_sets/ keyed by the bank, the clips and every argument."""
        if n_per_clip < 1 or not scale > 0:
            raise ValueError(f"n_per_clip must be >= 1 and scale > 0, got {n_per_clip}, {scale}")
        cache_file = self._fixed_cache_file(seed, n_per_clip, scale, mirror) if cache else None
        if cache_file is not None and cache_file.is_file():
            with np.load(cache_file) as z:
                return {k: z[k] for k in z.files}
        parts = []
        for c in self.clips:
            key = str(self.bank.meta["key"][c])
            rng = np.random.default_rng([seed, int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)])
            L = int(self.bank.length[c])
            frames = np.unique(np.linspace(0, L - 1, n_per_clip).round().astype(np.int64))
            got = []
            todo = frames   # a frame that no camera in 50 draws sees validly is left out (rare)
            for _ in range(50):
                clip = np.full(len(todo), c)
                mirrored = (rng.random(len(todo)) < 0.5) if mirror else np.zeros(len(todo), bool)
                bodies = body_mod.uniform_bodies({k: v[clip] for k, v in self._parts.items()}, scale)
                out = self._render(rng, clip, todo, mirrored, bodies)
                got.append(out)
                todo = np.setdiff1d(todo, out["frame"])     # frames whose draw was rejected: draw again
                if not len(todo):
                    break
            part = _concat(got, None)
            order = np.argsort(part["frame"], kind="stable")
            parts.append({k: v[order] for k, v in part.items()})
        out = _concat(parts, None)
        if cache_file is not None:
            save_npz(cache_file, out)
        return out

    # -------------------------------------------------------------- internals
    def _fixed_cache_file(self, seed, n_per_clip, scale, mirror) -> Path:
        b = self.bank
        digest = hashlib.sha1()
        digest.update(np.ascontiguousarray(b.joints[::97]).tobytes())
        digest.update(json.dumps([b.meta["key"][self.clips].tolist(), b.length[self.clips].tolist(),
                                  b.floor[self.clips].round(6).tolist(), b.fps]).encode())
        key = hashlib.sha1(json.dumps({
            "bank": digest.hexdigest(), "window": self.window, "seed": seed, "n": n_per_clip,
            "scale": scale, "mirror": mirror, "camera": dataclasses.asdict(self.camera),
            "noise": dataclasses.asdict(self.noise), "version": GENERATOR_VERSION,
            "filters": (MIN_ROOT_DEPTH, MIN_VISIBLE_JOINTS, MAX_NORM_COORD),
        }, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return paths.cache_dir() / "fixed_sets" / f"fixed_{key}.npz"

    def _render(self, rng, clip, frame, mirrored, bodies, limit=None) -> dict:
        """Samples for the given (clip, newest frame) draws; rejected draws are left out."""
        factors, scale, height = bodies
        b, T = self.bank, self.window
        start = b.start[clip]
        idx = start[:, None] + np.maximum(frame[:, None] + np.arange(-T + 1, 1)[None, :], 0)   # (m, T)
        world = body_mod.gather_mirrored(b.joints, idx, mirrored)      # (m,T,17,3) float32
        floor = b.floor[clip]
        world = body_mod.apply_body(world, floor, factors)
        cams = sample_cameras(rng, world[:, -1, ROOT], floor, self.camera)
        R = cams["R"].astype(np.float32)
        p_cam = world @ R.transpose(0, 2, 1)[:, None] + cams["t"].astype(np.float32)[:, None, None, :]
        px = camera.project(p_cam, cams["K"].astype(np.float32)[:, None])
        front = camera.in_front(p_cam)
        visible = front & camera.in_image(px, cams["image_size"][:, None])
        ok = (p_cam[:, :, ROOT, 2] > MIN_ROOT_DEPTH).all(axis=1) & (visible[:, -1].sum(-1) >= MIN_VISIBLE_JOINTS)
        keep = np.flatnonzero(ok)
        if limit is not None:
            keep = keep[:limit]
        sel = lambda a: a[keep]   # noqa: E731
        p_cam, px, front, visible = sel(p_cam), sel(px), sel(front), sel(visible)
        cams = {k: sel(v) for k, v in cams.items()}
        K = cams["K"]
        occluded = self_occlusion(p_cam, px, K[:, None])
        noisy, conf, _, _ = apply_noise(rng, px, visible, front, cams["image_size"], self.noise, occluded=occluded)
        kp_norm = camera.normalize(noisy, K[:, None])
        inputs = np.empty(kp_norm.shape[:-1] + (3,), np.float32)   # (x_norm, y_norm, conf), no float64 copy
        inputs[..., :2] = kp_norm
        inputs[..., 2] = conf
        last = p_cam[:, -1]
        out = {
            "inputs": inputs if T > 1 else inputs[:, 0],
            "keypoints": kp_norm[:, -1].astype(np.float32),
            "keypoints_clean": np.clip(camera.normalize(px[:, -1], K), -MAX_NORM_COORD, MAX_NORM_COORD).astype(np.float32),
            "keypoints_px": noisy[:, -1].astype(np.float32),
            "conf": conf[:, -1].astype(np.float32),
            "visible": visible[:, -1],
            "occluded": occluded[:, -1],
            "pose3d": (last - last[:, ROOT:ROOT + 1]).astype(np.float32),
            "root": last[:, ROOT].astype(np.float32),
            "K": K.astype(np.float32),
            "image_size": cams["image_size"].astype(np.float32),
            "body_scale": scale[keep].astype(np.float32),
            "height_m": height[keep].astype(np.float32),
            "mirrored": mirrored[keep],
            "clip": clip[keep].astype(np.int32),
            "frame": frame[keep].astype(np.int32),
            "source": self._clip_source[clip[keep]],
            "cam_R": cams["R"].astype(np.float32),
            "cam_t": cams["t"].astype(np.float32),
            "cam_height": cams["height"].astype(np.float32),
            "cam_distance": cams["distance"].astype(np.float32),
            "cam_tilt_deg": cams["tilt_deg"].astype(np.float32),
            "hfov_deg": cams["hfov_deg"].astype(np.float32),
        }
        return out


def _concat(parts, n):
    out = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if n is not None:
        out = {k: v[:n] for k, v in out.items()}
    return out
