"""Pictures of people in 2D and 3D (ROS-free): the node's debug image, the demo's frames, docs.

3D views use the camera's optical frame turned upright: x right, z (depth) forward, -y up.
"""
from __future__ import annotations

import cv2
import numpy as np

from .lifter.metrics import CHI2_3DOF_90  # the drawn ellipsoids are the 90 % ones
from .people import Person3D
from .skeleton import H36M_BONES, H36M_LEFT

_PALETTE = [(66, 135, 245), (245, 130, 48), (60, 180, 75), (230, 25, 75), (145, 30, 180), (70, 240, 240)]


def track_color(track_id: int) -> tuple[int, int, int]:
    return _PALETTE[track_id % len(_PALETTE)]


def draw_people_2d(image: np.ndarray, people: list[Person3D]) -> np.ndarray:
    """BGR copy of `image` with each person's H36M keypoints, bones, box and id."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    scale = max(out.shape[:2]) / 640.0
    for person in people:
        color = track_color(person.track_id)
        kp = np.asarray(person.keypoints_2d)
        for p, c in H36M_BONES:
            cv2.line(out, tuple(np.round(kp[p]).astype(int)), tuple(np.round(kp[c]).astype(int)),
                     color, max(1, int(2 * scale)), cv2.LINE_AA)
        for j, (u, v) in enumerate(kp):
            conf = float(person.keypoint_conf[j])
            jc = (0, int(255 * conf), int(255 * (1 - conf)))     # green = confident, red = not
            cv2.circle(out, (int(round(u)), int(round(v))), max(2, int(3 * scale)), jc, -1, cv2.LINE_AA)
        x0, y0 = int(person.box[0]), int(person.box[1])
        if np.any(person.box):
            cv2.rectangle(out, (x0, y0), (int(person.box[2]), int(person.box[3])), color, 1)
        label = f"id {person.track_id}  z={person.root[2]:.1f}m" + ("" if person.reliable else " (unreliable)")
        cv2.putText(out, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, color,
                    max(1, int(scale)), cv2.LINE_AA)
    return out


def _upright(p: np.ndarray) -> np.ndarray:
    """camera optical (x right, y down, z forward) -> plot axes (x right, depth, up)."""
    p = np.asarray(p)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def ellipsoid_mesh(mean: np.ndarray, cov: np.ndarray, chi2: float = CHI2_3DOF_90, n: int = 10):
    """Surface points of the chi2-level ellipsoid of a 3x3 covariance (camera frame)."""
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    radii = np.sqrt(chi2 * np.clip(w, 0, None))
    u, t = np.meshgrid(np.linspace(0, 2 * np.pi, n), np.linspace(0, np.pi, n // 2 + 1))
    sphere = np.stack([np.cos(u) * np.sin(t), np.sin(u) * np.sin(t), np.cos(t)], axis=-1)
    return mean + (sphere * radii) @ v.T


def plot_people_3d(ax, people: list[Person3D], ellipsoids: bool = True):
    """Skeletons and 90 % ellipsoids on a matplotlib 3D axis."""
    for person in people:
        color = np.array(track_color(person.track_id)[::-1]) / 255.0
        P = _upright(person.positions)
        for p, c in H36M_BONES:
            style = "-" if c not in H36M_LEFT else "--"
            ax.plot(*zip(P[p], P[c]), style, color=color, lw=2)
        ax.scatter(*P.T, color=color, s=8)
        if ellipsoids:
            for j in range(len(P)):
                E = _upright(ellipsoid_mesh(person.positions[j], person.covariance[j]))
                ax.plot_wireframe(E[..., 0], E[..., 1], E[..., 2], color=color, alpha=0.15, lw=0.5)
    ax.set_xlabel("x [m]"); ax.set_ylabel("depth z [m]"); ax.set_zlabel("up [m]")
    if people:
        allp = np.concatenate([_upright(p.positions) for p in people])
        centre = allp.mean(axis=0)
        half = max(1.0, np.ptp(allp, axis=0).max() / 2 + 0.3)
        for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
            setter(c - half, c + half)
    ax.view_init(elev=15, azim=-70)


def plot_top_down(ax, people: list[Person3D]):
    """Bird's-eye view (x, depth) with the 90 % ellipse of each person's root: what a planner sees."""
    from matplotlib.patches import Ellipse
    chi2_2d_90 = 4.605170185988092
    ax.plot(0, 0, "k^", ms=10)
    for person in people:
        color = np.array(track_color(person.track_id)[::-1]) / 255.0
        P = person.positions
        for p, c in H36M_BONES:
            ax.plot([P[p, 0], P[c, 0]], [P[p, 2], P[c, 2]], color=color, lw=1.5)
        cov = person.root_covariance[np.ix_([0, 2], [0, 2])]
        w, v = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(v[1, 1], v[0, 1]))
        width, height = 2 * np.sqrt(chi2_2d_90 * np.clip(w[::-1], 0, None))
        ax.add_patch(Ellipse((person.root[0], person.root[2]), width, height, angle=angle,
                             fc=(*color, 0.2), ec=color))
        ax.annotate(f"id {person.track_id}", (person.root[0], person.root[2]), color=color)
    ax.set_xlabel("x [m]"); ax.set_ylabel("depth z [m]"); ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.set_title("top view, root 90 % ellipses")


def render_frame(image: np.ndarray, people: list[Person3D], path, title: str = ""):
    """One PNG: 2D overlay | 3D skeletons with ellipsoids | top view."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(16, 5.2))
    ax0 = fig.add_subplot(1, 3, 1)
    ax0.imshow(cv2.cvtColor(draw_people_2d(image, people), cv2.COLOR_BGR2RGB))
    ax0.set_axis_off()
    ax0.set_title(title or f"{len(people)} people")
    plot_people_3d(fig.add_subplot(1, 3, 2, projection="3d"), people)
    plot_top_down(fig.add_subplot(1, 3, 3), people)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
