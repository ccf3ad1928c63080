"""The camera model against OpenCV's own projection: known 3D points are projected with OpenCV
through each lens model (plumb_bob, rational_polynomial, equidistant), a rectified image (P, R)
and a binned ROI; our undistortion of those pixels must give the ideal pinhole projection."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from diffpose_ros import camera, pipeline
from diffpose_ros.camera import Intrinsics, fov_intrinsics
from diffpose_ros.lifter import placement
from diffpose_ros.tools import detect

K = np.array([[610.0, 0.0, 318.2], [0.0, 605.0, 243.7], [0.0, 0.0, 1.0]])
RNG = np.random.default_rng(3)


def points(n=60, half_angle_deg=35.0):
    """3D points in front of the camera within a cone around the optical axis."""
    t = np.tan(np.radians(half_angle_deg))
    z = RNG.uniform(1.5, 6.0, n)
    return np.c_[RNG.uniform(-t, t, (n, 2)) * z[:, None], z]


def info(d, model="plumb_bob", k=K, p=None, r=np.eye(3), width=640, height=480, binning=(0, 0), roi=(0, 0, 0, 0)):
    """A sensor_msgs/CameraInfo's fields (from_camera_info reads them by name; no ROS needed)."""
    P = np.c_[k, np.zeros(3)] if p is None else p
    return SimpleNamespace(k=k.reshape(-1).tolist(), d=list(d), r=np.asarray(r).reshape(-1).tolist(),
                           p=P.reshape(-1).tolist(), distortion_model=model, width=width, height=height,
                           binning_x=binning[0], binning_y=binning[1],
                           roi=SimpleNamespace(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3]))


def pinhole(pts, M):
    px, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), M, None)
    return px.reshape(-1, 2)


@pytest.mark.parametrize("model, D", [
    ("plumb_bob", [-0.28, 0.09, 0.0012, -0.0009, -0.015]),
    ("rational_polynomial", [0.6, -0.3, 0.001, 0.002, 0.05, 0.95, -0.1, 0.12]),
])
def test_standard_lens_models_match_opencv(model, D):
    pts = points()
    distorted, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), K, np.array(D))
    intr = Intrinsics.from_camera_info(info(D, model))
    ideal = intr.undistort(distorted.reshape(-1, 2))
    np.testing.assert_allclose(ideal, pinhole(pts, K), atol=1e-3)
    assert np.abs(distorted.reshape(-1, 2) - pinhole(pts, K)).max() > 5   # the lens really bends


def test_equidistant_fisheye_matches_opencv_fisheye():
    D = np.array([0.08, -0.03, 0.006, -0.001])
    pts = points(half_angle_deg=55.0)
    distorted, _ = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)
    ideal = Intrinsics.from_camera_info(info(D, "equidistant")).undistort(distorted.reshape(-1, 2))
    np.testing.assert_allclose(ideal, pinhole(pts, K), atol=1e-3)
    # the plumb-bob reading of the same numbers (what the node did before) is far off
    wrong = Intrinsics(K=K, D=np.r_[D, 0.0]).undistort(distorted.reshape(-1, 2))
    assert np.abs(wrong - pinhole(pts, K)).max() > 5


def test_rectified_image_uses_p_and_r_and_not_d():
    """image_rect: pixels are P[:, :3] @ R @ X (image_pipeline's rectification); D must not be
    applied again. The ideal pixels are the pinhole projection of X in the camera frame."""
    D = [-0.28, 0.09, 0.0012, -0.0009, -0.015]
    R, _ = cv2.Rodrigues(np.array([0.02, -0.015, 0.01]))
    P = np.array([[590.0, 0.0, 330.0, -35.4], [0.0, 590.0, 240.0, 0.0], [0.0, 0.0, 1.0, 0.0]])  # right camera of a pair
    pts = points()
    rect, _ = cv2.projectPoints(pts, cv2.Rodrigues(R)[0], np.zeros(3), P[:, :3], None)
    cam_info = info(D, p=P, r=R)
    intr = Intrinsics.from_camera_info(cam_info, rectified=True)
    np.testing.assert_allclose(intr.K, P[:, :3])
    ideal = intr.undistort(rect.reshape(-1, 2))
    np.testing.assert_allclose(ideal, pinhole(pts, P[:, :3]), atol=1e-6)
    # read as a raw image, K and D would be applied: clearly different pixels
    raw = Intrinsics.from_camera_info(cam_info).undistort(rect.reshape(-1, 2))
    assert np.abs(raw - ideal).max() > 5


