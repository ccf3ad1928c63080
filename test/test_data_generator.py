"""PairGenerator on real shared clips: layout, geometry, ranges, bodies, mirroring, fixed sets."""
import numpy as np
import pytest

from diffpose_ros import camera, paths
from diffpose_ros.data import body as body_mod
from diffpose_ros.data.body import BodyConfig
from diffpose_ros.data.generator import MIN_VISIBLE_JOINTS, PairGenerator
from diffpose_ros.data.motion import MotionBank
from diffpose_ros.data.virtual_camera import CameraConfig
from diffpose_ros.skeleton import H36M_FLIP, H36M_JOINTS

J = {n: i for i, n in enumerate(H36M_JOINTS)}
needs_data = pytest.mark.skipif(not (paths.MOCAP_DIR / "bandai-namco-1").is_dir(), reason="shared mocap data not found")


@pytest.fixture(scope="module")
def bank(module_cache):
    return MotionBank.load(["shared:sources=bandai-namco-1,cmu-mb-fairmotion"], fps=10.0, progress=False)


def camera_geometry(d):
    """Camera centre height above the floor, horizontal distance to the pelvis, tilt, hfov."""
    R, t = d["cam_R"].astype(np.float64), d["cam_t"].astype(np.float64)
    centre = -np.einsum("nji,nj->ni", R, t)
    pelvis = np.einsum("nji,nj->ni", R, d["root"] - t)
    dist = np.hypot(*(centre - pelvis)[:, [0, 2]].T)
    tilt = -np.degrees(np.arcsin(R[:, 2, 1]))            # optical axis below the horizon
    hfov = np.degrees(2 * np.arctan(d["image_size"][:, 0] / (2 * d["K"][:, 0, 0])))
    return centre[:, 1], dist, tilt, hfov


@needs_data
@pytest.mark.parametrize("window", [1, 5])
def test_layout_and_projection(bank, window):
    gen = PairGenerator(bank, window=window)
    d = gen.sample(np.random.default_rng(0), 300)
    n = 300
    lead = (n, window) if window > 1 else (n,)
    assert d["inputs"].shape == lead + (17, 3) and d["inputs"].dtype == np.float32
    for k, shp in {"keypoints": (n, 17, 2), "keypoints_clean": (n, 17, 2), "keypoints_px": (n, 17, 2),
                   "conf": (n, 17), "visible": (n, 17), "pose3d": (n, 17, 3), "root": (n, 3),
                   "K": (n, 3, 3), "image_size": (n, 2), "body_scale": (n,), "height_m": (n,), "clip": (n,),
                   "frame": (n,), "mirrored": (n,)}.items():
        assert d[k].shape == shp, k
    newest = d["inputs"][:, -1] if window > 1 else d["inputs"]
    np.testing.assert_array_equal(newest[..., :2], d["keypoints"])
    np.testing.assert_array_equal(newest[..., 2], d["conf"])
    assert d["conf"].min() >= 0 and d["conf"].max() <= 1
    np.testing.assert_allclose(d["pose3d"][:, 0], 0, atol=1e-6)
    # clean keypoints are the pinhole projection of pose3d + root; pixels and normalised agree
    p = d["pose3d"].astype(np.float64) + d["root"][:, None]
    vis = d["visible"]
    np.testing.assert_allclose(d["keypoints_clean"][vis], (p[..., :2] / p[..., 2:])[vis], atol=1e-4)
    np.testing.assert_allclose(camera.normalize(d["keypoints_px"], d["K"]), d["keypoints"], atol=1e-4)
    # every sample: pelvis in front, enough joints inside the image
    assert np.all(d["root"][:, 2] > 0.3) and np.all(vis.sum(1) >= MIN_VISIBLE_JOINTS)
    assert np.all(vis == (camera.in_image(camera.denormalize(d["keypoints_clean"], d["K"]), d["image_size"])
                          & (p[..., 2] > 1e-3)))
    # the 3D pose is the camera-frame view of the world pose: the world floor is below the feet
    R, t = d["cam_R"].astype(np.float64), d["cam_t"].astype(np.float64)
    world = np.einsum("nji,nkj->nki", R, p - t[:, None])
    floor = bank.floor[d["clip"]]
    assert np.all(world[..., 1].min(1) > floor - 0.02)


