"""Pinhole camera helpers shared by the whole project (numpy only).

Conventions: the camera frame is the ROS optical frame (x right, y down, z forward), metres.
K is the usual 3x3 intrinsic matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (skew s is normally 0).
"Normalised coordinates" of a pixel (u, v) are ((u - cx) / fx, (v - cy) / fy), i.e. the
point's x/z, y/z; this is what the lifter consumes, so it does not depend on the image size.
All functions broadcast over leading dimensions; K may be (3, 3) or (..., 3, 3) matching them.

`Intrinsics` is the one camera model of the package: the pinhole K of the images as they arrive
(after binning and ROI), their lens distortion, and how to map their pixels to ideal pinhole
pixels under that K. It is built from a sensor_msgs/CameraInfo (`from_camera_info`, duck-typed,
so no ROS import here) or from a field-of-view guess (`from_fov`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# distortion_model (sensor_msgs/distortion_models.hpp) -> accepted numbers of coefficients in D
DISTORTION_MODELS = {
    "plumb_bob": (4, 5),                     # k1 k2 p1 p2 [k3], OpenCV's standard model
    "rational_polynomial": (8, 12, 14),      # k1 k2 p1 p2 k3 k4 k5 k6 [s1..s4 [tx ty]]
    "equidistant": (4,),                     # k1 k2 k3 k4, OpenCV's cv2.fisheye model
}


def _k_parts(K):
    K = np.asarray(K)
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"K must have shape (..., 3, 3), got {K.shape}")
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    cx, cy, skew = K[..., 0, 2], K[..., 1, 2], K[..., 0, 1]
    return fx[..., None], fy[..., None], cx[..., None], cy[..., None], skew[..., None]


def intrinsics(fx, fy, cx, cy):
    """3x3 K from focal lengths and principal point (pixels)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def fov_intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K for a horizontal field of view: square pixels, principal point at the image
    centre. Pixel centres are at integer coordinates (OpenCV, ROS), so the centre of a w-pixel
    row is (w - 1) / 2."""
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
    f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2)
    return intrinsics(f, f, (width - 1) / 2, (height - 1) / 2)


def crop_and_bin(M: np.ndarray, x_offset: float, y_offset: float, binning_x: int, binning_y: int) -> np.ndarray:
    """K (3x3) or P (3x4) of the full sensor -> the same for an image that is the ROI starting at
    (x_offset, y_offset), binned by (binning_x, binning_y): REP 104, as image_geometry does it."""
    M = np.array(M, dtype=np.float64)
    M[0, 2] -= x_offset
    M[1, 2] -= y_offset
    M[0] /= binning_x
    M[1] /= binning_y
    return M


@dataclass
class Intrinsics:
    """Camera model of the images one works on.

    K: pinhole matrix of the image as it arrives (binning and ROI already applied).
    D, distortion_model: the lens distortion of these pixels (empty D: none). Rectified images
    (image_rect) have none: CameraInfo's P is their pinhole matrix.
    R: for rectified images, CameraInfo's rotation from the camera frame to the rectified frame;
    `undistort` rotates their rays back into the camera frame (identity for a monocular camera).
    width, height: the image size K belongs to (0 = unknown).
    """
    K: np.ndarray                       # (3, 3)
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    width: int = 0
    height: int = 0
    distortion_model: str = "plumb_bob"
    R: np.ndarray | None = None

    def __post_init__(self):
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.D = np.asarray(self.D, dtype=np.float64).reshape(-1)
        fx, fy = self.K[0, 0], self.K[1, 1]
        if not (np.isfinite(self.K).all() and fx > 0 and fy > 0):
            raise ValueError(f"invalid intrinsics: fx={fx}, fy={fy} (must be finite and > 0)")
        if not np.isfinite(self.D).all():
            raise ValueError("invalid distortion coefficients (non-finite)")
        if np.any(self.D):
            sizes = DISTORTION_MODELS.get(self.distortion_model)
            if sizes is None:
                raise ValueError(f"unsupported distortion_model '{self.distortion_model}' with non-zero D "
                                 f"(supported: {', '.join(DISTORTION_MODELS)})")
            if self.D.size not in sizes:
                raise ValueError(f"distortion_model '{self.distortion_model}' takes "
                                 f"{' or '.join(map(str, sizes))} coefficients, D has {self.D.size}")
        if self.R is not None:
            self.R = np.asarray(self.R, dtype=np.float64).reshape(3, 3)
            if not (np.isfinite(self.R).all() and np.allclose(self.R @ self.R.T, np.eye(3), atol=1e-6)):
                raise ValueError("invalid rectification matrix R (not a rotation)")
            if np.allclose(self.R, np.eye(3), atol=1e-12):
                self.R = None

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> "Intrinsics":
        return cls(K=fov_intrinsics(width, height, hfov_deg), width=width, height=height)

    @classmethod
    def from_camera_info(cls, info, rectified: bool = False) -> "Intrinsics":
        """From a sensor_msgs/CameraInfo (any object with its fields). K, P and the ROI refer to
        the full sensor; binning 0 means 1, an all-zero ROI the full image (REP 104). Raw images
        use K and D; rectified ones P and R, and D is not applied again."""
        K = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        if K[0, 0] == 0.0:
            raise ValueError("uncalibrated camera (K[0] == 0)")
        bx, by = int(info.binning_x) or 1, int(info.binning_y) or 1
        roi = info.roi
        x0, y0, roi_w, roi_h = int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)
        if (x0, y0, roi_w, roi_h) == (0, 0, 0, 0):
            roi_w, roi_h = int(info.width), int(info.height)
        size = dict(width=roi_w // bx, height=roi_h // by)
        D = np.asarray(info.d, dtype=np.float64)
        if not rectified:
            return cls(K=crop_and_bin(K, x0, y0, bx, by), D=D, distortion_model=info.distortion_model, **size)
        P = np.asarray(info.p, dtype=np.float64).reshape(3, 4)
        if P[0, 0] == 0.0:
            if np.any(D):
                raise ValueError("rectified images need CameraInfo P (it is zero and D is not)")
            P = np.c_[K, np.zeros(3)]
        R = np.asarray(info.r, dtype=np.float64).reshape(3, 3)
        # P's last column (stereo baseline) places the camera in the left camera's frame; the
        # image's own frame is this camera's, so only P[:, :3] applies to its pixels
        return cls(K=crop_and_bin(P, x0, y0, bx, by)[:, :3], R=None if not np.any(R) else R, **size)

    def scaled_to(self, width: int, height: int) -> "Intrinsics":
        """The same camera for an image resized to width x height (K's rows scaled)."""
        K = self.K.copy()
        K[0] *= width / self.width
        K[1] *= height / self.height
        return Intrinsics(K=K, D=self.D, width=width, height=height,
                          distortion_model=self.distortion_model, R=self.R)

    def undistort(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) pixels of these images -> ideal pinhole pixels under K, in the camera frame."""
        uv = np.asarray(uv, dtype=np.float64)
        has_d = self.D.size > 0 and np.any(self.D)
        if not has_d and self.R is None:
            return uv
        import cv2
        pts = uv.reshape(-1, 1, 2)
        if has_d and self.distortion_model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, self.K, self.D, P=self.K)
        elif has_d:
            # more iterations than OpenCV's default 5: keypoints near a strongly distorted edge
            # converge to well below a pixel (OpenCV 4 names this variant undistortPointsIter)
            criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
            iterate = getattr(cv2, "undistortPointsIter", None)
            out = (iterate(pts, self.K, self.D, None, self.K, criteria) if iterate is not None
                   else cv2.undistortPoints(pts, self.K, self.D, P=self.K, criteria=criteria))
        else:                              # rectified: ray in the rectified frame -> camera frame
            ray = np.concatenate([normalize(pts.reshape(-1, 2), self.K), np.ones((pts.shape[0], 1))], -1)
            ray = ray @ self.R                 # R^T x for each row x
            out = denormalize(ray[:, :2] / ray[:, 2:], self.K)
        return np.asarray(out, dtype=np.float64).reshape(uv.shape)


def world_to_camera(points, R, t):
    """x_cam = R @ x_world + t for points (..., 3); R (3, 3) world->camera, t (3,)."""
    return np.einsum("ij,...j->...i", np.asarray(R), np.asarray(points)) + np.asarray(t)


def camera_to_world(points_cam, R, t):
    """Inverse of world_to_camera."""
    return np.einsum("ji,...j->...i", np.asarray(R), np.asarray(points_cam) - np.asarray(t))


def normalize(uv, K):
    """Pixels (..., N, 2) -> normalised camera coordinates (..., N, 2)."""
    uv = np.asarray(uv)
    fx, fy, cx, cy, skew = _k_parts(K)
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - skew * y) / fx
    return np.stack([x, y], axis=-1)


def denormalize(xy, K):
    """Normalised camera coordinates (..., N, 2) -> pixels (..., N, 2)."""
    xy = np.asarray(xy)
    fx, fy, cx, cy, skew = _k_parts(K)
    u = fx * xy[..., 0] + skew * xy[..., 1] + cx
    v = fy * xy[..., 1] + cy
    return np.stack([u, v], axis=-1)


def project(points_cam, K, min_depth=1e-6):
    """Camera-frame points (..., N, 3) -> pixels (..., N, 2).

    Depths below min_depth (at or behind the camera) are clamped to min_depth so the result
    stays finite; callers mark such points invisible with `in_front`.
    """
    p = np.asarray(points_cam)
    z = np.maximum(p[..., 2], min_depth)
    return denormalize(np.stack([p[..., 0] / z, p[..., 1] / z], axis=-1), K)


def unproject(uv, depth, K):
    """Pixels (..., N, 2) and depth z (..., N) -> camera-frame points (..., N, 3)."""
    xy = normalize(uv, K)
    depth = np.asarray(depth)[..., None]
    return np.concatenate([xy * depth, depth], axis=-1)


def in_image(uv, image_size):
    """Boolean (..., N): pixel inside [0, w) x [0, h); image_size (..., 2) = (w, h)."""
    uv = np.asarray(uv)
    size = np.asarray(image_size)
    if uv.dtype == np.float32 and size.dtype != np.float32 and np.array_equal(size.astype(np.float32), size):
        size = size.astype(np.float32)      # whole-pixel sizes are exact: the same answer, no float64 temporaries
    w, h = size[..., 0, None], size[..., 1, None]
    u, v = uv[..., 0], uv[..., 1]
    return (u >= 0) & (u < w) & (v >= 0) & (v < h)


def in_front(points_cam, min_depth=1e-3):
    """Boolean (..., N): point lies in front of the camera."""
    return np.asarray(points_cam)[..., 2] > min_depth
