"""Absolute placement: the root (pelvis) position in the camera frame from the 2D keypoints, their
uncertainties and the root-relative 3D pose, by weighted least squares on the reprojection.

A joint j with root-relative position p_j = (x_j, y_j, z_j) and root T = (X, Y, Z) projects to the
normalised image point (u_j, v_j) = ((X + x_j)/(Z + z_j), (Y + y_j)/(Z + z_j)). Multiplying out,
the equations are LINEAR in T:
    X - u_j Z = u_j z_j - x_j
    Y - v_j Z = v_j z_j - y_j
Each row's error is sigma_u,j (Z + z_j) (2D noise scaled by depth) plus the pose error terms
(x_j - u_j z_j); we weight rows by the inverse of that variance (re-estimated with the current Z,
a few fixed iterations) and take cov(T) = (A^T W A)^-1 from the normal equations.
Caveat: pose errors are treated as independent between joints, so a systematic size error of the
pose (e.g. a person much smaller than the training skeleton) is not in cov(T).
"""
import numpy as np

from diffpose_ros.camera import normalize as normalise_px  # noqa: F401  (pixels -> normalised: one formula, in camera.py)

MIN_DEPTH = 0.1  # metres; a person cannot be closer than this to the camera centre


def place_root(kp_norm, sigma_norm, pose_rel, cov_rel=None, n_iter: int = 3):
    """Weighted least-squares root translation.

    kp_norm (P,J,2) normalised 2D keypoints; sigma_norm (P,J) per-axis 2D std (normalised units);
    pose_rel (P,J,3) root-relative pose (m); cov_rel (P,J,3,3) its covariance or None.
    Returns root (P,3) and root_cov (P,3,3).
    """
    kp = np.asarray(kp_norm, np.float64)
    sig = np.asarray(sigma_norm, np.float64)
    p = np.asarray(pose_rel, np.float64)
    if kp.ndim != 3 or kp.shape[-1] != 2 or p.shape != kp.shape[:2] + (3,) or sig.shape != kp.shape[:2]:
        raise ValueError(f"place_root: bad shapes kp {kp.shape}, sigma {sig.shape}, pose {p.shape}")
    P, J = kp.shape[:2]
    u, v = kp[..., 0], kp[..., 1]
    # A rows interleaved (u-row, v-row) per joint: (P, 2J, 3)
    A = np.zeros((P, J, 2, 3))
    A[:, :, 0, 0] = 1.0
    A[:, :, 0, 2] = -u
    A[:, :, 1, 1] = 1.0
    A[:, :, 1, 2] = -v
    b = np.stack([u * p[..., 2] - p[..., 0], v * p[..., 2] - p[..., 1]], -1)  # (P, J, 2)
    if cov_rel is not None:
        c = np.asarray(cov_rel, np.float64)
        # var(x_j - u z_j) etc. from the pose covariance
        pose_var = np.stack([
            c[..., 0, 0] + u * u * c[..., 2, 2] - 2 * u * c[..., 0, 2],
            c[..., 1, 1] + v * v * c[..., 2, 2] - 2 * v * c[..., 1, 2]], -1)
    else:
        pose_var = np.zeros((P, J, 2))
    A, b = A.reshape(P, 2 * J, 3), b.reshape(P, 2 * J)
    depth = np.full((P, J), 3.0)  # initial guess only sets the relative weights
    for _ in range(n_iter):
        var = (sig * depth)[..., None] ** 2 + pose_var + 1e-12  # (P, J, 2)
        w = 1.0 / var.reshape(P, 2 * J)
        ata = np.einsum("pri,pr,prj->pij", A, w, A) + 1e-9 * np.eye(3)
        atb = np.einsum("pri,pr,pr->pi", A, w, b)
        root = np.linalg.solve(ata, atb[..., None])[..., 0]
        root[:, 2] = np.maximum(root[:, 2], MIN_DEPTH)
        depth = np.maximum(root[:, None, 2] + p[..., 2], MIN_DEPTH)
    cov = np.linalg.inv(ata)
    return root, 0.5 * (cov + np.swapaxes(cov, -1, -2))
