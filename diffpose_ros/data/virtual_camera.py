"""Random virtual cameras placed like a robot's camera around a mocap clip.

The BVH world is Y-up, right-handed, metres (checked on the shared data: the floor is the
lowest joint height, the person's left is +X when facing +Z). One camera is drawn per
(clip, draw) and kept fixed over the clip, so the person's own motion carries them through
the image, as a robot sees a sequence; the temporal model needs such consistent sequences.

Sampling (CameraConfig):
  * height above the floor uniform in `height_range` (0.3-2.0 m: floor robots to tall heads);
  * horizontal distance from the clip's mean pelvis log-uniform in `distance_range` (1-10 m;
    log-uniform because near people matter most to a robot and fill more pixels);
  * azimuth uniform in [0, 360) degrees;
  * the camera looks at the mean pelvis, then turns by a random yaw / pitch of up to
    `offcentre` x half the field of view so the person lands anywhere in the image, and
    rolls by up to `roll_deg`;
  * intrinsics of real cameras: image size from `image_sizes`, horizontal FOV uniform in
    `hfov_range` degrees, fy = fx * (1 + N(0, aspect_jitter)), principal point at the image
    centre + N(0, principal_jitter * size).
A draw is retried (up to `max_tries`) while the pelvis passes closer than `min_clearance`
to the camera or behind it; the last draw is kept otherwise (those frames are filtered later).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose_ros import camera

IMAGE_SIZES = ((640, 480), (848, 480), (1280, 720), (1920, 1080))


@dataclass
class CameraConfig:
    height_range: tuple = (0.3, 2.0)
    distance_range: tuple = (1.0, 10.0)
    hfov_range: tuple = (50.0, 110.0)
    image_sizes: tuple = IMAGE_SIZES
    roll_deg: float = 5.0
    offcentre: float = 0.6
    principal_jitter: float = 0.02
    aspect_jitter: float = 0.005
    min_clearance: float = 0.5
    max_tries: int = 20


@dataclass
class VirtualCamera:
    R: np.ndarray            # (3, 3) world -> camera (optical frame)
    t: np.ndarray            # (3,)
    K: np.ndarray            # (3, 3)
    image_size: np.ndarray   # (2,) = (w, h)

    @property
    def center(self):
        return -self.R.T @ self.t

    def to_camera(self, points_world):
        return camera.world_to_camera(points_world, self.R, self.t)

    def project(self, points_world):
        """(pixels (..., 2), camera-frame points (..., 3))."""
        pc = self.to_camera(points_world)
        return camera.project(pc, self.K), pc


def _rot(axis, a):
    c, s = np.cos(a), np.sin(a)
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 1:
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def look_at(eye, target, up=(0.0, 1.0, 0.0)):
    """World->camera rotation (optical frame) of a camera at eye looking at target; world up = +Y."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    down = -np.asarray(up, float)
    x = np.cross(down, z)
    n = np.linalg.norm(x)
    if n < 1e-8:                       # looking straight up/down: any right vector will do
        x = np.array([1.0, 0.0, 0.0]) - z[0] * z
        n = np.linalg.norm(x)
    x /= n
    y = np.cross(z, x)
    return np.stack([x, y, z])         # rows = camera axes in world coordinates


def sample_intrinsics(rng, cfg: CameraConfig):
    w, h = cfg.image_sizes[rng.integers(len(cfg.image_sizes))]
    hfov = np.deg2rad(rng.uniform(*cfg.hfov_range))
    fx = (w / 2) / np.tan(hfov / 2)
    fy = fx * (1 + rng.normal(0, cfg.aspect_jitter))
    cx = w / 2 + rng.normal(0, cfg.principal_jitter * w)
    cy = h / 2 + rng.normal(0, cfg.principal_jitter * h)
    return camera.intrinsics(fx, fy, cx, cy), np.array([w, h], float)


def sample_camera(rng: np.random.Generator, pelvis_world, floor_y: float,
                  cfg: CameraConfig | None = None) -> VirtualCamera:
    """Draw one camera for a clip whose pelvis trajectory (F, 3) is given in world metres."""
    cfg = cfg or CameraConfig()
    pelvis_world = np.asarray(pelvis_world, float).reshape(-1, 3)
    centre = pelvis_world.mean(axis=0)
    cam = None
    for _ in range(cfg.max_tries):
        K, size = sample_intrinsics(rng, cfg)
        dist = np.exp(rng.uniform(*np.log(cfg.distance_range)))
        az = rng.uniform(0, 2 * np.pi)
        eye = np.array([centre[0] + dist * np.cos(az), floor_y + rng.uniform(*cfg.height_range),
                        centre[2] + dist * np.sin(az)])
        K_hfov = 2 * np.arctan(size[0] / (2 * K[0, 0]))
        K_vfov = 2 * np.arctan(size[1] / (2 * K[1, 1]))
        # aim at the pelvis, then turn about the world vertical (yaw) and tilt (pitch) so the
        # person lands off-centre; the horizon stays level until the explicit roll
        to = centre - eye
        heading = np.arctan2(to[2], to[0]) + rng.uniform(-1, 1) * cfg.offcentre * K_hfov / 2
        elev = np.arctan2(to[1], np.hypot(to[0], to[2])) + rng.uniform(-1, 1) * cfg.offcentre * K_vfov / 2
        elev = np.clip(elev, -np.deg2rad(85), np.deg2rad(85))
        direction = np.array([np.cos(elev) * np.cos(heading), np.sin(elev), np.cos(elev) * np.sin(heading)])
        roll = np.deg2rad(rng.uniform(-cfg.roll_deg, cfg.roll_deg))
        R = _rot(2, roll) @ look_at(eye, eye + direction)
        t = -R @ eye
        cam = VirtualCamera(R, t, K, size)
        depth = cam.to_camera(pelvis_world)[:, 2]
        horiz = np.linalg.norm((pelvis_world - eye)[:, [0, 2]], axis=1)
        if depth.min() > 0 and horiz.min() > cfg.min_clearance:
            break
    return cam
