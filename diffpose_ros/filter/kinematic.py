"""Batched linear Kalman filter on kinematic states (numpy only, no ROS).

One filter holds B independent rows (a person's root and its root-relative joints), each a 3D
point with its derivatives: order 2 = constant velocity (state p, v), order 3 = constant
acceleration (p, v, a). The state vector of a row is derivative-major, [p_xyz, v_xyz, (a_xyz)].

Process noise is the usual white noise on the highest derivative with spectral density q per
axis (m^2/s^3 for velocity, m^2/s^5 for acceleration), integrated exactly over the horizon h:
    F_ij = h^(j-i) / (j-i)!                                       (j >= i)
    Q_ij = q h^(2n-1-i-j) / ((2n-1-i-j) (n-1-i)! (n-1-j)!)
(for n = 2: Q = q [[h^3/3, h^2/2], [h^2/2, h]]).

Every prediction starts from the row's last posterior (x, P at the stamp of the last fused
measurement) and covers the whole horizon in one step, so the result for a stamp does not
depend on how many frames were missed in between; only stamps count.

Two per-row terms describe motion the kinematic model cannot follow (fitted on motion capture,
see process_noise.py): `pos_jitter` and `vel_jitter`, standard deviations of the gait
oscillation of the true point about its smooth path. The pos_jitter covariance is added to the
measurement noise (the filter tracks the smooth path) and both are added to what `output`
reports, because the true point includes the oscillation.
"""
from __future__ import annotations

import functools
import math

import numpy as np

ORDERS = {"cv": 2, "ca": 3}


_EYE3 = np.eye(3)


@functools.lru_cache(maxsize=None)
def _coefficients(n: int):
    """Exponents and factorial factors of the scalar F and Q blocks of order n."""
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    k = j - i
    f_pow = np.maximum(k, 0).astype(np.float64)
    f_coef = np.where(k >= 0, [[1.0 / math.factorial(max(int(v), 0)) for v in row] for row in k], 0.0)
    e = (2 * n - 1 - i - j).astype(np.float64)
    fi = np.array([1.0 / math.factorial(n - 1 - r) for r in range(n)])
    return f_pow, f_coef, e, fi[:, None] * fi[None, :] / e


def _blocks(h: np.ndarray, order: int):
    """Scalar F (B, n, n) and unit-q Q (B, n, n) blocks for horizons h (B,)."""
    f_pow, f_coef, e, q_coef = _coefficients(order)
    h = np.asarray(h, np.float64)[:, None, None]
    return h ** f_pow * f_coef, h ** e * q_coef


def transition(h, order: int, q) -> tuple[np.ndarray, np.ndarray]:
    """F (B, 3n, 3n) and Q (B, 3n, 3n) for horizons h (B,) and spectral densities q (B, 3)."""
    Fs, Qs = _blocks(h, order)
    B, n = Fs.shape[0], order
    F = (Fs[:, :, None, :, None] * _EYE3[None, None, :, None, :]).reshape(B, 3 * n, 3 * n)
    return F, _noise(Qs, q)


def _noise(Qs: np.ndarray, q) -> np.ndarray:
    """Q (B, 3n, 3n) = Qs (x) diag(q) from the unit-q blocks Qs (B, n, n) and q (B, 3)."""
    B, n = Qs.shape[:2]
    q = np.asarray(q, np.float64)
    if q.shape != (B, 3):
        q = np.broadcast_to(q, (B, 3))
    Qd = q[:, :, None] * _EYE3                                              # (B, 3, 3) diag(q)
    return (Qs[:, :, None, :, None] * Qd[:, None, :, None, :]).reshape(B, 3 * n, 3 * n)


