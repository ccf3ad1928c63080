"""Human3.6M in the VideoPose3D preprocessed format, in the dict layout of a
fixed-camera sequence (data/sequence.make_sequence) plus clip and seq.

Files (VideoPose3D `prepare_data_h36m.py` output; H3.6M itself must be obtained from its
authors, it cannot be shipped):
  * data_3d_h36m.npz: `positions_3d` = {subject: {action: (F, 32, 3) float}} world coordinates
    in metres (Z up), 50 fps, the 32-joint H3.6M skeleton. 17 joints are kept (H3.6M_17_FROM_32),
    which is exactly the project's H36M_JOINTS order.
  * data_2d_h36m_<detector>.npz (e.g. cpn_ft_h36m_dbb): `positions_2d` = {subject: {action: [4 x
    (F, 17, 2) pixels]}} one array per camera in CAMERAS order, and `metadata` (layout_name,
    num_joints, keypoints_symmetry). 2D tracks may be a few frames longer than the mocap; they
    are cut to the mocap length as VideoPose3D does.
Cameras: the public calibration of the 4 H3.6M cameras (intrinsics shared by all subjects,
extrinsics per subject: orientation quaternion (w, x, y, z) camera->world, translation = camera
centre in world millimetres); x_cam = R(q)^T (x_world - t). Lens distortion is ignored (the
lifter works on pinhole-normalised coordinates; H3.6M's distortion is mild near the centre).
Standard protocol split: train S1 S5 S6 S7 S8, test S9 S11.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from diffpose_ros import camera, paths
from diffpose_ros.data.noise import NoiseConfig, apply_noise
from diffpose_ros.skeleton import ROOT

H36M_17_FROM_32 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
H36M_DIR = Path(os.environ.get("DIFFPOSE_H36M_DIR", paths.SHARED_DATA / "h36m"))
FPS = 50

# (id, fx, fy, cx, cy, width, height) of the 4 cameras, in the order of positions_2d lists
CAMERAS = (
    ("54138969", 1145.0494384765625, 1143.7811279296875, 512.54150390625, 515.4514770507812, 1000, 1002),
    ("55011271", 1149.6756591796875, 1147.5916748046875, 508.8486328125, 508.0649108886719, 1000, 1000),
    ("58860488", 1149.1407470703125, 1148.7989501953125, 519.8158569335938, 501.40264892578125, 1000, 1000),
    ("60457274", 1145.5113525390625, 1144.77392578125, 514.9682006835938, 501.88201904296875, 1000, 1002),
)

# subject -> 4 x (orientation quaternion (w, x, y, z), camera centre in world mm)
EXTRINSICS = {
    "S1": (((0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088), (1841.1070556640625, 4955.28466796875, 1563.4454345703125)),
           ((0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205), (1761.278564453125, -5078.0068359375, 1606.2650146484375)),
           ((0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696), (-1846.7777099609375, 5215.04638671875, 1491.972412109375)),
           ((0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435), (-1794.7896728515625, -3722.698974609375, 1574.8927001953125))),
    "S5": (((0.1467377245426178, -0.162370964884758, -0.7551892995834351, 0.6178938746452332), (2097.3916015625, 4880.94482421875, 1605.732421875)),
           ((0.6159758567810059, -0.7626792192459106, -0.15728192031383514, 0.1189815029501915), (2031.7008056640625, -5167.93310546875, 1612.923095703125)),
           ((0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576), (-1620.5948486328125, 5171.65869140625, 1496.43701171875)),
           ((0.5920479893684387, -0.7814217805862427, 0.1274748593568802, -0.15036417543888092), (-1637.1737060546875, -3867.3173828125, 1547.033203125))),
    "S6": (((0.1337897777557373, -0.15692396461963654, -0.7571090459823608, 0.6198879480361938), (1935.4517822265625, 4950.24560546875, 1618.0838623046875)),
           ((0.6147197484970093, -0.7628812789916992, -0.16174767911434174, 0.11819244921207428), (1969.803955078125, -5128.73876953125, 1632.77880859375)),
           ((0.1529948115348816, -0.13529130816459656, 0.7646096348762512, -0.6112781167030334), (-1769.596435546875, 5185.361328125, 1476.993408203125)),
           ((0.5916101336479187, -0.7804774045944214, 0.12832270562648773, -0.1561593860387802), (-1721.668701171875, -3884.13134765625, 1540.4879150390625))),
    "S7": (((0.1435241848230362, -0.1631336808204651, -0.7548328638076782, 0.6188824772834778), (1974.512939453125, 4926.3544921875, 1597.8326416015625)),
           ((0.6141672730445862, -0.7638262510299683, -0.1596645563840866, 0.1177929937839508), (1937.0584716796875, -5119.7900390625, 1631.5665283203125)),
           ((0.14550060033798218, -0.12874816358089447, 0.7660516500473022, -0.6127139329910278), (-1741.8111572265625, 5208.24951171875, 1464.8245849609375)),
           ((0.5912848114967346, -0.7821764349937439, 0.12445473670959473, -0.15196487307548523), (-1734.7105712890625, -3832.42138671875, 1548.5830078125))),
    "S8": (((0.14110587537288666, -0.15589867532253265, -0.7561917304992676, 0.619644045829773), (2150.65185546875, 4896.1611328125, 1611.9046630859375)),
           ((0.6169601678848267, -0.7647668123245239, -0.14846350252628326, 0.11158157885074615), (2219.965576171875, -5148.453125, 1613.0440673828125)),
           ((0.1471444070339203, -0.13377119600772858, 0.7670128345489502, -0.6100369691848755), (-1571.2215576171875, 5137.0185546875, 1498.1761474609375)),
           ((0.5927824378013611, -0.7825870513916016, 0.12147816270589828, -0.14631995558738708), (-1476.913330078125, -3896.7412109375, 1547.97216796875))),
    "S9": (((0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243), (2044.45849609375, 4935.1171875, 1481.2275390625)),
           ((0.618784487247467, -0.7634735107421875, -0.14132238924503326, 0.11933968216180801), (1990.959716796875, -5123.810546875, 1568.8048095703125)),
           ((0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915), (-1670.9921875, 5211.98583984375, 1528.387939453125)),
           ((0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822), (-1696.04345703125, -3827.099853515625, 1591.4127197265625))),
    "S11": (((0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467), (2098.440185546875, 4926.5546875, 1500.278564453125)),
            ((0.6189449429512024, -0.7600917220115662, -0.15300633013248444, 0.1255258321762085), (2083.182373046875, -4912.1728515625, 1561.07861328125)),
            ((0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407), (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
            ((0.5894251465797424, -0.7818877100944519, 0.13991211354732513, -0.14715361595153809), (-1590.738037109375, -3854.1689453125, 1578.017578125))),
}


def quat_to_matrix(q):
    """Rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def camera_params(subject: str, cam: int):
    """(R world->camera (3,3), t (3,) metres, K (3,3), image_size (2,) = (w, h)) of one H3.6M camera."""
    if subject not in EXTRINSICS:
        raise ValueError(f"no calibration for subject {subject!r}; known: {sorted(EXTRINSICS)}")
    if not 0 <= cam < len(CAMERAS):
        raise ValueError(f"camera index must be 0-3, got {cam}")
    q, centre_mm = EXTRINSICS[subject][cam]
    R = quat_to_matrix(q).T                    # quaternion is camera->world
    t = -R @ (np.asarray(centre_mm) / 1000.0)
    _, fx, fy, cx, cy, w, h = CAMERAS[cam]
    return R, t, camera.intrinsics(fx, fy, cx, cy), np.array([w, h], np.float64)


