"""Absolute placement: the root (pelvis) position in the camera frame from the 2D keypoints, their
uncertainties and the root-relative 3D pose, by weighted least squares on the reprojection.

A joint j with root-relative position p_j = (x_j, y_j, z_j) and root T = (X, Y, Z) projects to the
normalised image point (u_j, v_j) = ((X + x_j)/(Z + z_j), (Y + y_j)/(Z + z_j)). Multiplying out,
the equations are LINEAR in T:
    X - u_j Z = u_j z_j - x_j
    Y - v_j Z = v_j z_j - y_j
Each row's error is sigma_u,j (Z + z_j) (2D noise scaled by depth); we weight rows by the inverse
of that variance (re-estimated with the current Z, LINEAR_ITERS passes). The pose's own
uncertainty is deliberately not a weight: it is largest at the wrists and ankles, and
down-weighting them leaves the body's scale in the image, hence the depth, to the short torso
(measured with the linear solution alone on 1,000 held-out val draws: 16.0 % of the distance
with that weight, 9.7 % without, 6.9 % with the true pose).
Robust: a detector's gross errors (a missed joint answered somewhere in the box, a swapped limb)
are far outside any sigma a confidence predicts, and one of them would drag the root by metres.
So each iteration also reweights every joint by the Cauchy weight 1 / (1 + r_j^2 / (2 c^2)) of
its normalised residual r_j (c = ROBUST_C): iteratively reweighted least squares.
Pose errors are treated as independent between joints here; the shared ones (a body of another
size than the pose) and the pose's own spread are added by the calibration (calibration.py).

Then the reprojection error itself. Multiplying by the depth puts the noisy u_j into the design
matrix (an errors-in-variables regression): the noise inflates sum w (u^2 + v^2) and pulls Z
toward the camera. With the TRUE root-relative pose on 2,000 held-out val draws the linear
solution placed people at 0.94 of their depth on average (7.0 % root error; 0.90 below 2 m);
clean keypoints gave exactly 1.00. So the linear solution is only the starting point of a robust
Gauss-Newton on  sum_j rho(|pi(T + p_j) - k_j|^2 / (2 sigma_j^2))  (the same Cauchy rho), whose
noise sits in the residual only: 1.00 of the depth, 4.2 % root error on the same draws; cov(T) =
(J^T W J)^-1 at its solution. Joints with confidence below SEEN_CONF are left out of it when
MIN_SEEN joints remain: the keypoint of a joint outside the image or hidden is a guess (13 of
its own sigma off on those draws), and the converged fit follows such guesses where the linear
one did not (1.04 of the depth, 6.5 % with them).
"""
import numpy as np

MIN_DEPTH = 0.1  # metres; a person cannot be closer than this to the camera centre
ROBUST_C = 2.5   # Cauchy scale in units of the predicted std (95 % efficiency for Gaussian residuals)
SEEN_CONF = 0.3  # a keypoint at or above this confidence counts as seen (placement, chi, the floor)
MIN_SEEN = 4     # fewer seen joints than this: the refinement uses them all
# Reweighting passes of the linear solution, then Gauss-Newton steps: the linear solution is
# only a start, and every pass costs the node time. Root error with the lifter's pose on 2,000
# val / iClone draws: linear passes 2 / 3 / 6 with 4 steps 7.93 / 7.96 / 8.02 % and 9.01 / 9.05 /
# 9.17 %; 2 passes with 2 / 3 / 4 steps 8.00 / 7.93 / 7.93 % and 9.45 / 9.13 / 9.01 % (a few
# draws converge slowly: 10 steps after 6 passes 8.05 %)
LINEAR_ITERS = 2
GN_ITERS = 4
# The refinement corrects the linear solution's bias (a few %) and may move the depth at most
# this factor either way: a robust fit of a pose that explains its keypoints badly can lower its
# cost all the way to infinity (every joint projected onto one point; run to convergence, one
# iClone draw in 1,000 went from 1.7 m to 116 m). Tighter bounds hold back real corrections
# (iClone root error with GN_ITERS steps: 9.21 % at 2, 9.30 at 1.5, 9.45 at 1.25; 9.14 unbounded)
DEPTH_TRUST = 2.0
STEP_FRACTIONS = np.array([1.0, 0.5, 0.0])  # tried per step; 0 keeps the root


def _cauchy_weight(r2):
    return 1.0 / (1.0 + r2 / (2 * ROBUST_C ** 2))


