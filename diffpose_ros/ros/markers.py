"""People in 3D -> visualization_msgs/MarkerArray: joints, bones and uncertainty ellipsoids, and
from the per-track filter a velocity arrow (where the person goes in one second) and the root
predicted `prediction_horizon` ahead with its 90 % ellipsoid.

Marker namespaces are per track ("person_<id>") and ids are fixed per joint, so RViz updates the
same markers frame after frame; people who left are deleted explicitly (and every marker has a
short lifetime, so nothing lingers if the node stops).
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from diffpose_ros.people import Person3D
from diffpose_ros.render import CHI2_3DOF_90   # ellipsoids drawn at the 90 % level
from diffpose_ros.skeleton import H36M_BONES, NUM_JOINTS

ID_BONES, ID_JOINTS, ID_ELLIPSOID0 = 0, 1, 10
ELLIPSOID_IDS = range(ID_ELLIPSOID0, ID_ELLIPSOID0 + NUM_JOINTS)
ID_VELOCITY, ID_AHEAD = 40, 41       # the filter's velocity arrow and look-ahead ellipsoid
ARROW_S = 1.0                        # the arrow shows the displacement over this time


def ellipsoids(covs: np.ndarray, chi2: float = CHI2_3DOF_90):
    """(n, 3, 3) covariances -> (diameters (n, 3), quaternions xyzw (n, 4)) of their chi2-level
    ellipsoids, in one batched eigendecomposition (a person has 17)."""
    covs = np.asarray(covs, dtype=np.float64).reshape(-1, 3, 3)
    w, v = np.linalg.eigh(0.5 * (covs + np.swapaxes(covs, 1, 2)))
    w = np.clip(w, 0.0, None)
    v[np.linalg.det(v) < 0, :, 0] *= -1.0          # rotations, not reflections
    return 2.0 * np.sqrt(chi2 * w), rotations_to_quaternions(v)


def ellipsoid(cov: np.ndarray, chi2: float = CHI2_3DOF_90):
    """3x3 covariance -> (diameters (3,), quaternion xyzw) of its chi2-level ellipsoid."""
    diam, q = ellipsoids(cov, chi2)
    return diam[0], q[0]


def rotations_to_quaternions(R: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotation matrices -> unit quaternions (n, 4) xyzw, numerically safe for all
    rotations: each from the largest of 1 + trace and the three 1 + 2 R_ii - trace (Shepperd)."""
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    d = np.stack([R[:, 0, 0], R[:, 1, 1], R[:, 2, 2]], 1)
    t = d.sum(1)
    cand = np.stack([1.0 + t, 1.0 + 2 * d[:, 0] - t, 1.0 + 2 * d[:, 1] - t, 1.0 + 2 * d[:, 2] - t], 1)
    k = np.argmax(cand, 1)
    s = 2.0 * np.sqrt(np.maximum(cand[np.arange(len(R)), k], 1e-300))   # 4 |q_k|
    a = R[:, 2, 1] - R[:, 1, 2]
    b = R[:, 0, 2] - R[:, 2, 0]
    c = R[:, 1, 0] - R[:, 0, 1]
    xy, xz, yz = R[:, 0, 1] + R[:, 1, 0], R[:, 0, 2] + R[:, 2, 0], R[:, 1, 2] + R[:, 2, 1]
    q = np.select([k[:, None] == 0, k[:, None] == 1, k[:, None] == 2],
                  [np.stack([a, b, c, 0.25 * s * s], 1), np.stack([0.25 * s * s, xy, xz, a], 1),
                   np.stack([xy, 0.25 * s * s, yz, b], 1)],
                  np.stack([xz, yz, 0.25 * s * s, c], 1)) / s[:, None]
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w)."""
    return rotations_to_quaternions(R)[0]


def confidence_color(conf: float, alpha: float = 1.0) -> ColorRGBA:
    """Red (0) -> yellow -> green (1)."""
    c = float(np.clip(conf, 0.0, 1.0))
    return ColorRGBA(r=min(1.0, 2.0 * (1.0 - c)), g=min(1.0, 2.0 * c), b=0.1, a=alpha)


def _marker(header, ns, mid, mtype, lifetime_s):
    m = Marker()
    m.header = header
    m.ns, m.id, m.type, m.action = ns, mid, mtype, Marker.ADD
    m.pose.orientation.w = 1.0
    sec = int(lifetime_s)
    m.lifetime = Duration(sec=sec, nanosec=int((lifetime_s - sec) * 1e9))
    return m


def person_markers(person: Person3D, header, lifetime_s: float = 0.5) -> list[Marker]:
    ns = f"person_{person.track_id}"
    pts = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in person.positions]
    bones = _marker(header, ns, ID_BONES, Marker.LINE_LIST, lifetime_s)
    bones.scale.x = 0.02
    bones.color = ColorRGBA(r=0.2, g=0.6, b=1.0, a=1.0 if person.reliable else 0.4)
    for p, c in H36M_BONES:
        bones.points += [pts[p], pts[c]]
    joints = _marker(header, ns, ID_JOINTS, Marker.SPHERE_LIST, lifetime_s)
    joints.scale.x = joints.scale.y = joints.scale.z = 0.05
    joints.points = pts
    joints.colors = [confidence_color(c) for c in person.keypoint_conf]
    out = [bones, joints]
    diams, quats = ellipsoids(person.covariance)
    for j, (diam, q) in enumerate(zip(diams, quats)):
        e = _marker(header, ns, ID_ELLIPSOID0 + j, Marker.SPHERE, lifetime_s)
        e.pose.position = pts[j]
        e.pose.orientation.x, e.pose.orientation.y, e.pose.orientation.z, e.pose.orientation.w = map(float, q)
        e.scale.x, e.scale.y, e.scale.z = (float(max(d, 1e-3)) for d in diam)
        e.color = confidence_color(person.keypoint_conf[j], alpha=0.25)
        out.append(e)
    if person.filtered is not None:
        out += state_markers(person, header, ns, lifetime_s)
    return out


def state_markers(person: Person3D, header, ns: str, lifetime_s: float) -> list[Marker]:
    """Velocity arrow from the filtered root (length = ARROW_S seconds of motion) and the
    predicted root ahead_s later as its 90 % ellipsoid; dimmer while only predicted."""
    s = person.filtered
    alpha = 0.5 if s.is_prediction else 1.0
    start = np.asarray(s.root, dtype=np.float64)
    arrow = _marker(header, ns, ID_VELOCITY, Marker.ARROW, lifetime_s)
    arrow.points = [Point(x=float(a), y=float(b), z=float(c)) for a, b, c in
                    (start, start + ARROW_S * np.asarray(s.velocity, dtype=np.float64))]
    arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.04, 0.08, 0.1     # shaft, head diameter, head length
    arrow.color = ColorRGBA(r=1.0, g=0.5, b=0.0, a=alpha)
    ahead = _marker(header, ns, ID_AHEAD, Marker.SPHERE, lifetime_s)
    diam, q = ellipsoid(np.asarray(s.ahead_covariance))
    ahead.pose.position = Point(x=float(s.ahead_root[0]), y=float(s.ahead_root[1]), z=float(s.ahead_root[2]))
    ahead.pose.orientation.x, ahead.pose.orientation.y, ahead.pose.orientation.z, ahead.pose.orientation.w = map(float, q)
    ahead.scale.x, ahead.scale.y, ahead.scale.z = (float(max(d, 1e-3)) for d in diam)
    ahead.color = ColorRGBA(r=1.0, g=0.5, b=0.0, a=0.2 * alpha)
    return [arrow, ahead]


def delete_markers(track_id: int, header) -> list[Marker]:
    out = []
    for mid in (ID_BONES, ID_JOINTS, *ELLIPSOID_IDS, ID_VELOCITY, ID_AHEAD):
        m = Marker()
        m.header, m.ns, m.id, m.action = header, f"person_{track_id}", mid, Marker.DELETE
        out.append(m)
    return out


def markers_msg(people: list[Person3D], removed_ids, header, lifetime_s: float = 0.5) -> MarkerArray:
    arr = MarkerArray()
    for tid in removed_ids:
        arr.markers += delete_markers(tid, header)
    for person in people:
        arr.markers += person_markers(person, header, lifetime_s)
    return arr
