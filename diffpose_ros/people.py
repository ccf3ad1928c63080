"""What the pipeline knows about one person in one image (ROS-free), and the numerical guards
applied before anything is published: finite values and symmetric positive semi-definite
covariances."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .skeleton import NUM_JOINTS


class InvalidPoseError(ValueError):
    """A pose that must not be published (non-finite values, a covariance that is not PSD)."""


@dataclass
class FilteredState:
    """The per-track filter's estimate of one person at one stamp (diffpose_ros/filter)."""
    root: np.ndarray                 # (3,) filtered root (pelvis), camera frame, m
    velocity: np.ndarray             # (3,) root velocity, m/s
    covariance: np.ndarray           # (6, 6) of (root, velocity): m^2, m^2/s, m^2/s^2
    positions: np.ndarray            # (17, 3) filtered joints (filtered root + root-relative)
    joint_covariance: np.ndarray     # (17, 3, 3) m^2, root uncertainty included
    time_since_measurement: float    # s since the last measurement the filter accepted
    is_prediction: bool              # no measurement fused at this stamp (missed or gated)
    ahead_s: float                   # horizon of the prediction below, s
    ahead_root: np.ndarray           # (3,) root predicted ahead_s later
    ahead_covariance: np.ndarray     # (3, 3) its covariance (motion model included)


@dataclass
class Person3D:
    track_id: int
    score: float
    positions: np.ndarray          # (17, 3) metres, camera optical frame
    covariance: np.ndarray         # (17, 3, 3) m^2, incl. root placement uncertainty
    root: np.ndarray               # (3,) pelvis in the camera frame
    root_covariance: np.ndarray    # (3, 3)
    keypoints_2d: np.ndarray       # (17, 2) pixels of the source image
    keypoint_conf: np.ndarray      # (17,)
    num_hypotheses: int
    diffusion_steps: int
    reliable: bool = True
    box: np.ndarray = field(default_factory=lambda: np.zeros(4))   # xyxy pixels
    positions_rel: np.ndarray | None = None                         # (17, 3) root-relative
    hypotheses: np.ndarray | None = None                            # (N, 17, 3) root-relative
    covariance_rel: np.ndarray | None = None                        # (17, 3, 3) root-relative
    filtered: FilteredState | None = None                           # the per-track filter's state
    size_var: float = 0.0          # var of the relative body-size error (lifter.LiftResult.size_var)


def repair_covariance(cov: np.ndarray, tol: float = 1e-6, floor: float = 1e-8) -> np.ndarray:
    """Symmetrise (..., 3, 3) covariances and clip tiny negative eigenvalues to ``floor``.

    Sampling noise and float32 arithmetic leave eigenvalues like -1e-9; those are repaired.
    A clearly negative eigenvalue (below -tol relative to the largest) means the matrix is wrong,
    not noisy, and raises InvalidPoseError instead of being hidden.
    """
    cov = np.asarray(cov, dtype=np.float64)
    if not np.all(np.isfinite(cov)):
        raise InvalidPoseError("covariance has non-finite values")
    sym = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    w, v = np.linalg.eigh(sym)
    scale = np.maximum(np.abs(w).max(axis=-1, keepdims=True), floor)
    if np.any(w < -tol * scale):
        raise InvalidPoseError(f"covariance is not positive semi-definite (min eigenvalue {w.min():.3g})")
    w = np.maximum(w, floor)
    return (v * w[..., None, :]) @ np.swapaxes(v, -1, -2)


def _check_arrays(obj, shapes: dict, prefix: str = ""):
    """Raise InvalidPoseError unless every named attribute has its shape and finite values."""
    for name, shape in shapes.items():
        value = np.asarray(getattr(obj, name))
        if value.shape != shape:
            raise InvalidPoseError(f"{prefix}{name} has shape {value.shape}, expected {shape}")
        if not np.all(np.isfinite(value)):
            raise InvalidPoseError(f"{prefix}{name} has non-finite values")


def check_person(person: Person3D) -> Person3D:
    """Validate shapes and values; returns the person with repaired covariances."""
    shapes = {"positions": (NUM_JOINTS, 3), "covariance": (NUM_JOINTS, 3, 3), "root": (3,),
              "root_covariance": (3, 3), "keypoints_2d": (NUM_JOINTS, 2), "keypoint_conf": (NUM_JOINTS,)}
    _check_arrays(person, shapes)
    person.covariance = repair_covariance(person.covariance)
    person.root_covariance = repair_covariance(person.root_covariance)
    if person.filtered is not None:
        check_state(person.filtered)
    return person


def check_state(state: FilteredState) -> FilteredState:
    """Validate a filter state like check_person; returns it with repaired covariances."""
    shapes = {"root": (3,), "velocity": (3,), "covariance": (6, 6), "positions": (NUM_JOINTS, 3),
              "joint_covariance": (NUM_JOINTS, 3, 3), "ahead_root": (3,), "ahead_covariance": (3, 3)}
    _check_arrays(state, shapes, prefix="filtered.")
    if not (np.isfinite(state.time_since_measurement) and state.time_since_measurement >= 0):
        raise InvalidPoseError(f"filtered.time_since_measurement is {state.time_since_measurement}")
    state.covariance = repair_covariance(state.covariance)
    state.joint_covariance = repair_covariance(state.joint_covariance)
    state.ahead_covariance = repair_covariance(state.ahead_covariance)
    return state
