"""People in 3D -> visualization_msgs/MarkerArray: joints, bones and uncertainty ellipsoids, and
from the per-track filter a velocity arrow (where the person goes in one second) and the root
predicted `prediction_horizon` ahead with its 90 % ellipsoid.

Marker namespaces are per track ("person_<id>") and ids are fixed per joint, so RViz updates the
same markers frame after frame; people who left are deleted explicitly (and every marker has a
short lifetime, so nothing lingers if the node stops).

The node keeps one `MarkerCache`: a track's markers are built once and then only their numbers
change, because building an rclpy Marker costs ~11 us and setting its fields ~1 us (three
people are 63 markers a frame).
"""
from __future__ import annotations

import numpy as np
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
MIN_DIAMETER = 1e-3                  # m: RViz draws nothing for a zero scale


def ellipsoids(covs: np.ndarray, chi2: float = CHI2_3DOF_90):
    """(n, 3, 3) covariances -> (diameters (n, 3), quaternions xyzw (n, 4)) of their chi2-level
    ellipsoids, in one batched eigendecomposition (a person has 17)."""
    covs = np.asarray(covs, dtype=np.float64).reshape(-1, 3, 3)
    w, v = np.linalg.eigh(0.5 * (covs + np.swapaxes(covs, 1, 2)))
    w = np.clip(w, 0.0, None)
    v[np.linalg.det(v) < 0, :, 0] *= -1.0          # rotations, not reflections
    return 2.0 * np.sqrt(chi2 * w), rotations_to_quaternions(v)


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


def confidence_colors(conf) -> np.ndarray:
    """(n,) confidences -> (n, 3) rgb: red (0) -> yellow -> green (1)."""
    c = np.clip(np.asarray(conf, dtype=np.float64), 0.0, 1.0)
    return np.stack([np.minimum(1.0, 2.0 * (1.0 - c)), np.minimum(1.0, 2.0 * c), np.full_like(c, 0.1)], 1)


def _set_xyz(obj, xyz):
    obj.x, obj.y, obj.z = xyz


def _set_rgba(color, rgb, alpha: float):
    color.r, color.g, color.b = rgb
    color.a = alpha


def _set_ellipsoid(m: Marker, centre, diam, q):
    _set_xyz(m.pose.position, centre)
    o = m.pose.orientation
    o.x, o.y, o.z, o.w = q
    _set_xyz(m.scale, diam)


class _FrameNumbers:
    """Every number a frame's markers need, computed for all its people at once and turned into
    Python floats before the per-field loops: one eigendecomposition for all the ellipsoids of the
    frame (17 a person plus the look-ahead ones) instead of two per person, and no numpy scalar
    behind any field (converting each one costs more than setting the field)."""

    def __init__(self, people: list[Person3D]):
        filtered = [i for i, p in enumerate(people) if p.filtered is not None]
        ahead = [people[i].filtered.ahead_covariance for i in filtered]
        covs = np.concatenate([np.asarray(p.covariance, dtype=np.float64).reshape(-1, 3, 3) for p in people]
                              + [np.asarray(ahead, dtype=np.float64).reshape(-1, 3, 3)])
        diams, quats = ellipsoids(covs)
        diams = np.maximum(diams, MIN_DIAMETER).tolist()
        quats = quats.tolist()
        n = NUM_JOINTS * len(people)
        self.diams, self.quats = diams[:n], quats[:n]
        self.ahead = dict(zip(filtered, zip(diams[n:], quats[n:])))   # person index -> (diameters, quaternion)
        self.positions = np.concatenate([np.asarray(p.positions, dtype=np.float64) for p in people]).tolist()
        self.colors = confidence_colors(np.concatenate([p.keypoint_conf for p in people])).tolist()

    def person(self, i: int) -> slice:
        return slice(NUM_JOINTS * i, NUM_JOINTS * (i + 1))


