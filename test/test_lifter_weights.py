"""Shipped weights, the high-level Lifter and the diffpose-lift tool."""
import numpy as np
import pytest

from diffpose_ros.lifter.lifter import Lifter
from diffpose_ros.paths import WEIGHTS_DIR
from diffpose_ros.tools import lift as lift_tool

K = np.array([[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]])

# a standing person facing the camera (camera frame: x right, y down, z forward), metres
STANDING = np.array([
    [0, 0, 0], [-0.13, 0, 0], [-0.13, 0.45, 0.02], [-0.13, 0.88, 0.05], [0.13, 0, 0], [0.13, 0.45, 0.02],
    [0.13, 0.88, 0.05], [0, -0.25, 0], [0, -0.5, 0], [0, -0.6, -0.05], [0, -0.75, 0],
    [0.18, -0.5, 0], [0.22, -0.22, 0], [0.24, 0.03, -0.03], [-0.18, -0.5, 0], [-0.22, -0.22, 0],
    [-0.24, 0.03, -0.03]])


def project(pose_rel, root):
    cam = pose_rel + root
    return np.stack([K[0, 0] * cam[..., 0] / cam[..., 2] + K[0, 2],
                     K[1, 1] * cam[..., 1] / cam[..., 2] + K[1, 2]], -1)


@pytest.mark.parametrize("name", ["frame", "temporal"])
def test_shipped_weights_lift_standing_person(name):
    wdir = WEIGHTS_DIR / name
    for f in ("config.json", "model.pt", "gmm.npz", "calibration.json"):
        assert (wdir / f).is_file(), f"shipped weights incomplete: {wdir / f}"
    lifter = Lifter(wdir, steps=5, n_hyp=5, seed=0)
    root = np.array([0.2, 0.1, 3.5])
    px = project(STANDING, root)[None]
    r = lifter.lift(px, np.full((1, 17), 0.9), K)
    for arr in (r.positions, r.covariance, r.hypotheses, r.root, r.root_cov):
        assert np.isfinite(arr).all()
    assert r.hypotheses.shape == (1, 5, 17, 3)
    assert np.all(np.linalg.eigvalsh(r.covariance) > 0)
    # a plausible reconstruction: root depth within 25 %, pose error below 15 cm
    assert abs(r.root[0, 2] - 3.5) < 0.25 * 3.5
    assert np.linalg.norm(r.positions_rel[0] - STANDING, axis=-1).mean() < 0.15
    # the absolute covariance includes the root uncertainty, mostly along the viewing ray (depth):
    # every joint is less sure in absolute depth than relative to the root. (Sideways a joint may
    # be surer absolutely: a larger hypothesis is placed further away, which cancels in the image.)
    var_abs, var_rel = (np.diagonal(c, axis1=-2, axis2=-1) for c in (r.covariance, r.covariance_rel))
    assert np.all(var_abs[..., 2] > var_rel[..., 2])
    assert np.allclose(r.covariance[0, 0], r.root_cov[0], rtol=1e-6, atol=1e-9)  # the root joint is the root


@pytest.mark.parametrize("name", ["frame", "temporal"])
def test_unfamiliar_pose_widens_the_published_covariance(name):
    """The shipped calibrations carry a pose typicality; the live lifter scores each lifted pose
    with it and widens both covariances by exactly (1 + u/u0)^gamma_u (the same draws lifted
    without the typicality differ by that factor and nothing else); a pose unlike any training
    pose (arms and legs spread flat) scores higher than a standing one."""
    from diffpose_ros.lifter.calibration import PoseTypicality, inflation
    from diffpose_ros.lifter.model_io import load_bundle
    b = load_bundle(WEIGHTS_DIR / name)
    assert "pose_typicality" in b.calibration
    with_u = Lifter(bundle=b, steps=5, n_hyp=5, seed=0)
    entry = with_u.covariance_model
    assert entry.gamma_u > 0
    spread = STANDING.copy()
    spread[[12, 13]] = [[0.5, -0.5, 0], [0.8, -0.5, 0]]
    spread[[15, 16]] = [[-0.5, -0.5, 0], [-0.8, -0.5, 0]]
    spread[[2, 3]] = [[-0.45, 0.3, 0], [-0.75, 0.5, 0]]
    root = np.array([0.0, 0.0, 4.0])
    px = np.stack([project(STANDING, root), project(spread, root)])
    conf = np.full((2, 17), 0.9)
    r = with_u.lift(px, conf, K)
    u = PoseTypicality.from_calibration(b.calibration)(r.positions_rel)
    assert u[1] > u[0]
    b.calibration = {k: v for k, v in b.calibration.items() if k != "pose_typicality"}
    plain = Lifter(bundle=b, steps=5, n_hyp=5, seed=0).lift(px, conf, K)
    factor = inflation(u, entry.u0, entry.gamma_u)[:, None, None, None]
    np.testing.assert_allclose(r.covariance, factor * plain.covariance, rtol=1e-9)
    np.testing.assert_allclose(r.covariance_rel, factor * plain.covariance_rel, rtol=1e-9)
    np.testing.assert_allclose(r.positions, plain.positions, rtol=0, atol=0)


