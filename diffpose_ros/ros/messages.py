"""Person3D <-> diffpose_ros/msg conversions."""
from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Vector3

from diffpose_ros.msg import HumanPose3D, HumanPose3DArray
from diffpose_ros.people import FilteredState, Person3D, check_person
from diffpose_ros.skeleton import H36M_JOINTS


def person_to_msg(person: Person3D, header, check: bool = True) -> HumanPose3D:
    """check=False for people that passed check_person already (PosePipeline's FrameResult)."""
    if check:
        person = check_person(person)
    msg = HumanPose3D(**_UNCHECKED)
    msg.header = header
    msg.track_id = int(person.track_id)
    msg.score = float(person.score)
    msg.reliable = bool(person.reliable)
    msg.joint_names = list(H36M_JOINTS)
    msg.positions = _points(person.positions)
    msg.covariance = _sequence(person.covariance, "d")
    msg.root = _point(person.root)
    msg.root_covariance = np.asarray(person.root_covariance, dtype=np.float64).reshape(9)
    msg.keypoints_2d = _sequence(person.keypoints_2d, "f")
    msg.keypoint_confidence = _sequence(person.keypoint_conf, "f")
    msg.num_hypotheses = int(person.num_hypotheses)
    msg.diffusion_steps = int(person.diffusion_steps)
    msg.size_from_floor = bool(person.size_from_floor)
    state = person.filtered
    if state is not None:
        msg.has_state = True
        msg.is_prediction = bool(state.is_prediction)
        msg.time_since_measurement = float(state.time_since_measurement)
        msg.filtered_root = _point(state.root)
        msg.velocity = _point(state.velocity, Vector3)
        msg.state_covariance = np.asarray(state.covariance, dtype=np.float64).reshape(36)
        msg.filtered_positions = _points(state.positions)
        msg.filtered_covariance = _sequence(state.joint_covariance, "d")
        msg.prediction_horizon = float(state.ahead_s)
        msg.predicted_root = _point(state.ahead_root)
        msg.predicted_root_covariance = np.asarray(state.ahead_covariance, dtype=np.float64).reshape(9)
    return msg


# Since Jazzy, generated messages take check_fields=False: no type assertion on each field for
# values built here from float arrays (Humble's constructor refuses the keyword; its slots tell)
_UNCHECKED = {"check_fields": False} if "_check_fields" in Point.__slots__ else {}


def _point(p, cls=Point):
    """A Point (or another x, y, z message: Vector3) of a 3-vector."""
    x, y, z = np.asarray(p, dtype=np.float64).tolist()
    return cls(x=x, y=y, z=z, **_UNCHECKED)


def _points(xyz) -> list[Point]:
    """Point messages of an (n, 3) array: one tolist() gives the Python floats."""
    return [Point(x=x, y=y, z=z, **_UNCHECKED) for x, y, z in np.asarray(xyz, dtype=np.float64).reshape(-1, 3).tolist()]


def _sequence(values, typecode: str) -> array.array:
    """A float64 ('d') or float32 ('f') sequence field as the array.array its setter stores as is
    (a list is checked element by element: ~50 us for a 17-joint covariance)."""
    dtype = np.float64 if typecode == "d" else np.float32
    return array.array(typecode, np.ascontiguousarray(values, dtype=dtype).tobytes())


def _xyz(p) -> np.ndarray:
    return np.array([p.x, p.y, p.z])


def people_to_msg(people: list[Person3D], header, latency_s: float, check: bool = True) -> HumanPose3DArray:
    msg = HumanPose3DArray(**_UNCHECKED)
    msg.header = header
    msg.people = [person_to_msg(p, header, check) for p in people]
    ns = max(int(round(latency_s * 1e9)), 0)
    msg.processing_latency = Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return msg


def msg_to_person(msg: HumanPose3D) -> Person3D:
    """Inverse of person_to_msg (for subscribers, tests and the bag renderer)."""
    n = len(msg.positions)
    state = None
    if msg.has_state:
        m = len(msg.filtered_positions)
        state = FilteredState(
            root=_xyz(msg.filtered_root), velocity=_xyz(msg.velocity),
            covariance=np.asarray(msg.state_covariance, dtype=np.float64).reshape(6, 6),
            positions=np.array([_xyz(p) for p in msg.filtered_positions]).reshape(m, 3),
            joint_covariance=np.asarray(msg.filtered_covariance, dtype=np.float64).reshape(m, 3, 3),
            time_since_measurement=msg.time_since_measurement, is_prediction=msg.is_prediction,
            ahead_s=msg.prediction_horizon, ahead_root=_xyz(msg.predicted_root),
            ahead_covariance=np.asarray(msg.predicted_root_covariance, dtype=np.float64).reshape(3, 3))
    return Person3D(
        track_id=msg.track_id, score=msg.score, reliable=msg.reliable,
        positions=np.array([[p.x, p.y, p.z] for p in msg.positions]).reshape(n, 3),
        covariance=np.asarray(msg.covariance, dtype=np.float64).reshape(n, 3, 3),
        root=np.array([msg.root.x, msg.root.y, msg.root.z]),
        root_covariance=np.asarray(msg.root_covariance, dtype=np.float64).reshape(3, 3),
        keypoints_2d=np.asarray(msg.keypoints_2d, dtype=np.float32).reshape(n, 2),
        keypoint_conf=np.asarray(msg.keypoint_confidence, dtype=np.float32),
        num_hypotheses=msg.num_hypotheses, diffusion_steps=msg.diffusion_steps, filtered=state,
        size_from_floor=msg.size_from_floor)