class KinematicFilter:
    """B rows of a constant-velocity / constant-acceleration Kalman filter.

    q (B, 3): process noise spectral density per axis; pos_jitter, vel_jitter (B, 3): std of the
    unmodelled gait oscillation (see module docstring); max_horizon (B,): longest extrapolation
    in seconds. Rows start unset; `start` sets them from a measurement with wide derivative
    priors.
    """

    def __init__(self, order: int, q, pos_jitter=0.0, vel_jitter=0.0, max_horizon=np.inf):
        if order not in ORDERS.values():
            raise ValueError(f"order must be 2 (constant velocity) or 3 (constant acceleration), got {order}")
        self.order = order
        self.q = np.array(q, np.float64, ndmin=2)
        B = self.q.shape[0]
        if self.q.shape != (B, 3) or np.any(self.q < 0) or not np.isfinite(self.q).all():
            raise ValueError(f"q must be a finite, non-negative (B, 3) array, got {self.q}")
        self.B = B
        self.pos_var = np.broadcast_to(np.square(np.asarray(pos_jitter, np.float64)), (B, 3)).copy()
        self.vel_var = np.broadcast_to(np.square(np.asarray(vel_jitter, np.float64)), (B, 3)).copy()
        # rows whose motion model only holds for a short time (a swinging limb) are extrapolated
        # for at most max_horizon seconds; after that they hold their predicted state
        self.max_horizon = np.broadcast_to(np.asarray(max_horizon, np.float64), (B,)).copy()
        n3 = 3 * order
        self.x = np.zeros((B, n3))
        self.P = np.tile(np.eye(n3), (B, 1, 1))
        self.t = np.zeros(B)              # stamp of each row's posterior

    def add_rows(self, q, pos_jitter=0.0, vel_jitter=0.0, max_horizon=np.inf) -> np.ndarray:
        """Append rows (unset, as in __init__) with their own q (B', 3) and terms; returns their
        indices."""
        more = KinematicFilter(self.order, q, pos_jitter, vel_jitter, max_horizon)
        for name in ("q", "pos_var", "vel_var", "max_horizon", "x", "P", "t"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(more, name)]))
        self.B += more.B
        return np.arange(self.B - more.B, self.B)

    # ------------------------------------------------------------------ state
    def start(self, rows, z, R, t: float, derivative_std):
        """Reset `rows` (bool (B,) or indices) to the measurement z (B', 3) with covariance R
        (B', 3, 3); velocity (and acceleration) zero with std derivative_std (B', order-1)."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, int)
        if rows.size == 0:
            return
        n3 = 3 * self.order
        x = np.zeros((rows.size, n3))
        x[:, :3] = z
        P = np.zeros((rows.size, n3, n3))
        P[:, :3, :3] = R + _diag(self.pos_var[rows])
        std = np.broadcast_to(np.asarray(derivative_std, np.float64), (rows.size, self.order - 1))
        for d in range(1, self.order):
            P[:, 3 * d:3 * d + 3, 3 * d:3 * d + 3] = np.eye(3) * (std[:, d - 1] ** 2)[:, None, None]
        self.x[rows], self.P[rows], self.t[rows] = x, P, t

    def predict(self, t: float, rows=None):
        """Prior (x (B', 3n), P (B', 3n, 3n)) of `rows` (all by default) at stamp t."""
        rows = np.arange(self.B) if rows is None else rows
        # a stamp older than the state: no motion
        h = np.minimum(np.maximum(t - self.t[rows], 0.0), self.max_horizon[rows])
        x, P = self.x[rows], self.P[rows]
        moving = h > 0                    # rows fused at t already are their own prior
        if moving.all():
            return self._extrapolate(h, x, P, self.q[rows])
        if moving.any():
            x[moving], P[moving] = self._extrapolate(h[moving], x[moving], P[moving], self.q[rows][moving])
        return x, P

    def _extrapolate(self, h, x, P, q):
        """F x and F P F^T + Q over horizons h (B,) for states x (B, 3n), P (B, 3n, 3n). F is the
        scalar block Fs (x) I3 (transition), so it acts on the derivative index alone: two
        small products with Fs instead of two with the full F."""
        Fs, Qs = _blocks(h, self.order)
        B, n = Fs.shape[0], self.order
        x = (Fs @ x.reshape(B, n, 3)).reshape(B, 3 * n)
        FP = (Fs @ P.reshape(B, n, 9 * n)).reshape(B, 3 * n, n, 3)           # F P
        P = (Fs[:, None] @ FP).reshape(B, 3 * n, 3 * n) + _noise(Qs, q)      # (F P) F^T + Q
        return x, P

    def update(self, t: float, z, R, gate_d2: float = np.inf, rows=None, correlation_s=None, dof=None):
        """Fuse measurements z (B', 3), R (B', 3, 3) of `rows` at stamp t.

        The squared Mahalanobis distance d2 of the innovation uses R as given; a row with
        d2 > gate_d2 is refused and keeps its posterior. For the others R is changed twice:
          * dof (Student-t degrees of freedom of the measurement errors): heavy-tailed errors
            are weighted down in proportion to how far out they lie, R / w with
            w = (dof + 3) / (dof + d2) (the one-step Student-t Kalman update);
          * correlation_s (3,): errors that persist for tau seconds make measurements closer
            than tau partly repeat each other, so R is inflated by tau / h along that axis
            (h = time since the row's last update, at least 1): a 30 Hz camera then adds no
            more information than the errors allow.
        Returns (accepted (B',) bool, d2 (B',)).
        """
        rows = np.arange(self.B) if rows is None else np.asarray(rows, int)
        x, P = self.predict(t, rows)
        pos_var = _diag(self.pos_var[rows])
        y = z - x[:, :3]
        S_inv = np.linalg.inv(P[:, :3, :3] + R + pos_var)
        d2 = np.einsum("bi,bij,bj->b", y, S_inv, y)
        ok = np.isfinite(d2) & (d2 <= gate_d2)
        if ok.any():
            if not ok.all():
                rows, x, P, y, R, pos_var, S_inv = (a[ok] for a in (rows, x, P, y, R, pos_var, S_inv))
            heavy_tails = dof is not None and np.isfinite(dof)
            if heavy_tails:
                R = R * ((dof + d2[ok]) / (dof + 3.0))[:, None, None]
            if correlation_s is not None:
                h = np.maximum(t - self.t[rows], 1e-9)[:, None]
                d = np.sqrt(np.maximum(1.0, np.asarray(correlation_s, np.float64)[None, :] / h))   # (b, 3)
                R = R * d[:, :, None] * d[:, None, :]
            Rt = R + pos_var
            if heavy_tails or correlation_s is not None:     # R changed: the gain needs its own inverse
                S_inv = np.linalg.inv(P[:, :3, :3] + Rt)
            K = P[:, :, :3] @ S_inv                                             # (b, 3n, 3)
            self.x[rows] = x + np.einsum("bij,bj->bi", K, y)
            # Joseph form (I - K H) P (I - K H)^T + K R K^T with H = [I 0], multiplied out: stays
            # symmetric positive definite in float64 over long runs
            A = P - K @ P[:, :3, :]
            P = A - A[:, :, :3] @ np.swapaxes(K, 1, 2) + K @ Rt @ np.swapaxes(K, 1, 2)
            self.P[rows] = 0.5 * (P + np.swapaxes(P, 1, 2))
            self.t[rows] = t
        return ok, d2

    def output(self, t: float, rows=None):
        """What is reported at stamp t: the prior of `rows` with the gait oscillation added to
        the position and velocity blocks (the true point includes it)."""
        rows = np.arange(self.B) if rows is None else rows
        x, P = self.predict(t, rows)
        P[:, :3, :3] += _diag(self.pos_var[rows])
        P[:, 3:6, 3:6] += _diag(self.vel_var[rows])
        return x, P


def _diag(v: np.ndarray) -> np.ndarray:
    """(B, 3) -> (B, 3, 3) diagonal matrices."""
    return v[:, :, None] * _EYE3
