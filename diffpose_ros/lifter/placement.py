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
STEP_FRACTIONS = (1.0, 0.5, 0.0)  # tried per step, in turn; 0 keeps the root


def _robust_t(sq, var):
    """t = r^2 / (2 c^2) of a joint with squared residual sq = |r|^2 and per-axis variance var
    (its normalised r^2 = sq / (2 var)): what the Cauchy weight and cost take."""
    return sq / (4 * ROBUST_C ** 2 * var)


def _cauchy_weight(t):
    """The Cauchy weight 1 / (1 + r^2 / (2 c^2)) of a joint, from t = r^2 / (2 c^2)."""
    return 1.0 / (1.0 + t)


def _rho(t):
    """rho / (2 c^2) = log(1 + t), t = r^2 / (2 c^2): the robust cost (up to the factor 2 c^2)
    whose iteratively reweighted least squares has the Cauchy weights."""
    return np.log1p(t)


def _project(root, p, k, var):
    """The pose p = (x, y, z) (each (R,J)) placed at root (3,R): its image points u, v, their
    inverse depths iz, residuals ru, rv against the keypoints k = (u, v), and their t
    (_robust_t, keypoint variances var) (all (R,J): one array per coordinate keeps every
    operation on contiguous arrays)."""
    iz = 1.0 / np.maximum(root[2][:, None] + p[2], MIN_DEPTH)
    u, v = (root[0][:, None] + p[0]) * iz, (root[1][:, None] + p[1]) * iz
    ru, rv = u - k[0], v - k[1]
    return u, v, iz, ru, rv, _robust_t(ru * ru + rv * rv, var)


def _normal_equations(w, u, v, iz, ru=None, rv=None):
    """J^T W J = [[a, 0, -bx], [0, a, -by], [-bx, -by, c]] as (a, bx, by, c) and, with the
    residuals, J^T W r (3,R), for joint weights w (R,J): d r_j / d T = [[1, 0, -u], [0, 1, -v]] / z
    with (u, v) the placed joint's image point, summed over the joints in closed form (the node
    runs this for every person and hypothesis; one product sums all the terms)."""
    wi = w * iz
    wi2 = wi * iz
    terms = [wi2, wi2 * u, wi2 * v, wi2 * (u * u + v * v)]
    if ru is not None:
        terms += [wi * ru, wi * rv, wi * (u * ru + v * rv)]
    sums = np.array(terms) @ np.ones(w.shape[-1])
    g = sums[4:]
    if ru is not None:
        g[2] = -g[2]
    return (sums[0] + 1e-9, sums[1], sums[2], sums[3] + 1e-9), g


def _schur(m):
    """The Schur complement c - (bx^2 + by^2) / a of J^T W J's X-Y block."""
    a, bx, by, c = m
    return c - (bx * bx + by * by) / a


def _solve(m, g):
    """(J^T W J)^-1 g (3,R) for g (3,R), by the closed form of _inverse without forming it."""
    a, bx, by, _ = m
    dz = (g[2] + (bx * g[0] + by * g[1]) / a) / _schur(m)
    return np.array([(g[0] + bx * dz) / a, (g[1] + by * dz) / a, dz])


def _inverse(m):
    """(J^T W J)^-1 (R,3,3) in closed form: with e = (bx / a, by / a, 1) and the Schur complement
    s, it is diag(1/a, 1/a, 0) + e e^T / s."""
    a, bx, by, _ = m
    e = np.stack([bx / a, by / a, np.ones_like(a)], -1)
    cov = e[:, :, None] * (e / _schur(m)[:, None])[:, None, :]
    cov[:, 0, 0] += 1.0 / a
    cov[:, 1, 1] += 1.0 / a
    return cov


