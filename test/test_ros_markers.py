"""Uncertainty ellipsoids: oriented and scaled from the covariance; stable ids and deletion."""
import numpy as np
import pytest

pytest.importorskip("visualization_msgs")
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from diffpose_ros.ros.markers import CHI2_3DOF_90, ellipsoid, markers_msg, rotation_to_quaternion  # noqa: E402


def quat_to_matrix(q):
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_ellipsoid_reconstructs_covariance():
    rng = np.random.default_rng(1)
    for _ in range(50):
        a = rng.normal(size=(3, 3))
        cov = a @ a.T * 0.01 + 1e-4 * np.eye(3)
        diam, q = ellipsoid(cov)
        R = quat_to_matrix(q)
        radii = diam / 2
        back = R @ np.diag(radii ** 2 / CHI2_3DOF_90) @ R.T
        np.testing.assert_allclose(back, cov, rtol=1e-6, atol=1e-10)


def test_quaternion_of_rotations():
    rng = np.random.default_rng(2)
    for _ in range(50):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        q *= np.sign(np.linalg.det(q))
        np.testing.assert_allclose(quat_to_matrix(rotation_to_quaternion(q)), q, atol=1e-9)


def test_marker_ids_stable_and_people_deleted():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from ros_peer import two_people
    people = two_people()
    arr = markers_msg(people, removed_ids=[42], header=Header(frame_id="cam"))
    deletes = [m for m in arr.markers if m.action == Marker.DELETE]
    assert {m.ns for m in deletes} == {"person_42"} and len(deletes) == 19
    adds = [m for m in arr.markers if m.action == Marker.ADD]
    assert {m.ns for m in adds} == {"person_3", "person_11"}
    ids = sorted(m.id for m in adds if m.ns == "person_3")
    assert ids == sorted(markers_msg(people, [], Header()).markers[i].id for i in range(19))
    assert all(m.header.frame_id == "cam" for m in arr.markers)