def _reprojection(kp, sig, p, root):
    """Residuals (...,P,J,2) of the pose placed at root (...,P,3), their r^2 = |r|^2 / (2 sigma^2)
    and the placed joints and depths."""
    x = root[..., None, :] + p
    z = np.maximum(x[..., 2], MIN_DEPTH)
    r = x[..., :2] / z[..., None] - kp
    return r, (r * r).sum(-1) / (2 * sig * sig), x, z


def _rho(r2):
    """rho(r2) = 2 c^2 log(1 + r2 / (2 c^2)): the cost whose iteratively reweighted least squares
    has the Cauchy weights."""
    return 2 * ROBUST_C ** 2 * np.log1p(r2 / (2 * ROBUST_C ** 2))


def _normal_equations(w, r, x, z):
    """The entries (a, bx, by, c) of J^T W J = [[a, 0, -bx], [0, a, -by], [-bx, -by, c]] and
    J^T W r (P,3) of the residuals r (P,J,2) at the placed joints x with depths z, joint weights
    w (P,J): d r_j / d T = [[1/z, 0, -x/z^2], [0, 1/z, -y/z^2]], summed in closed form (one
    product over the joints; the node runs this for every person and hypothesis)."""
    iz = 1.0 / z
    xu, yv, iz2 = x[..., 0] * iz, x[..., 1] * iz, iz * iz
    terms = np.stack([iz2, xu * iz2, yv * iz2, (xu * xu + yv * yv) * iz2,
                      r[..., 0] * iz, r[..., 1] * iz, (xu * r[..., 0] + yv * r[..., 1]) * iz], -1)
    a, bx, by, c, gx, gy, gz = (w[:, None, :] @ terms)[:, 0].T
    return (a + 1e-9, bx, by, c + 1e-9), np.stack([gx, gy, -gz], -1)


def _solve(m, g):
    """(J^T W J)^-1 g for the structured matrix of _normal_equations: Z first, then X and Y."""
    a, bx, by, c = m
    dz = (g[:, 2] + (bx * g[:, 0] + by * g[:, 1]) / a) / (c - (bx * bx + by * by) / a)
    return np.stack([(g[:, 0] + bx * dz) / a, (g[:, 1] + by * dz) / a, dz], -1)


def _inverse(m):
    a, bx, by, c = m
    zero = np.zeros_like(a)
    cov = np.linalg.inv(np.stack([np.stack([a, zero, -bx], -1), np.stack([zero, a, -by], -1),
                                  np.stack([-bx, -by, c], -1)], -2))
    return 0.5 * (cov + np.swapaxes(cov, -1, -2))


def refine_root(kp, sig, p, root, use, n_iter: int = GN_ITERS, tol: float = 1e-4):
    """Robust Gauss-Newton on the reprojection error from `root` (P,3), joints weighted by `use`
    (P,J) in {0, 1}. Each step is the largest of STEP_FRACTIONS that does not raise the robust cost
    sum_j use_j rho(r_j^2), so the cost never grows; a root that moves less than tol (m) stops
    there (each row as if placed alone). Returns root (P,3) and (J^T W J)^-1 (P,3,3) at it."""
    z_lo, z_hi = root[:, 2] / DEPTH_TRUST, root[:, 2] * DEPTH_TRUST
    rows = np.arange(len(root))
    inv_var = use / (sig * sig)
    r, r2, x, z = _reprojection(kp, sig, p, root)
    cost = (use * _rho(r2)).sum(-1)
    active = np.ones(len(root), bool)
    for _ in range(n_iter):
        m, g = _normal_equations(inv_var * _cauchy_weight(r2), r, x, z)
        step = _solve(m, g) * active[:, None]
        cands = root[None] - STEP_FRACTIONS[:, None, None] * step[None]  # (F,P,3)
        cands[..., 2] = np.maximum(np.clip(cands[..., 2], z_lo, z_hi), MIN_DEPTH)
        rc, r2c, xc, zc = _reprojection(kp, sig, p, cands)
        costs = (use * _rho(r2c)).sum(-1)                                # (F,P)
        pick = (costs <= cost[None] * (1 + 1e-12)).argmax(0)              # the largest step that does
        active &= np.abs(cands[pick, rows] - root).max(-1) >= tol         # not raise it (0 never does)
        root, r, r2, x, z, cost = (a[pick, rows] for a in (cands, rc, r2c, xc, zc, costs))
        if not active.any():
            break
    return root, _inverse(_normal_equations(inv_var * _cauchy_weight(r2), r, x, z)[0])