def test_baseline_weights_load():
    import torch
    from diffpose_ros.lifter.baseline import load_baseline
    m = load_baseline(WEIGHTS_DIR / "baseline")
    kp = np.concatenate([project(STANDING, np.array([0, 0, 3.0])), np.full((17, 1), 0.9)], -1)
    kp[:, 0] = (kp[:, 0] - K[0, 2]) / K[0, 0]
    kp[:, 1] = (kp[:, 1] - K[1, 2]) / K[1, 1]
    with torch.no_grad():
        out = m(torch.tensor(kp[None], dtype=torch.float32)).numpy()
    assert np.isfinite(out).all() and np.linalg.norm(out[0] - STANDING, axis=-1).mean() < 0.15


def test_lifter_runner_and_errors():
    calls = []

    def runner(kp, noise, u):
        calls.append((kp.shape, noise.shape, u.shape))
        n = kp.shape[0]
        hyps = np.repeat(STANDING[None, None], noise.shape[1], 1).repeat(n, 0)
        return STANDING[None].repeat(n, 0), np.broadcast_to(np.eye(3) * 1e-3, (n, 17, 3, 3)), hyps

    lifter = Lifter(WEIGHTS_DIR / "frame", n_hyp=3, runner=runner)
    root = np.array([-0.3, 0.2, 4.0])
    r = lifter.lift(project(STANDING, root)[None].repeat(2, 0), np.full((2, 17), 0.8), K)
    assert calls[0] == ((2, 17, 3), (2, 3, 17, 3), (2, 3))
    np.testing.assert_allclose(r.root, np.stack([root, root]), atol=1e-6)  # exact pose -> exact root
    np.testing.assert_allclose(r.positions, np.broadcast_to(STANDING + root, (2, 17, 3)), atol=1e-6)
    assert len(lifter.lift(np.zeros((0, 17, 2)), np.zeros((0, 17)), K)) == 0
    with pytest.raises(ValueError, match="keypoints_px"):
        lifter.lift(np.zeros((1, 16, 2)), np.zeros((1, 16)), K)
    with pytest.raises(ValueError, match="NaN"):
        lifter.lift(np.full((1, 17, 2), np.nan), np.ones((1, 17)), K)
    with pytest.raises(ValueError, match="K"):
        lifter.lift(np.zeros((1, 17, 2)), np.ones((1, 17)), np.eye(2))
    bad = Lifter(WEIGHTS_DIR / "frame", n_hyp=3,
                 runner=lambda kp, n, u: (np.full((len(kp), 17, 3), np.nan),) * 3)
    with pytest.raises(RuntimeError, match="NaN"):
        bad.lift(project(STANDING, root)[None], np.ones((1, 17)), K)


def test_temporal_ring_buffer():
    seen = []

    def runner(kp, noise, u):
        seen.append(kp.copy())
        n = kp.shape[0]
        return (STANDING[None].repeat(n, 0), np.broadcast_to(np.eye(3) * 1e-3, (n, 17, 3, 3)),
                np.repeat(STANDING[None, None], noise.shape[1], 1).repeat(n, 0))

    lifter = Lifter(WEIGHTS_DIR / "temporal", n_hyp=2, runner=runner, forget_after=3)
    T = lifter.window
    px = project(STANDING, np.array([0, 0, 3.0]))
    lifter.lift(px[None], np.full((1, 17), 0.5), K, track_ids=[7])
    assert seen[-1].shape == (1, T, 17, 3) and np.all(seen[-1][0] == seen[-1][0, -1])  # replicate pad
    lifter.lift(px[None] + 10, np.full((1, 17), 0.6), K, track_ids=[7])
    w = seen[-1][0]
    assert np.allclose(w[-1, :, 2], 0.6) and np.allclose(w[:-1, :, 2], 0.5)  # newest last
    for _ in range(3):
        lifter.lift(px[None], np.full((1, 17), 0.7), K, track_ids=[8])
    assert 7 not in lifter._windows  # forgotten after 3 calls unseen
    lifter.lift(px[None], np.full((1, 17), 0.9), K)  # no ids: independent frame
    assert np.allclose(seen[-1][0, :, :, 2], 0.9)
    with pytest.raises(ValueError, match="duplicate"):
        lifter.lift(px[None].repeat(2, 0), np.ones((2, 17)), K, track_ids=[1, 1])


def _write_input(path, **over):
    F = 4
    root = np.array([0.1, 0.0, 3.0])
    data = {"keypoints": np.stack([project(STANDING, root + [0.02 * f, 0, 0]) for f in range(F)]),
            "scores": np.full((F, 17), 0.9), "K": K}
    data.update(over)
    data = {k: v for k, v in data.items() if v is not None}
    np.savez(path, **data)
    return F


