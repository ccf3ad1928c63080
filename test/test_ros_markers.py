"""Uncertainty ellipsoids: oriented and scaled from the covariance; stable ids and deletion."""
import numpy as np
import pytest

pytest.importorskip("visualization_msgs")
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from diffpose_ros.ros.markers import CHI2_3DOF_90, ellipsoids, markers_msg, rotation_to_quaternion  # noqa: E402


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
        (diam,), (q,) = ellipsoids(cov)
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
    assert {m.ns for m in deletes} == {"person_42"} and len(deletes) == 21   # incl. velocity + look-ahead
    adds = [m for m in arr.markers if m.action == Marker.ADD]
    assert {m.ns for m in adds} == {"person_3", "person_11"}
    ids = sorted(m.id for m in adds if m.ns == "person_3")
    assert ids == sorted(markers_msg(people, [], Header()).markers[i].id for i in range(19))
    assert all(m.header.frame_id == "cam" for m in arr.markers)


def filtered_person():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from ros_peer import two_people
    from diffpose_ros.people import FilteredState
    p = two_people()[0]
    ahead_cov = np.array([[0.3, 0.05, 0.0], [0.05, 0.1, 0.0], [0.0, 0.0, 0.6]])
    p.filtered = FilteredState(root=np.array([0.5, -0.2, 3.0]), velocity=np.array([1.0, 0.0, -0.5]),
                               covariance=np.eye(6) * 0.02, positions=p.positions, joint_covariance=p.covariance,
                               time_since_measurement=0.2, is_prediction=True, ahead_s=1.0,
                               ahead_root=np.array([1.5, -0.2, 2.5]), ahead_covariance=ahead_cov)
    return p


def test_velocity_arrow_and_look_ahead_ellipsoid():
    from diffpose_ros.ros.markers import ARROW_S, ID_AHEAD, ID_VELOCITY
    p = filtered_person()
    arr = markers_msg([p], [], Header(frame_id="cam"))
    by_id = {m.id: m for m in arr.markers}
    arrow, ahead = by_id[ID_VELOCITY], by_id[ID_AHEAD]
    assert arrow.type == Marker.ARROW and ahead.type == Marker.SPHERE
    start, end = ([q.x, q.y, q.z] for q in arrow.points)
    np.testing.assert_allclose(start, p.filtered.root)
    np.testing.assert_allclose(end, p.filtered.root + ARROW_S * p.filtered.velocity)
    np.testing.assert_allclose([ahead.pose.position.x, ahead.pose.position.y, ahead.pose.position.z],
                               p.filtered.ahead_root)
    # the sphere is the 90 % ellipsoid of the look-ahead covariance
    q = [ahead.pose.orientation.x, ahead.pose.orientation.y, ahead.pose.orientation.z, ahead.pose.orientation.w]
    radii = np.array([ahead.scale.x, ahead.scale.y, ahead.scale.z]) / 2
    back = quat_to_matrix(q) @ np.diag(radii ** 2 / CHI2_3DOF_90) @ quat_to_matrix(q).T
    np.testing.assert_allclose(back, p.filtered.ahead_covariance, atol=1e-9)
    assert arrow.color.a < 1.0                  # a prediction is drawn dimmer
    # without a filter state: no such markers
    p.filtered = None
    assert not {ID_VELOCITY, ID_AHEAD} & {m.id for m in markers_msg([p], [], Header()).markers}


def test_cache_reuses_markers_and_matches_a_fresh_build():
    """MarkerCache updates the markers it built for a track; what it publishes equals a build
    from nothing, frame after frame, as people move, change and leave."""
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import MarkerArray
    from diffpose_ros.ros.markers import MarkerCache
    cache = MarkerCache()
    people = [filtered_person(), filtered_person()]
    people[1].track_id = 12
    first = cache.build(people, [], Header(frame_id="cam"))
    reused = {id(m) for m in first.markers}
    rng = np.random.default_rng(5)
    for k in range(3):
        for p in people:
            p.positions = p.positions + rng.normal(0, 0.05, (17, 3))
            p.keypoint_conf = rng.uniform(0, 1, 17)
            p.filtered.is_prediction = bool(k % 2)
        people[1].filtered = None if k == 2 else people[1].filtered
        header = Header(frame_id="cam")
        header.stamp.sec = k
        arr = cache.build(people, [], header)
        fresh = markers_msg(people, [], header)
        as_sent = lambda a: deserialize_message(serialize_message(a), MarkerArray).markers  # noqa: E731
        assert as_sent(arr) == as_sent(fresh)
        assert {id(m) for m in arr.markers} <= reused         # no marker built again
    arr = cache.build(people[:1], [12], Header())               # track 12 left
    assert {m.ns for m in arr.markers if m.action == Marker.DELETE} == {"person_12"}
    assert set(cache._tracks) == {people[0].track_id}


def test_each_ellipsoid_is_its_own_joints_and_a_zero_one_stays_visible():
    """The ellipsoids of a frame are computed in one batch for all people: each marker must
    still be its own joint's 90 % ellipsoid, at its joint, and a zero covariance gets the
    smallest scale RViz draws instead of nothing."""
    from diffpose_ros.ros.markers import ELLIPSOID_IDS, MIN_DIAMETER
    people = [filtered_person(), filtered_person()]
    people[1].track_id = 12
    people[1].filtered = None
    people[0].covariance = people[0].covariance.copy()
    people[0].covariance[4] = 0.0
    arr = markers_msg(people, [], Header(frame_id="cam"))
    for person in people:
        by_id = {m.id: m for m in arr.markers if m.ns == f"person_{person.track_id}"}
        for j, mid in enumerate(ELLIPSOID_IDS):
            m = by_id[mid]
            np.testing.assert_allclose([m.pose.position.x, m.pose.position.y, m.pose.position.z],
                                       person.positions[j])
            (diam,), (q,) = ellipsoids(person.covariance[j])
            np.testing.assert_allclose([m.scale.x, m.scale.y, m.scale.z], np.maximum(diam, MIN_DIAMETER))
            np.testing.assert_allclose([m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z,
                                        m.pose.orientation.w], q)
    zero = {m.id: m for m in arr.markers if m.ns == f"person_{people[0].track_id}"}[ELLIPSOID_IDS[4]]
    assert zero.scale.x == zero.scale.y == zero.scale.z == MIN_DIAMETER
