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
    size_var_track: float = 0.0    # its part that is the same in every frame (LiftResult.size_var_track)
    size_from_floor: bool = False  # the size came from the feet on the floor (lifter/ground.py)


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
    try:    # the common case, 8x cheaper than eigh: every eigenvalue above the floor, nothing to clip
        np.linalg.cholesky(sym - floor * np.eye(sym.shape[-1]))
        return sym
    except np.linalg.LinAlgError:
        pass
    w, v = np.linalg.eigh(sym)
    scale = np.maximum(np.abs(w).max(axis=-1, keepdims=True), floor)
    if np.any(w < -tol * scale):
        raise InvalidPoseError(f"covariance is not positive semi-definite (min eigenvalue {w.min():.3g})")
    w = np.maximum(w, floor)
    return (v * w[..., None, :]) @ np.swapaxes(v, -1, -2)


def _repair_together(*covs: np.ndarray) -> list[np.ndarray]:
    """repair_covariance of several (..., n, n) arrays (one n) in one batched eigendecomposition."""
    arrays = [np.asarray(c, dtype=np.float64) for c in covs]
    n = arrays[0].shape[-1]
    repaired = repair_covariance(np.concatenate([a.reshape(-1, n, n) for a in arrays]))
    ends = np.cumsum([a.size // (n * n) for a in arrays])[:-1]
    return [r.reshape(a.shape) for r, a in zip(np.split(repaired, ends), arrays)]


def _check_arrays(obj, shapes: dict, prefix: str = ""):
    """Raise InvalidPoseError unless every named attribute has its shape and finite values."""
    values = []
    for name, shape in shapes.items():
        value = np.asarray(getattr(obj, name))
        if value.shape != shape:
            raise InvalidPoseError(f"{prefix}{name} has shape {value.shape}, expected {shape}")
        values.append(value.reshape(-1))
    if not np.isfinite(np.concatenate(values)).all():       # one test for all; then find which
        bad = next(n for n, v in zip(shapes, values) if not np.isfinite(v).all())
        raise InvalidPoseError(f"{prefix}{bad} has non-finite values")


PERSON_SHAPES = {"positions": (NUM_JOINTS, 3), "covariance": (NUM_JOINTS, 3, 3), "root": (3,),
                 "root_covariance": (3, 3), "keypoints_2d": (NUM_JOINTS, 2), "keypoint_conf": (NUM_JOINTS,)}
STATE_SHAPES = {"root": (3,), "velocity": (3,), "covariance": (6, 6), "positions": (NUM_JOINTS, 3),
                "joint_covariance": (NUM_JOINTS, 3, 3), "ahead_root": (3,), "ahead_covariance": (3, 3)}


def _check_values(person: Person3D, state_only: bool = False) -> tuple[list, list]:
    """Shapes and finite values of a person (unless state_only) and its filter state; returns
    the (object, name) of its 3x3 and of its 6x6 covariances, to be repaired."""
    covs3, covs6 = [], []
    if not state_only:
        _check_arrays(person, PERSON_SHAPES)
        covs3 += [(person, "covariance"), (person, "root_covariance")]
    state = person.filtered
    if state is not None:
        _check_arrays(state, STATE_SHAPES, prefix="filtered.")
        if not (np.isfinite(state.time_since_measurement) and state.time_since_measurement >= 0):
            raise InvalidPoseError(f"filtered.time_since_measurement is {state.time_since_measurement}")
        covs3 += [(state, "joint_covariance"), (state, "ahead_covariance")]
        covs6.append((state, "covariance"))
    return covs3, covs6


def _repair_in_place(*groups: list):
    for group in groups:
        if group:
            for (obj, name), cov in zip(group, _repair_together(*(getattr(o, n) for o, n in group))):
                setattr(obj, name, cov)


def check_person(person: Person3D, state_only: bool = False) -> Person3D:
    """Validate shapes and values (the filter state's too; state_only: the state's alone);
    returns the person with repaired covariances."""
    _repair_in_place(*_check_values(person, state_only))
    return person


def check_people(people: list[Person3D], states_only: bool = False) -> list[InvalidPoseError | None]:
    """check_person of every person, in place, with one batched repair for all of them (one
    frame's people cost two eigendecompositions, not a few per person); when any fails, each is
    checked alone so that only the bad ones are refused. states_only: only the filter states
    (people whose own values passed already). Returns each person's error (None: ok)."""
    if not people:
        return []
    try:
        groups = [_check_values(p, states_only) for p in people]
        _repair_in_place([c for g in groups for c in g[0]], [c for g in groups for c in g[1]])
        return [None] * len(people)
    except InvalidPoseError:
        errors = []
        for p in people:
            try:
                check_person(p, states_only)
                errors.append(None)
            except InvalidPoseError as err:
                errors.append(err)
        return errors