def refine_root(kp, sig, p, root, use, n_iter: int = GN_ITERS, tol: float = 1e-4):
    """Robust Gauss-Newton on the reprojection error from `root` (P,3) (depth at least
    MIN_DEPTH), joints weighted by `use` (P,J) in {0, 1}. Each step is the largest of
    STEP_FRACTIONS that does not raise the robust cost sum_j use_j rho(r_j^2), so the cost never
    grows; a root that moves less than tol (m) stops there (each row as if placed alone).
    Returns root (P,3) and (J^T W J)^-1 (P,3,3) at it."""
    root = np.array(root.T)                                   # (3,P): X, Y, Z
    # the depth stays within DEPTH_TRUST of the start (and beyond MIN_DEPTH: the start is)
    z_lo, z_hi = np.maximum(root[2] / DEPTH_TRUST, MIN_DEPTH), root[2] * DEPTH_TRUST
    var = sig * sig
    inv_var = use / var
    k, p, ones = (kp[..., 0], kp[..., 1]), (p[..., 0], p[..., 1], p[..., 2]), np.ones(kp.shape[1])

    def cost_of(t):
        return (use * _rho(t)) @ ones

    placed = _project(root, p, k, var)
    cost = cost_of(placed[5])
    active = np.ones(len(root[0]), bool)
    for _ in range(n_iter):
        u, v, iz, ru, rv, t = placed
        m, g = _normal_equations(inv_var * _cauchy_weight(t), u, v, iz, ru, rv)
        step = _solve(m, g) * active
        # the largest fraction that does not raise the cost, tried in turn (the full step almost
        # always passes for every row; the 0 fraction never raises it)
        new, chosen = root, np.zeros_like(active)
        for fraction in STEP_FRACTIONS[:-1]:
            cand = root - fraction * step
            cand[2] = np.minimum(np.maximum(cand[2], z_lo), z_hi)
            cand_placed = _project(cand, p, k, var)
            cand_cost = cost_of(cand_placed[5])
            ok = cand_cost <= cost * (1 + 1e-12)
            if ok.all() and not chosen.any():
                new, new_placed, new_cost = cand, cand_placed, cand_cost
                break
            ok &= ~chosen
            new, chosen = np.where(ok, cand, new), chosen | ok
        else:                             # rows of several fractions, or kept: placed again
            new_placed = _project(new, p, k, var)
            new_cost = cost_of(new_placed[5])
        active &= np.abs(new - root).max(0) >= tol
        root, placed, cost = new, new_placed, new_cost
        if not active.any():
            break
    u, v, iz, _, _, t = placed
    return root.T.copy(), _inverse(_normal_equations(inv_var * _cauchy_weight(t), u, v, iz)[0])


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
    u, v = kp[..., 0], kp[..., 1]
    bu, bv = u * p[..., 2] - p[..., 0], v * p[..., 2] - p[..., 1]        # right-hand sides (P, J)
    # A joint's two rows [1, 0, -u] and [0, 1, -v] share one weight, so A^T W A and A^T W b are
    # weighted sums over joints of these per-joint terms: one (7, P, J) x (J,) product a pass
    terms = np.array([np.ones_like(u), u, v, u * u + v * v, bu, bv, u * bu + v * bv])
    ones = np.ones(kp.shape[1])
    var = (sig * 3.0) ** 2 + 1e-12  # of each of the joint's rows; the first depth only sets the relative weights
    w = 1.0 / var
    for i in range(n_iter):
        s1, su, sv, suv, sbu, sbv, subv = (terms * w) @ ones
        s1, suv = s1 + 1e-9, suv + 1e-9                                   # ridge: never singular
        # the normal equations  s1 X - su Z = sbu,  s1 Y - sv Z = sbv,  -su X - sv Y + suv Z = -subv
        # solved for Z first (X and Y follow from the first two)
        Z = ((su * sbu + sv * sbv) / s1 - subv) / (suv - (su * su + sv * sv) / s1)
        X, Y, Z = (sbu + su * Z) / s1, (sbv + sv * Z) / s1, np.maximum(Z, MIN_DEPTH)
        if i == n_iter - 1:
            break
        # the robust weights from this pass's residuals in this pass's units, the variances
        # from the new depths
        ru, rv = X[:, None] - u * Z[:, None] - bu, Y[:, None] - v * Z[:, None] - bv
        robust = _cauchy_weight(_robust_t(ru * ru + rv * rv, var))
        var = (sig * np.maximum(Z[:, None] + p[..., 2], MIN_DEPTH)) ** 2 + 1e-12
        w = robust / var
    return np.stack([X, Y, Z], -1)


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