def place_root(kp_norm, sigma_norm, pose_rel, conf=None):
    """Robust least-squares root translation: linear_root, then refine_root.

    kp_norm (P,J,2) normalised 2D keypoints; sigma_norm (P,J) per-axis 2D std (normalised units);
    pose_rel (P,J,3) root-relative pose (m); conf (P,J) the keypoints' confidences (None: all
    seen).
    Returns root (P,3) and root_cov (P,3,3).
    """
    kp = np.asarray(kp_norm, np.float64)
    sig = np.asarray(sigma_norm, np.float64)
    p = np.asarray(pose_rel, np.float64)
    if kp.ndim != 3 or kp.shape[-1] != 2 or p.shape != kp.shape[:2] + (3,) or sig.shape != kp.shape[:2]:
        raise ValueError(f"place_root: bad shapes kp {kp.shape}, sigma {sig.shape}, pose {p.shape}")
    if conf is not None and np.shape(conf) != kp.shape[:2]:
        raise ValueError(f"place_root: conf {np.shape(conf)} for keypoints {kp.shape}")
    seen = np.ones(kp.shape[:2]) if conf is None else (np.asarray(conf) >= SEEN_CONF).astype(np.float64)
    use = np.where(seen.sum(-1, keepdims=True) >= MIN_SEEN, seen, 1.0)
    return refine_root(kp, sig, p, linear_root(kp, sig, p), use)


def linear_root(kp, sig, p, n_iter: int = LINEAR_ITERS):
    """The linear solution (P,3) of the multiplied-out equations, Cauchy-reweighted n_iter times
    (all joints: its weights already shrink the gross errors of joints not seen)."""
    P, J = kp.shape[:2]
    u, v = kp[..., 0], kp[..., 1]
    bu, bv = u * p[..., 2] - p[..., 0], v * p[..., 2] - p[..., 1]        # right-hand sides (P, J)
    # A joint's two rows [1, 0, -u] and [0, 1, -v] share one weight, so A^T W A and A^T W b are
    # weighted sums over joints of these per-joint terms: one (P, J) x (P, J, 7) product a pass
    terms = np.stack([np.ones_like(u), u, v, u * u + v * v, bu, bv, u * bu + v * bv], -1)
    depth = np.full((P, J), 3.0)  # initial guess only sets the relative weights
    robust = np.ones((P, J))
    for _ in range(n_iter):
        var = (sig * depth) ** 2 + 1e-12                                  # of each of the joint's rows
        w = robust / var
        s1, su, sv, suv, sbu, sbv, subv = (w[:, None, :] @ terms)[:, 0].T
        s1, suv = s1 + 1e-9, suv + 1e-9                                   # ridge: never singular
        # the normal equations  s1 X - su Z = sbu,  s1 Y - sv Z = sbv,  -su X - sv Y + suv Z = -subv
        # solved for Z first (X and Y follow from the first two)
        Z = ((su * sbu + sv * sbv) / s1 - subv) / (suv - (su * su + sv * sv) / s1)
        root = np.stack([(sbu + su * Z) / s1, (sbv + sv * Z) / s1, np.maximum(Z, MIN_DEPTH)], -1)
        depth = np.maximum(root[:, None, 2] + p[..., 2], MIN_DEPTH)
        ru = root[:, None, 0] - u * root[:, None, 2] - bu
        rv = root[:, None, 1] - v * root[:, None, 2] - bv
        r2 = (ru * ru + rv * rv) / var / 2
        robust = _cauchy_weight(r2)
    return root


def place_hypotheses(kp_norm, sigma_norm, pose_rel, hyps, conf=None):
    """The pose and each of its hypotheses placed by their own root, in one batched solve:
    (P,J,2), (P,J), pose (P,J,3), hyps (P,N,J,3), conf (P,J) or None -> root (P,3), root_cov
    (P,3,3) of the pose (place_root) and the hypotheses' roots (P,N,3).

    The spread of the hypotheses' roots is the root uncertainty that comes from the pose (a
    bigger or deeper-bent hypothesis lands further away), and it is correlated with each joint's."""
    hyps = np.asarray(hyps, np.float64)
    p, n = hyps.shape[:2]
    kp, sig = np.asarray(kp_norm, np.float64), np.asarray(sigma_norm, np.float64)
    rows = lambda x: np.concatenate([x, np.repeat(x, n, axis=0)])   # noqa: E731  the pose's, then each hypothesis's
    roots, covs = place_root(rows(kp), rows(sig),
                             np.concatenate([np.asarray(pose_rel, np.float64), hyps.reshape(p * n, *hyps.shape[2:])]),
                             None if conf is None else rows(np.asarray(conf, np.float64)))
    return roots[:p], covs[:p], roots[p:].reshape(p, n, 3)
