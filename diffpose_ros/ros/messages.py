"""Person3D <-> diffpose_ros/msg conversions."""
from __future__ import annotations

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
    msg = HumanPose3D()
    msg.header = header
    msg.track_id = int(person.track_id)
    msg.score = float(person.score)
    msg.reliable = bool(person.reliable)
    msg.joint_names = list(H36M_JOINTS)
    msg.positions = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in person.positions]
    msg.covariance = np.asarray(person.covariance, dtype=np.float64).reshape(-1).tolist()
    msg.root = Point(x=float(person.root[0]), y=float(person.root[1]), z=float(person.root[2]))
    msg.root_covariance = np.asarray(person.root_covariance, dtype=np.float64).reshape(9)
    msg.keypoints_2d = np.asarray(person.keypoints_2d, dtype=np.float32).reshape(-1).tolist()
    msg.keypoint_confidence = np.asarray(person.keypoint_conf, dtype=np.float32).tolist()
    msg.num_hypotheses = int(person.num_hypotheses)
    msg.diffusion_steps = int(person.diffusion_steps)
    msg.size_from_floor = bool(person.size_from_floor)
    state = person.filtered
    if state is not None:
        msg.has_state = True
        msg.is_prediction = bool(state.is_prediction)
        msg.time_since_measurement = float(state.time_since_measurement)
        msg.filtered_root = _point(state.root)
        msg.velocity = Vector3(x=float(state.velocity[0]), y=float(state.velocity[1]), z=float(state.velocity[2]))
        msg.state_covariance = np.asarray(state.covariance, dtype=np.float64).reshape(36)
        msg.filtered_positions = [_point(p) for p in state.positions]
        msg.filtered_covariance = np.asarray(state.joint_covariance, dtype=np.float64).reshape(-1).tolist()
        msg.prediction_horizon = float(state.ahead_s)
        msg.predicted_root = _point(state.ahead_root)
        msg.predicted_root_covariance = np.asarray(state.ahead_covariance, dtype=np.float64).reshape(9)
    return msg


def _point(p) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def _xyz(p) -> np.ndarray:
    return np.array([p.x, p.y, p.z])


def people_to_msg(people: list[Person3D], header, latency_s: float, check: bool = True) -> HumanPose3DArray:
    msg = HumanPose3DArray()
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