@needs_data
def test_camera_and_body_ranges(bank):
    cfg = CameraConfig()
    gen = PairGenerator(bank)
    d = gen.sample(np.random.default_rng(1), 2000)
    height, dist, tilt, hfov = camera_geometry(d)
    floor = bank.floor[d["clip"]]
    cam_h = height - floor
    np.testing.assert_allclose(cam_h, d["cam_height"], atol=1e-3)
    np.testing.assert_allclose(dist, d["cam_distance"], atol=1e-3)
    np.testing.assert_allclose(tilt, d["cam_tilt_deg"], atol=0.05)
    assert cfg.height_range[0] - 1e-3 <= cam_h.min() and cam_h.max() <= cfg.height_range[1] + 1e-3
    assert cfg.distance_range[0] - 1e-3 <= dist.min() and dist.max() <= cfg.distance_range[1] + 1e-3
    assert cfg.tilt_range[0] - 0.1 <= tilt.min() and tilt.max() <= cfg.tilt_range[1] + 0.1
    assert cfg.hfov_range[0] - 0.01 <= hfov.min() and hfov.max() <= cfg.hfov_range[1] + 0.01
    # the ranges are used, not just respected
    assert cam_h.max() - cam_h.min() > 2.3 and dist.max() > 8 and tilt.max() > 35 and hfov.min() < 45
    assert {tuple(s) for s in d["image_size"].astype(int).tolist()} == set(cfg.image_sizes)
    # truncated people occur: some samples have joints outside the image
    assert 0.05 < np.mean(d["visible"].sum(1) < 17) < 0.6
    lo, hi = BodyConfig().height_range
    assert d["height_m"].min() >= lo and d["height_m"].max() <= hi
    assert 1.66 < np.median(d["height_m"]) < 1.74 and d["height_m"].std() > 0.06
    assert 0.4 < d["mirrored"].mean() < 0.6


@needs_data
def test_body_scaling_is_exact_and_keeps_feet_on_the_floor(bank):
    rng = np.random.default_rng(2)
    c = int(np.flatnonzero(bank.meta["action"] == "walk")[0])
    x = bank.clip(c)[None].astype(np.float64)
    floor = bank.floor[[c]]
    parts = {k: bank.stats[k][[c]] for k in ("ankle_height", "shin", "thigh", "spine", "thorax_to_head")}
    # uniform scale: every bone and every height above the floor scales exactly
    f, s, h = body_mod.uniform_bodies(parts, 1.15)
    y = body_mod.apply_body(x, floor, f)
    bone = lambda a, i, j: np.linalg.norm(a[..., i, :] - a[..., j, :], axis=-1)   # noqa: E731
    np.testing.assert_allclose(bone(y, J["l_knee"], J["l_ankle"]), 1.15 * bone(x, J["l_knee"], J["l_ankle"]), rtol=1e-9)
    np.testing.assert_allclose(y[..., 1] - floor, 1.15 * (x[..., 1] - floor), atol=1e-9)
    np.testing.assert_allclose(h, 1.15 * bank.stats["stature"][c], rtol=1e-9)
    # random bodies: the drawn height is what the body measures; the lowest joint keeps its height
    for _ in range(5):
        f, s, h = body_mod.draw_bodies(rng, parts, BodyConfig())
        y = body_mod.apply_body(x, floor, f)
        st = body_mod.skeleton_stats(y[0], floor[0])
        assert st["stature"] == pytest.approx(h[0], rel=0.01)
        np.testing.assert_allclose(y[0, :, :, 1].min(1) - floor, s[0] * (x[0, :, :, 1].min(1) - floor), atol=1e-9)
        # left/right symmetric up to the small asymmetric part
        assert st["thigh"] == pytest.approx(body_mod.skeleton_stats(x[0], floor[0])["thigh"] * f[0, J["l_knee"]] / 1, rel=0.05)
        ratio_l = f[0, J["l_knee"]] / f[0, J["r_knee"]]
        assert abs(ratio_l - 1) < 0.06
        np.testing.assert_allclose(f[0, J["l_hip"]], f[0, J["r_hip"]])
        np.testing.assert_allclose(f[0, J["l_shoulder"]], f[0, J["r_shoulder"]])