def test_binning_and_roi_per_rep_104():
    """K, D and the ROI describe the full 1280x960 sensor; the image is the ROI (x 100, y 60,
    800x600) binned 2x2, so 400x300 pixels."""
    K_full = np.array([[1220.0, 0.0, 636.4], [0.0, 1210.0, 487.4], [0.0, 0.0, 1.0]])
    D = np.array([-0.28, 0.09, 0.0012, -0.0009, -0.015])
    pts = points(half_angle_deg=15.0)
    full, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), K_full, D)

    def to_image(uv):   # full-sensor pixels -> pixels of the binned ROI image
        return (uv.reshape(-1, 2) - [100, 60]) / 2.0

    intr = Intrinsics.from_camera_info(info(D, k=K_full, width=1280, height=960, binning=(2, 2),
                                            roi=(100, 60, 800, 600)))
    assert (intr.width, intr.height) == (400, 300)
    ideal = intr.undistort(to_image(full))
    np.testing.assert_allclose(ideal, to_image(pinhole(pts, K_full)), atol=1e-3)
    # binning 0 and an all-zero ROI mean the full image
    plain = Intrinsics.from_camera_info(info(D, k=K_full, width=1280, height=960))
    assert (plain.width, plain.height) == (1280, 960)
    np.testing.assert_allclose(plain.K, K_full)


@pytest.mark.parametrize("kwargs, match", [
    (dict(d=[0.1, 0.0, 0.0, 0.0], model="fov"), "unsupported distortion_model 'fov'"),
    (dict(d=[0.1, 0.0, 0.0], model="plumb_bob"), "takes 4 or 5 coefficients"),
    (dict(d=[0.1, 0.0, 0.0, 0.0, 0.0], model="equidistant"), "takes 4 coefficients"),
    (dict(d=[0.0] * 5, k=np.zeros((3, 3))), "uncalibrated"),
    (dict(d=[0.0] * 5, r=np.diag([1.0, 1.0, 2.0])), None),            # R only matters for rectified images
])
def test_bad_camera_info_is_refused_with_the_reason(kwargs, match):
    d, model = kwargs.pop("d"), kwargs.pop("model", "plumb_bob")
    if match is None:
        Intrinsics.from_camera_info(info(d, model, **kwargs))
        with pytest.raises(ValueError, match="not a rotation"):
            Intrinsics.from_camera_info(info(d, model, **kwargs), rectified=True)
        return
    with pytest.raises(ValueError, match=match):
        Intrinsics.from_camera_info(info(d, model, **kwargs))


def test_one_intrinsics_type_and_one_fov_guess():
    assert pipeline.Intrinsics is camera.Intrinsics
    assert not hasattr(placement, "normalise_px")  # one pixel normalisation: camera.normalize
    K = fov_intrinsics(640, 480, 60.0)
    np.testing.assert_array_equal(Intrinsics.from_fov(640, 480, 60.0).K, K)
    np.testing.assert_array_equal(detect.intrinsics_from_fov(640, 480, 60.0), K)
    assert (K[0, 2], K[1, 2]) == (319.5, 239.5)
    uv = np.array([[319.5, 239.5], [500.0, 100.0]])
    np.testing.assert_allclose(camera.denormalize(camera.normalize(uv, K), K), uv)
    resized = Intrinsics.from_fov(640, 480, 60.0).scaled_to(320, 240)
    np.testing.assert_allclose(resized.K[0], K[0] / 2)