@pytest.mark.parametrize("name", ["frame", "temporal"])
def test_lift_tool(tmp_path, name):
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    F = _write_input(inp)
    assert lift_tool.main([str(inp), str(out), "--weights", str(WEIGHTS_DIR / name), "--n-hyp", "4",
                           "--threads", "1"]) == 0
    with np.load(out) as z:
        assert z["poses3d"].shape == (F, 17, 3) and z["covariance"].shape == (F, 17, 3, 3)
        assert z["hypotheses"].shape == (F, 4, 17, 3) and z["poses3d_root_relative"].shape == (F, 17, 3)
        assert np.isfinite(z["poses3d"]).all() and np.isfinite(z["covariance"]).all()
        assert np.all(np.abs(z["poses3d"][:, 0, 2] - 3.0) < 0.75)


def test_lift_tool_temporal_follows_the_stamps_not_the_file_order(tmp_path):
    """The temporal model lifts each track in stamp order (its window is sampled on the stamps):
    the rows of a shuffled file get the same results as in order."""
    F = 6
    root = np.array([0.1, 0.0, 3.0])
    kp = np.stack([project(STANDING, root + [0.05 * f, 0, 0.02 * f]) for f in range(F)])
    data = {"keypoints": kp, "scores": np.full((F, 17), 0.9), "K": K, "track_ids": np.zeros(F, int),
            "stamp": np.arange(F) / 5.0}
    perm = np.array([3, 0, 5, 1, 4, 2])
    outs = []
    for name, rows in (("ordered", np.arange(F)), ("shuffled", perm)):
        inp, out = tmp_path / f"{name}.npz", tmp_path / f"{name}_out.npz"
        np.savez(inp, **{k: (v[rows] if k != "K" else v) for k, v in data.items()})
        assert lift_tool.main([str(inp), str(out), "--weights", str(WEIGHTS_DIR / "temporal"), "--n-hyp", "3",
                               "--threads", "1"]) == 0
        with np.load(out) as z:
            outs.append({k: z[k][np.argsort(rows)] for k in ("poses3d", "covariance", "filtered_root")})
    for k in outs[0]:
        np.testing.assert_array_equal(outs[0][k], outs[1][k])


@pytest.mark.parametrize("over,msg", [
    ({"scores": None}, "missing key 'scores'"),
    ({"K": None}, "missing key 'K'"),
    ({"keypoints": np.zeros((4, 16, 2))}, "'keypoints' must have shape"),
    ({"scores": np.full((4, 17), np.nan)}, "'scores' contains NaN"),
    ({"K": np.eye(4)}, "'K' must have shape"),
    ({"track_ids": np.zeros(3)}, "'track_ids' must have shape"),
    ({"format": np.array("openpose")}, "'format'"),
])
def test_lift_tool_bad_input(tmp_path, capsys, over, msg):
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    _write_input(inp, **over)
    assert lift_tool.main([str(inp), str(out)]) != 0
    assert msg in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_lift_tool_missing_file(tmp_path, capsys):
    assert lift_tool.main([str(tmp_path / "nope.npz"), str(tmp_path / "o.npz")]) != 0
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("over,msg", [
    ({"keypoints": np.full((4, 17, 2), np.inf)}, "'keypoints'"),
    ({"keypoints": np.zeros((0, 17, 2)), "scores": np.zeros((0, 17))}, "empty"),
])
def test_lift_tool_infinite_and_empty_input(tmp_path, capsys, over, msg):
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    _write_input(inp, **over)
    assert lift_tool.main([str(inp), str(out)]) != 0
    assert msg in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_lift_tool_truncated_file(tmp_path, capsys):
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    _write_input(inp)
    inp.write_bytes(inp.read_bytes()[:200])
    assert lift_tool.main([str(inp), "-o", str(out)]) != 0
    assert "in.npz" in capsys.readouterr().err and not out.exists()


def test_detect_then_lift_on_shared_photos(tmp_path):
    """The offline chain a user runs: diffpose-detect on the shared photos -> diffpose-lift, with
    the torch and the ONNX Runtime sampler giving the same poses."""
    from diffpose_ros.paths import IMAGES_DIR
    from diffpose_ros.tools import detect as detect_tool
    det, out_t, out_o = tmp_path / "det.npz", tmp_path / "t.npz", tmp_path / "o.npz"
    assert detect_tool.main([str(IMAGES_DIR / "basketball1.png"), str(IMAGES_DIR / "basketball2.png"),
                             "-o", str(det), "--fov", "60"]) == 0
    assert lift_tool.main([str(det), "-o", str(out_t), "--threads", "1"]) == 0
    assert lift_tool.main([str(det), "-o", str(out_o), "--backend", "onnxruntime", "--threads", "1"]) == 0
    with np.load(det) as d, np.load(out_t) as t, np.load(out_o) as o:
        assert t["poses3d"].shape == (len(d["keypoints"]), 17, 3) and len(d["keypoints"]) >= 2
        assert np.isfinite(t["poses3d"]).all() and (t["poses3d"][..., 2] > 0.3).all()
        np.testing.assert_allclose(o["poses3d"], t["poses3d"], atol=1e-4)
