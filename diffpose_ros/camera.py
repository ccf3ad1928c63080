"""Pinhole camera helpers shared by the whole project (numpy only).

Conventions: the camera frame is the ROS optical frame (x right, y down, z forward), metres.
K is the usual 3x3 intrinsic matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (skew s is normally 0).
"Normalised coordinates" of a pixel (u, v) are ((u - cx) / fx, (v - cy) / fy), i.e. the
point's x/z, y/z; this is what the lifter consumes, so it does not depend on the image size.
All functions broadcast over leading dimensions; K may be (3, 3) or (..., 3, 3) matching them.
"""
import numpy as np


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
    size = np.asarray(image_size)[..., None, :]
    return np.all((uv >= 0) & (uv < size), axis=-1)


def in_front(points_cam, min_depth=1e-3):
    """Boolean (..., N): point lies in front of the camera."""
    return np.asarray(points_cam)[..., 2] > min_depth
