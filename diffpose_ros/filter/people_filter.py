"""The per-track 3D filter: each tracked person's root position and velocity over time, and a
smoothed skeleton, with covariances (ROS-free; runs on the lifter's output per track id).

Each track has 17 rows of one KinematicFilter shared by all tracks (its slot; one batched
update a frame for all roots, one for all joints, one output): row 0 is the root (pelvis) in
the camera frame, measured by the lifter's root with the lifter's root covariance; rows 1..16
are the root-relative joints, measured by the lifter's root-relative pose and covariance. Absolute
filtered joints are the filtered root plus the filtered root-relative joints, their covariance
the sum (the lifter makes the same independence assumption).

Per frame (`step`), for every track with a measurement:
  * new track: the state starts at the measurement, velocity zero with a wide prior
    (`velocity_prior_mps` per axis for the root, the joint's fitted rms velocity for joints);
  * otherwise the root measurement is fused with the lifter's covariance as the scale of
    Student-t errors (heavy tails: far-out lifts count less) inflated for the errors'
    correlation over time (both fitted on the lifter's errors, kinematic.py), after a
    Mahalanobis gate (probability `gate_probability` of those errors) that refuses what the
    state cannot explain (a wrong association, a gross lift): the track is then
    predicted only, the joints are not updated either, and the output is flagged a prediction;
    a track refused for longer than `max_prediction_s` restarts from the measurement;
  * joints are gated one by one the same way (a swapped limb); a joint refused for longer
    than `max_prediction_s` restarts from its measurement.
Body size (the one error frames cannot average): a monocular camera sees a person only up to a
scale about the camera centre, and the lifter places everyone at the typical body size, so a
person of another size is off by a factor (1 + delta) in every frame of the track (the lifter's
`size_var` = var(delta), its term size_var X X^T of each absolute covariance). The filter runs on
the lifter's scaled positions x' = (1 + delta) x, which move like the person (constant delta),
and is updated with the measurement noise WITHOUT that term: what stays is the part of the error
that does change from frame to frame. delta is never observed, so its variance is added back to
every output (a Schmidt "consider" parameter): the state w = (x, v) gets + var(delta) w w^T,
the joints + var(delta) X_j X_j^T, the look-ahead + var(delta) x_a x_a^T, with var(delta) the
mean of the track's accepted lifts. Without it the filtered covariance shrinks while the size
offset stays, and the ellipsoids stop holding the person. With the camera's height and tilt
known the size comes from the feet on the floor in every frame (lifter/ground.py): only the
prior's share of that size error is the same in every frame (LiftResult.size_var_track, what
`step` takes as size_var); the floor measurement's own error is new in every frame, so it stays
in the measurement noise and averages like any other.
Tracks without a measurement are predicted to the stamp (flagged is_prediction) until
`max_prediction_s` has passed since their last accepted measurement, then deleted.
A stamp more than `max_prediction_s` older than the newest one seen (a replayed bag) resets
the filter; a slightly older one is fused as if simultaneous.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import chi2
from scipy.stats import f as f_dist

from diffpose_ros.people import FilteredState
from diffpose_ros.skeleton import NUM_JOINTS

from .kinematic import ORDERS, KinematicFilter
from .process_noise import JOINT_HORIZONS_FRAMES, MOCAP_FPS, ProcessNoise, load_process_noise

# joints follow their constant-velocity extrapolation only over the horizons their process
# noise was fitted on (1/3 s); a limb does not keep swinging one way for longer
JOINT_MAX_HORIZON_S = max(JOINT_HORIZONS_FRAMES) / MOCAP_FPS
_EPS_S = 1e-6                      # stamp rounding: a prediction exactly at the limit is kept


@functools.lru_cache(maxsize=16)
def _gate_d2(probability: float, dof: float) -> float:
    """Squared Mahalanobis distance of the gate: the `probability` quantile of d2 for 3D
    Student-t errors with `dof` degrees of freedom (3 F(3, dof)); chi-square for dof = inf."""
    if probability >= 1:
        return np.inf
    return float(chi2.ppf(probability, 3) if not np.isfinite(dof) else 3 * f_dist.ppf(probability, 3, dof))


@dataclass
class FilterConfig:
    enabled: bool = True
    model: str = "cv"                        # "cv" constant velocity, "ca" constant acceleration
    max_prediction_s: float = 1.0            # predict this long without an accepted measurement
    gate_probability: float = 0.999          # Mahalanobis gate on each measurement
    velocity_prior_mps: float = 2.0          # std per axis of a new track's root velocity
    acceleration_prior_mps2: float = 3.0     # the same for acceleration (model "ca")
    process_noise_scale: float = 1.0         # multiplies the fitted process-noise densities
    smooth_joints: bool = True               # filter the joints too (else: the latest lift)
    ahead_s: float = 1.0                     # horizon of the published look-ahead prediction

    def __post_init__(self):
        if self.model not in ORDERS:
            raise ValueError(f"filter model must be one of {sorted(ORDERS)}, got {self.model!r}")
        checks = {"max_prediction_s": self.max_prediction_s >= 0, "velocity_prior_mps": self.velocity_prior_mps > 0,
                  "acceleration_prior_mps2": self.acceleration_prior_mps2 > 0,
                  "process_noise_scale": self.process_noise_scale > 0, "ahead_s": self.ahead_s >= 0,
                  "gate_probability": 0 < self.gate_probability <= 1}
        for name, ok in checks.items():
            if not (ok and np.isfinite(getattr(self, name))):
                raise ValueError(f"filter {name}={getattr(self, name)} is out of range")


@dataclass
class StepResult:
    states: dict[int, FilteredState]          # every track the filter reports at this stamp
    deleted: list[int] = field(default_factory=list)   # tracks dropped at this stamp
    gated: list[int] = field(default_factory=list)     # tracks whose measurement was refused


class _Track:
    def __init__(self, slot: int):
        self.slot = slot                           # rows slot*17 .. slot*17 + 16 of the filter
        self.rows = slot * NUM_JOINTS + np.arange(NUM_JOINTS)
        self.rel = np.zeros((NUM_JOINTS, 3))       # latest accepted root-relative lift
        self.rel_cov = np.zeros((NUM_JOINTS, 3, 3))
        self.size_sum, self.size_n = 0.0, 0        # var(delta) of the accepted lifts

    def add_size(self, size_var: float):
        self.size_sum += size_var
        self.size_n += 1

    @property
    def size_var(self) -> float:
        return self.size_sum / self.size_n if self.size_n else 0.0


def without_size(root_cov: np.ndarray, root: np.ndarray, size_var: np.ndarray) -> np.ndarray:
    """The root covariances (P, 3, 3) less their body-size term size_var X X^T (the lifter adds
    it to a covariance that is positive definite without it; rounding is clipped)."""
    R = root_cov - size_var[:, None, None] * root[:, :, None] * root[:, None, :]
    R = 0.5 * (R + np.swapaxes(R, 1, 2))
    try:    # the common case: nothing to clip (a Cholesky test is cheaper than eigh)
        np.linalg.cholesky(R - 1e-8 * np.eye(3))
        return R
    except np.linalg.LinAlgError:
        pass
    w, v = np.linalg.eigh(R)
    return (v * np.maximum(w, 1e-8)[:, None, :]) @ np.swapaxes(v, 1, 2)


def _add_size(cov: np.ndarray, x: np.ndarray, size_var) -> np.ndarray:
    """cov (..., n, n) + size_var x x^T: the unobserved body-size scale of a filtered quantity
    (size_var a float or an array that broadcasts against cov)."""
    return cov + size_var * x[..., :, None] * x[..., None, :]


class PeopleFilter:
    def __init__(self, config: FilterConfig | None = None, noise: ProcessNoise | None = None):
        self.config = config or FilterConfig()
        self._noise = noise
        self._noise_model = None
        self._q_scale = None                       # process_noise_scale of kf.q
        self.tracks: dict[int, _Track] = {}
        self.kf: KinematicFilter | None = None     # the rows of every slot, in use or free
        self._free: list[int] = []                 # slots of ended tracks
        self._now: float | None = None

    def reset(self):
        self.tracks.clear()
        self.kf, self._free = None, []
        self._now = None

    # ------------------------------------------------------------------ helpers
    @property
    def noise(self) -> ProcessNoise:
        model = self.config.model
        if self._noise is None or self._noise.model != model:
            self._noise = load_process_noise(model)
        if self._noise_model != model:             # a new model: states of another order go
            self.tracks.clear()
            self.kf, self._free = None, []
            self._noise_model = model
        return self._noise

    def _q(self, noise: ProcessNoise) -> np.ndarray:
        q = np.repeat(noise.joint_q[:, None], 3, axis=1)
        q[0] = noise.root_q
        return q * self.config.process_noise_scale

    def _slot(self, noise: ProcessNoise) -> int:
        """A free slot of 17 rows (the filter grows by one when none is)."""
        if self._free:
            return self._free.pop()
        zeros = np.zeros((NUM_JOINTS - 1, 3))
        terms = dict(q=self._q(noise), pos_jitter=np.vstack([noise.root_pos_jitter, zeros]),
                     vel_jitter=np.vstack([np.sqrt(noise.root_vel_var(0.0)), zeros]),
                     max_horizon=np.r_[np.inf, np.full(NUM_JOINTS - 1, JOINT_MAX_HORIZON_S)])
        if self.kf is None:
            self.kf = KinematicFilter(noise.order, **terms)
            self._q_scale = self.config.process_noise_scale    # the scale of every row's q
            return 0
        return int(self.kf.add_rows(**terms)[0]) // NUM_JOINTS

    def _start(self, noise: ProcessNoise, slot: int, stamp, root, root_cov, rel, rel_cov) -> _Track:
        """A track in `slot` from its first measurement: velocity zero with a wide prior."""
        track = _Track(slot)
        prior = noise.joint_derivative_std.copy()
        prior[0] = [self.config.velocity_prior_mps, self.config.acceleration_prior_mps2][: noise.order - 1]
        self.kf.start(track.rows, np.vstack([root[None], rel[1:]]),
                      np.concatenate([root_cov[None], rel_cov[1:]]), stamp, prior)
        track.rel, track.rel_cov = rel.copy(), rel_cov.copy()
        return track

    def _states(self, tracks: list[_Track], stamp: float, is_prediction: list[bool]) -> list[FilteredState]:
        """What the filter reports for `tracks` at `stamp` (one batched output for all)."""
        if not tracks:
            return []
        cfg, kf = self.config, self.kf
        T = len(tracks)
        roots = np.array([t.rows[0] for t in tracks])
        # the gait oscillation of the root velocity grows with walking speed (process_noise.py)
        kf.vel_var[roots] = self.noise.root_vel_var(np.linalg.norm(kf.x[roots, 3:6], axis=1)[:, None])
        x, P = kf.output(stamp, np.concatenate([t.rows for t in tracks]))
        x, P = x.reshape(T, NUM_JOINTS, -1), P.reshape(T, NUM_JOINTS, *P.shape[1:])
        xa, Pa = kf.output(stamp + cfg.ahead_s, rows=roots)
        if cfg.smooth_joints:
            rel, rel_cov = x[:, :, :3].copy(), P[:, :, :3, :3].copy()
        else:
            rel, rel_cov = np.array([t.rel for t in tracks]), np.array([t.rel_cov for t in tracks])
        rel[:, 0], rel_cov[:, 0] = 0.0, 0.0               # row 0 is the root itself
        positions = x[:, :1, :3] + rel
        c = np.array([t.size_var for t in tracks])
        # every track's quantities at once, then one FilteredState a track
        state_cov = _add_size(P[:, 0, :6, :6], x[:, 0, :6], c[:, None, None])
        joint_cov = _add_size(P[:, :1, :3, :3] + rel_cov, positions, c[:, None, None, None])
        ahead_cov = _add_size(Pa[:, :3, :3], xa[:, :3], c[:, None, None])
        since = np.maximum(stamp - kf.t[roots], 0.0).tolist()
        return [FilteredState(root=x[k, 0, :3].copy(), velocity=x[k, 0, 3:6].copy(), covariance=state_cov[k],
                              positions=positions[k], joint_covariance=joint_cov[k],
                              time_since_measurement=since[k], is_prediction=bool(is_prediction[k]),
                              ahead_s=float(cfg.ahead_s), ahead_root=xa[k, :3].copy(), ahead_covariance=ahead_cov[k])
                for k in range(T)]

    # ------------------------------------------------------------------ main entry
    def step(self, stamp: float, track_ids, root, root_cov, rel, rel_cov, size_var=None) -> StepResult:
        """Fuse one frame. track_ids (P,), root (P, 3), root_cov (P, 3, 3), rel (P, 17, 3)
        root-relative joints, rel_cov (P, 17, 3, 3), size_var (P,) the part of the lifter's body-size
        variance that is the same in every frame of a track (LiftResult.size_var_track; None: 0, a
        root error that frames can average); P may be
        0. Returns the states of the measured tracks and of the tracks predicted through this
        frame."""
        stamp = float(stamp)
        if not np.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp}")
        cfg = self.config
        ids = [int(t) for t in track_ids]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate track ids in one frame: {ids}")
        root = np.asarray(root, np.float64).reshape(len(ids), 3)
        root_cov = np.asarray(root_cov, np.float64).reshape(len(ids), 3, 3)
        rel = np.asarray(rel, np.float64).reshape(len(ids), NUM_JOINTS, 3)
        rel_cov = np.asarray(rel_cov, np.float64).reshape(len(ids), NUM_JOINTS, 3, 3)
        size_var = np.zeros(len(ids)) if size_var is None else np.asarray(size_var, np.float64).reshape(len(ids))
        if not (np.isfinite(size_var).all() and (size_var >= 0).all()):
            raise ValueError(f"size_var must be finite and non-negative, got {size_var.tolist()}")
        if len(ids):
            root_cov = without_size(root_cov, root, size_var)
        out = StepResult({})
        if not cfg.enabled:
            out.deleted = sorted(self.tracks)
            self.reset()
            return out
        before = sorted(self.tracks)
        noise = self.noise                             # a new motion model drops every track
        if before and not self.tracks:
            out.deleted = before
        if self._now is not None and stamp < self._now - cfg.max_prediction_s - _EPS_S:
            out.deleted = sorted(set(out.deleted) | set(self.tracks))   # time jumped back
            self.reset()
        self._now = stamp if self._now is None else max(self._now, stamp)
        gate = _gate_d2(cfg.gate_probability, noise.measurement_dof)
        limit = cfg.max_prediction_s + _EPS_S
        kf = self.kf
        if kf is not None and self._q_scale != cfg.process_noise_scale:   # changed at run time
            kf.q = np.tile(self._q(noise), (kf.B // NUM_JOINTS, 1))
            self._q_scale = cfg.process_noise_scale
        # the roots of the known tracks, fused in one batched update
        known = [i for i, tid in enumerate(ids) if tid in self.tracks]
        root_ok = {}
        if known:
            ok, _ = kf.update(stamp, root[known], root_cov[known], gate,
                              rows=np.array([self.tracks[ids[i]].rows[0] for i in known]),
                              correlation_s=noise.measurement_correlation_s, dof=noise.measurement_dof)
            root_ok = dict(zip(known, ok))
        fused, gated = [], set()                         # known tracks whose root was fused / refused
        for i, tid in enumerate(ids):
            track = self.tracks.get(tid)
            if track is not None and root_ok[i]:
                fused.append(i)
            elif track is not None and stamp - self.kf.t[track.rows[0]] <= limit:
                gated.add(i)                             # predicted only; the joints wait too
                out.gated.append(tid)
                continue
            else:                                        # new, or refused for too long: start over
                slot = track.slot if track is not None else self._slot(noise)
                self.tracks[tid] = self._start(noise, slot, stamp, root[i], root_cov[i], rel[i], rel_cov[i])
            self.tracks[tid].add_size(size_var[i])
        kf = self.kf
        # the joints of the tracks whose root was fused, in one batched update; a joint refused
        # for longer than max_prediction_s restarts from its measurement
        if fused:
            rows = np.concatenate([self.tracks[ids[i]].rows[1:] for i in fused])
            z, R = rel[fused, 1:].reshape(-1, 3), rel_cov[fused, 1:].reshape(-1, 3, 3)
            ok, _ = kf.update(stamp, z, R, gate, rows=rows, dof=noise.measurement_dof)
            stale = ~ok & (stamp - kf.t[rows] > limit)
            if stale.any():
                kf.start(rows[stale], z[stale], R[stale], stamp,
                         noise.joint_derivative_std[rows[stale] % NUM_JOINTS])
            for i in fused:
                self.tracks[ids[i]].rel, self.tracks[ids[i]].rel_cov = rel[i].copy(), rel_cov[i].copy()
        # the tracks without a measurement: predicted until max_prediction_s, then deleted
        unmeasured = []
        for tid in [t for t in self.tracks if t not in ids]:
            track = self.tracks[tid]
            if stamp - self.kf.t[track.rows[0]] > limit:
                del self.tracks[tid]
                self._free.append(track.slot)
                out.deleted.append(tid)
            else:
                unmeasured.append(tid)
        report = ids + unmeasured
        states = self._states([self.tracks[t] for t in report], stamp,
                              [i in gated for i in range(len(ids))] + [True] * len(unmeasured))
        out.states = dict(zip(report, states))
        return out