def _load_dict(path, key):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (VideoPose3D-format Human3.6M file)")
    with np.load(path, allow_pickle=True) as z:
        if key not in z.files:
            raise ValueError(f"{path}: missing array {key!r} (has {z.files})")
        return z[key].item()


def load_positions_3d(path) -> dict:
    """{subject: {action: (F, 17, 3) float64}} world metres (Z up, 50 fps) from data_3d_h36m.npz."""
    pos3d = _load_dict(path, "positions_3d")
    out = {}
    for subject, actions in pos3d.items():
        out[subject] = {}
        for action, world in actions.items():
            world = np.asarray(world, np.float64)
            if world.ndim != 3 or world.shape[1:] not in ((32, 3), (17, 3)):
                raise ValueError(f"{path}: {subject}/{action}: expected (F, 32, 3) positions, got {world.shape}")
            out[subject][action] = world[:, list(H36M_17_FROM_32)] if world.shape[1] == 32 else world
    return out


def load_h36m(split: str = "test", path_3d=None, path_2d=None, stride: int = 1,
              noise: NoiseConfig | None = None, seed: int = 0, subjects=None) -> dict:
    """Human3.6M samples with the keys of sequence.make_sequence, plus clip and seq.

    With `path_2d` the 2D keypoints are the file's detections (conf = 1: the VideoPose3D files
    carry no scores) and keypoints_clean the ground-truth projection; without it the 2D input is
    the ground-truth projection plus `noise` (NoiseConfig; pass NoiseConfig(enabled=False) for
    clean input). seq = clip * 4 + camera.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    subjects = tuple(subjects) if subjects else (TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS)
    pos3d = load_positions_3d(path_3d or H36M_DIR / "data_3d_h36m.npz")
    pos2d = _load_dict(path_2d, "positions_2d") if path_2d else None
    rng = np.random.default_rng(seed)
    parts, names = [], []
    for subject in subjects:
        if subject not in pos3d:
            raise ValueError(f"subject {subject!r} not in 3D file (has {sorted(pos3d)})")
        for action in sorted(pos3d[subject]):
            world = pos3d[subject][action]
            ci = len(names)
            names.append(f"{subject}/{action}")
            for cam in range(len(CAMERAS)):
                R, t, K, size = camera_params(subject, cam)
                frames = np.arange(0, len(world), stride)
                if pos2d is not None:
                    try:
                        det = np.asarray(pos2d[subject][action][cam], np.float64)
                    except (KeyError, IndexError):
                        raise ValueError(f"2D file has no track for {subject}/{action} camera {cam}") from None
                    frames = frames[frames < len(det)]
                if len(frames) == 0:
                    continue
                p_cam = camera.world_to_camera(world[frames], R, t)
                px = camera.project(p_cam, K)
                front = camera.in_front(p_cam)
                visible = front & camera.in_image(px, size)
                if pos2d is not None:
                    noisy, conf = det[frames], np.ones(visible.shape)
                else:
                    noisy, conf, _, _ = apply_noise(rng, px, visible, front, size, noise or NoiseConfig())
                n = len(frames)
                parts.append({
                    "keypoints": camera.normalize(noisy, K), "keypoints_clean": camera.normalize(px, K),
                    "conf": conf, "visible": visible, "keypoints_px": noisy,
                    "pose3d": p_cam - p_cam[:, ROOT:ROOT + 1], "root": p_cam[:, ROOT],
                    "K": np.broadcast_to(K, (n, 3, 3)), "image_size": np.broadcast_to(size, (n, 2)),
                    "clip": np.full(n, ci), "seq": np.full(n, ci * len(CAMERAS) + cam), "frame": frames,
                })
    if not parts:
        raise ValueError(f"no Human3.6M samples for subjects {subjects}")
    out = {}
    for k in parts[0]:
        arr = np.concatenate([p[k] for p in parts])
        out[k] = arr if arr.dtype == bool else arr.astype(np.int32 if k in ("clip", "seq", "frame") else np.float32)
    out["clip_names"] = np.array(names)
    return out