@needs_data
def test_mirroring_swaps_sides_and_keeps_handedness(bank):
    c = int(np.flatnonzero(bank.meta["action"] == "walk")[0])
    x = bank.clip(c).astype(np.float64)
    m = body_mod.mirror_world(x)
    np.testing.assert_allclose(body_mod.mirror_world(m), x)
    np.testing.assert_allclose(m[:, J["l_wrist"], 0], -x[:, J["r_wrist"], 0])
    np.testing.assert_allclose(m[:, J["l_wrist"], 1:], x[:, J["r_wrist"], 1:])

    def facing_agrees_with_walking(a):
        left = a[:, J["l_hip"]] - a[:, J["r_hip"]]
        up = a[:, J["thorax"]] - a[:, J["pelvis"]]
        forward = np.cross(left, up)                       # right-handed, Y up: left x up = forward
        vel = np.gradient(a[:, J["pelvis"]], axis=0)
        return np.mean(np.sum(forward[:, [0, 2]] * vel[:, [0, 2]], axis=1) > 0)

    assert facing_agrees_with_walking(x) > 0.9
    assert facing_agrees_with_walking(m) > 0.9             # a mirrored person still faces where it walks
    assert list(H36M_FLIP[:4]) == [0, 4, 5, 6]
    # the generator's gather does the same
    idx = np.array([[0, 1, 2], [3, 4, 5]])
    g = body_mod.gather_mirrored(x, idx, np.array([True, False]))
    np.testing.assert_allclose(g[0], m[[0, 1, 2]])
    np.testing.assert_allclose(g[1], x[[3, 4, 5]])


@needs_data
def test_fixed_set_deterministic_cached_and_scaled(bank, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path))
    clips = np.arange(6)
    gen = PairGenerator(bank, clips, window=3)
    a = gen.fixed_set(seed=0, n_per_clip=8)
    assert len(list((tmp_path / "fixed_sets").glob("*.npz"))) == 1
    b = gen.fixed_set(seed=0, n_per_clip=8)
    c = gen.fixed_set(seed=0, n_per_clip=8, cache=False)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], c[k])
    assert set(np.unique(a["clip"])) == set(clips) and not a["mirrored"].any()
    # a clip's samples do not depend on the other clips in the set
    one = PairGenerator(bank, [3], window=3).fixed_set(seed=0, n_per_clip=8, cache=False)
    np.testing.assert_array_equal(one["inputs"], a["inputs"][a["clip"] == 3])
    # scale: the clip's own skeleton, scaled about the floor
    big = gen.fixed_set(seed=0, n_per_clip=8, scale=1.15, cache=False)
    np.testing.assert_allclose(big["height_m"], 1.15 * bank.stats["stature"][big["clip"]], rtol=1e-5)
    np.testing.assert_allclose(a["height_m"], bank.stats["stature"][a["clip"]], rtol=1e-5)
    thigh = lambda d: np.linalg.norm(d["pose3d"][:, J["l_knee"]] - d["pose3d"][:, J["l_hip"]], axis=-1)  # noqa: E731
    np.testing.assert_allclose(np.median(thigh(big)), 1.15 * np.median(thigh(a)), rtol=1e-3)
    e = gen.fixed_set(seed=1, n_per_clip=8, cache=False)
    assert not np.array_equal(e["K"], a["K"])


@needs_data
def test_source_weights_and_errors(bank):
    gen = PairGenerator(bank, source_weights={"cmu-mb-fairmotion": 0.0})
    d = gen.sample(np.random.default_rng(3), 500)
    assert "cmu-mb-fairmotion" not in {gen.source_names[i] for i in np.unique(d["source"])}
    heavy = PairGenerator(bank, source_weights={"cmu-mb-fairmotion": 50.0}).sample(np.random.default_rng(3), 500)
    share = np.mean(np.array(gen.source_names)[heavy["source"]] == "cmu-mb-fairmotion")
    frames = bank.length[bank.indices(source="cmu-mb-fairmotion")].sum()
    expect = 50 * frames / (50 * frames + bank.num_frames - frames)
    assert abs(share - expect) < 0.08
    with pytest.raises(ValueError, match="unknown sources"):
        PairGenerator(bank, source_weights={"nope": 1.0})
    with pytest.raises(ValueError, match="window"):
        PairGenerator(bank, window=0)
    with pytest.raises(ValueError, match="clip indices"):
        PairGenerator(bank, [len(bank)])