class _TrackMarkers:
    """The markers of one track, built once."""

    def __init__(self, track_id: int):
        ns = f"person_{track_id}"
        self.points = [Point() for _ in range(NUM_JOINTS)]
        self.bones = _marker(ns, ID_BONES, Marker.LINE_LIST)
        self.bones.scale.x = 0.02
        self.bones.points = [self.points[j] for bone in H36M_BONES for j in bone]
        self.joints = _marker(ns, ID_JOINTS, Marker.SPHERE_LIST)
        self.joints.scale.x = self.joints.scale.y = self.joints.scale.z = 0.05
        self.joints.points = self.points
        self.joints.colors = [ColorRGBA() for _ in range(NUM_JOINTS)]
        self.ellipsoids = [_marker(ns, mid, Marker.SPHERE) for mid in ELLIPSOID_IDS]
        self.arrow = _marker(ns, ID_VELOCITY, Marker.ARROW)
        self.arrow.points = [Point(), Point()]
        self.arrow.scale.x, self.arrow.scale.y, self.arrow.scale.z = 0.04, 0.08, 0.1   # shaft, head diameter, head length
        self.ahead = _marker(ns, ID_AHEAD, Marker.SPHERE)

    def update(self, person: Person3D, numbers: _FrameNumbers, i: int, header, lifetime_s: float) -> list[Marker]:
        """Person `person`, the i-th of `numbers`."""
        part = numbers.person(i)
        positions, rgb = numbers.positions[part], numbers.colors[part]
        for pt, xyz in zip(self.points, positions):
            _set_xyz(pt, xyz)
        _set_rgba(self.bones.color, (0.2, 0.6, 1.0), 1.0 if person.reliable else 0.4)
        for color, c in zip(self.joints.colors, rgb):
            _set_rgba(color, c, 1.0)
        out = [self.bones, self.joints]
        for e, centre, diam, q, c in zip(self.ellipsoids, positions, numbers.diams[part], numbers.quats[part], rgb):
            _set_ellipsoid(e, centre, diam, q)
            _set_rgba(e.color, c, 0.25)
        out += self.ellipsoids
        s = person.filtered
        if s is not None:
            # velocity arrow from the filtered root (length = ARROW_S seconds of motion) and the
            # root predicted ahead_s later as its 90 % ellipsoid; dimmer while only predicted
            alpha = 0.5 if s.is_prediction else 1.0
            start = np.asarray(s.root, dtype=np.float64)
            _set_xyz(self.arrow.points[0], start.tolist())
            _set_xyz(self.arrow.points[1], (start + ARROW_S * np.asarray(s.velocity, dtype=np.float64)).tolist())
            _set_rgba(self.arrow.color, (1.0, 0.5, 0.0), alpha)
            _set_ellipsoid(self.ahead, np.asarray(s.ahead_root, dtype=np.float64).tolist(), *numbers.ahead[i])
            _set_rgba(self.ahead.color, (1.0, 0.5, 0.0), 0.2 * alpha)
            out += [self.arrow, self.ahead]
        sec = int(lifetime_s)
        nanosec = int((lifetime_s - sec) * 1e9)
        for m in out:
            m.header = header
            m.lifetime.sec, m.lifetime.nanosec = sec, nanosec
        return out


def _marker(ns: str, mid: int, mtype: int) -> Marker:
    m = Marker()
    m.ns, m.id, m.type, m.action = ns, mid, mtype, Marker.ADD
    m.pose.orientation.w = 1.0
    return m


def delete_markers(track_id: int, header) -> list[Marker]:
    out = []
    for mid in (ID_BONES, ID_JOINTS, *ELLIPSOID_IDS, ID_VELOCITY, ID_AHEAD):
        m = Marker()
        m.header, m.ns, m.id, m.action = header, f"person_{track_id}", mid, Marker.DELETE
        out.append(m)
    return out


class MarkerCache:
    """Builds each frame's MarkerArray from the markers of the tracks in the previous one.
    The array returned is valid until the next build (its markers are reused): publish it
    before building the next."""

    def __init__(self):
        self._tracks: dict[int, _TrackMarkers] = {}

    def build(self, people: list[Person3D], removed_ids, header, lifetime_s: float = 0.5) -> MarkerArray:
        markers = [m for tid in removed_ids for m in delete_markers(tid, header)]
        tracks = {}
        numbers = _FrameNumbers(people) if people else None
        for i, person in enumerate(people):
            tid = int(person.track_id)
            tracks[tid] = self._tracks.get(tid) or _TrackMarkers(tid)
            markers += tracks[tid].update(person, numbers, i, header, lifetime_s)
        self._tracks = tracks        # only the tracks of this frame: bounded by max_people
        return MarkerArray(markers=markers)


def markers_msg(people: list[Person3D], removed_ids, header, lifetime_s: float = 0.5) -> MarkerArray:
    """One frame's markers, built from nothing (MarkerCache for a stream of frames)."""
    return MarkerCache().build(people, removed_ids, header, lifetime_s)
