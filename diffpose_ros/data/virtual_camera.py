"""Random virtual cameras placed like a robot's or a room's camera around a person.

The BVH world is Y-up, right-handed, metres (checked on the shared data: the floor is the
lowest joint height, the person's left is +X when facing +Z).

`sample_cameras` (the generator's, vectorised: one camera per sample, fixed over the sample's
temporal window) draws, per sample, with CameraConfig:
  * height above the floor uniform in `height_range` (0.3-3.0 m: floor robots to ceiling-mounted
    room cameras);
  * horizontal distance from the person's pelvis (newest frame) log-uniform in `distance_range`
    (1-10 m; log-uniform because near people matter most to a robot and fill more pixels);
  * azimuth uniform in [0, 360) degrees;
  * intrinsics of real cameras: image size from `image_sizes`, horizontal FOV uniform in
    `hfov_range` (40-110 degrees: Human3.6M's cameras have ~47, robot wide-angle cameras up to
    110), fy = fx * (1 + N(0, aspect_jitter)), principal point at the image centre
    + N(0, principal_jitter * size);
  * the camera first looks at the pelvis, then turns by a yaw and a pitch of up to `offcentre`
    x half the field of view (0.7: the pelvis lands anywhere up to 70 % of the way from the
    image centre to its border; with the default ranges 36 % of the samples have a joint
    outside the image, 10 % more than 4 joints, mostly with near cameras where a whole body
    does not fit: truncated people without making them the rule; 1.0 gave 54 %), and rolls by
    up to `roll_deg`;
  * a draw whose tilt (optical axis below the horizon) is outside `tilt_range` (-20 to 45
    degrees, positive = looking down) is drawn again; so is one whose camera would sit inside
    the person (`min_clearance`).
The caller rejects the draws whose projection is unusable (pelvis behind or too close to the
camera, too few joints in the image) and draws again, so a batch always has n samples.

`sample_camera` is the per-clip camera of data/sequence.py (one camera fixed over a whole clip,
aimed at the clip's mean pelvis): the per-track filter's evaluation sequences.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose_ros import camera

IMAGE_SIZES = ((640, 480), (848, 480), (1280, 720), (1920, 1080))


@dataclass
class CameraConfig:
    height_range: tuple = (0.3, 3.0)
    distance_range: tuple = (1.0, 10.0)
    hfov_range: tuple = (40.0, 110.0)
    tilt_range: tuple = (-20.0, 45.0)    # degrees below the horizon (generator only)
    image_sizes: tuple = IMAGE_SIZES
    roll_deg: float = 5.0
    offcentre: float = 0.7
    principal_jitter: float = 0.02
    aspect_jitter: float = 0.005
    min_clearance: float = 0.5
    max_tries: int = 20

    def __post_init__(self):
        for name in ("height_range", "distance_range", "hfov_range", "tilt_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"CameraConfig.{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if self.distance_range[0] <= 0 or not 0 < self.hfov_range[0] and self.hfov_range[1] < 180:
            raise ValueError("CameraConfig: distances must be > 0 and the field of view in (0, 180) degrees")


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


def sample_intrinsics_batch(rng, n: int, cfg: CameraConfig):
    """n random intrinsics: (K (n,3,3), image_size (n,2) = (w, h), hfov_deg (n,))."""
    sizes = np.asarray(cfg.image_sizes, float)
    wh = sizes[rng.integers(len(sizes), size=n)]
    hfov = rng.uniform(*cfg.hfov_range, n)
    fx = (wh[:, 0] / 2) / np.tan(np.deg2rad(hfov) / 2)
    fy = fx * (1 + rng.normal(0, cfg.aspect_jitter, n))
    K = np.zeros((n, 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 2, 2] = fx, fy, 1.0
    K[:, 0, 2] = wh[:, 0] / 2 + rng.normal(0, cfg.principal_jitter, n) * wh[:, 0]
    K[:, 1, 2] = wh[:, 1] / 2 + rng.normal(0, cfg.principal_jitter, n) * wh[:, 1]
    return K, wh, hfov


def sample_intrinsics(rng, cfg: CameraConfig):
    K, wh, _ = sample_intrinsics_batch(rng, 1, cfg)
    return K[0], wh[0]


def rotation_from_angles(heading, elevation, roll):
    """World->camera rotations (n,3,3) of cameras whose optical axis has the given heading (about
    the world vertical, 0 = +X, pi/2 = +Z) and elevation (up positive), rolled about that axis;
    without roll the image x axis is horizontal."""
    ce, se = np.cos(elevation), np.sin(elevation)
    z = np.stack([ce * np.cos(heading), se, ce * np.sin(heading)], -1)           # forward
    x = np.stack([-np.sin(heading), np.zeros_like(heading), np.cos(heading)], -1)  # right = forward x down
    y = np.cross(z, x)                                                          # down in the image
    R = np.stack([x, y, z], axis=1)                                             # rows = camera axes
    cr, sr = np.cos(roll), np.sin(roll)
    Rz = np.zeros_like(R)
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1], Rz[:, 2, 2] = cr, -sr, sr, cr, 1.0
    return Rz @ R


def sample_cameras(rng: np.random.Generator, target, floor, cfg: CameraConfig | None = None) -> dict:
    """One random camera per sample around `target` (n,3) world pelvis positions standing on
    `floor` (n,) (see the module docstring). Returns R (n,3,3) world->camera, t (n,3), K (n,3,3),
    image_size (n,2), height / distance (n,) metres, tilt_deg / hfov_deg (n,) degrees."""
    cfg = cfg or CameraConfig()
    target = np.asarray(target, np.float64).reshape(-1, 3)
    floor = np.broadcast_to(np.asarray(floor, np.float64), target.shape[:1])
    n = len(target)
    out = {k: None for k in ("R", "t", "K", "image_size", "height", "distance", "tilt_deg", "hfov_deg")}
    todo = np.arange(n)
    for _ in range(100):
        m = len(todo)
        K, wh, hfov = sample_intrinsics_batch(rng, m, cfg)
        dist = np.exp(rng.uniform(*np.log(cfg.distance_range), m))
        az = rng.uniform(0, 2 * np.pi, m)
        height = rng.uniform(*cfg.height_range, m)
        tg = target[todo]
        eye = np.stack([tg[:, 0] + dist * np.cos(az), floor[todo] + height, tg[:, 2] + dist * np.sin(az)], -1)
        to = tg - eye
        half_h = np.arctan(wh[:, 0] / (2 * K[:, 0, 0]))
        half_v = np.arctan(wh[:, 1] / (2 * K[:, 1, 1]))
        heading = np.arctan2(to[:, 2], to[:, 0]) + rng.uniform(-1, 1, m) * cfg.offcentre * half_h
        elev = np.arctan2(to[:, 1], np.hypot(to[:, 0], to[:, 2])) + rng.uniform(-1, 1, m) * cfg.offcentre * half_v
        roll = np.deg2rad(rng.uniform(-cfg.roll_deg, cfg.roll_deg, m))
        tilt = -np.rad2deg(elev)
        ok = (tilt >= cfg.tilt_range[0]) & (tilt <= cfg.tilt_range[1]) & (dist > cfg.min_clearance)
        R = rotation_from_angles(heading, elev, roll)
        t = -np.einsum("nij,nj->ni", R, eye)
        fill = {"R": R, "t": t, "K": K, "image_size": wh, "height": height, "distance": dist,
                "tilt_deg": tilt, "hfov_deg": hfov}
        for k, v in fill.items():
            if out[k] is None:
                out[k] = np.empty((n,) + v.shape[1:])
            out[k][todo[ok]] = v[ok]
        todo = todo[~ok]
        if not len(todo):
            return out
    raise ValueError(f"CameraConfig {cfg} leaves (almost) no valid camera: tilt_range {cfg.tilt_range} "
                     f"cannot be met from heights {cfg.height_range} at distances {cfg.distance_range}")


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
