"""Body size from the floor (lifter/ground.py): the geometry, when it is not used, the calibration
of its covariance and the Lifter, the offline tool and the node's parameters that use it."""
import numpy as np
import pytest

from diffpose_ros.data.virtual_camera import look_at
from diffpose_ros.lifter import ground as G
from diffpose_ros.lifter.calibration import CovarianceModel, fit_calibration
from diffpose_ros.lifter.ground import Ground, floor_scale
from diffpose_ros.lifter.lifter import Lifter
from diffpose_ros.lifter.metrics import coverage, mahalanobis_sq
from diffpose_ros.paths import WEIGHTS_DIR

from test_lifter_weights import STANDING  # a standing person, camera frame (y down), pelvis at 0

K = np.array([[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]])


def scene(size: float, cam_height: float, distance: float):
    """A person `size` times the STANDING body, feet on the floor (world Y up, floor y = 0), seen by
    a camera `cam_height` m above the floor `distance` m away, looking at the pelvis. Returns the
    true camera-frame pose (17,3), the world->camera rotation and the same image's body at the
    STANDING size (what a lifter that assumes a typical body would place)."""
    world = STANDING * [1, -1, 1]                                # y up
    world = world - [0, world[:, 1].min() - G.FOOT_HEIGHT, 0]    # lower ankle FOOT_HEIGHT above the floor
    world = world * size                                         # scaled about the floor
    eye = np.array([0.0, cam_height, -distance])
    R = look_at(eye, world[0])
    true = (world - eye) @ R.T
    return true, R, true / size                                  # scaled about the camera centre: same image


@pytest.mark.parametrize("size,cam_height,distance", [(0.8, 1.2, 4.0), (1.2, 0.6, 3.0), (1.0, 2.5, 6.0)])
def test_floor_gives_the_size_the_image_cannot(size, cam_height, distance):
    """The STANDING-size placement of a body `size` times as large: the floor gives s = size (up to
    the fusion with the prior, which a sure measurement barely moves), at any camera height and
    tilt; Ground.from_tilt builds the same floor from the camera's tilt as the rotation has."""
    true, R, placed = scene(size, cam_height, distance)
    tilt = np.rad2deg(np.arcsin(-R[2, 1]))                       # optical axis below the horizon
    ground = Ground.from_tilt(cam_height, tilt)
    np.testing.assert_allclose(ground.up, R[:, 1], atol=1e-9)    # R e_y: the world's up in the camera
    tiny = np.full((1, 17, 3, 3), 1e-10 * np.eye(3))
    s, var_rel, used = floor_scale(placed[None], tiny, np.full((1, 17), 1e-6), np.full((1, 17), 0.9), ground)
    assert used[0]
    # the floor alone says `size`, with the foot's height its only doubt here: fused with the prior
    var_g = size ** 2 * G.FOOT_HEIGHT_STD ** 2 / (cam_height / size) ** 2
    prior = G.SIZE_PRIOR_STD ** 2
    assert s[0] == pytest.approx((var_g + size * prior) / (var_g + prior), rel=1e-3)
    assert abs(s[0] - size) < 0.03 * size
    assert 0 < var_rel[0] < 0.15 * prior                         # far surer than the prior
    np.testing.assert_allclose(placed * s[0], true, atol=0.03 * distance)


def test_floor_not_used_when_it_cannot_tell():
    """s = 1 and used False where the floor says nothing: the ankle at or above the camera, or a
    size outside SCALE_RANGE (more likely a foot off the floor than a 3 m person); an unsure
    measurement leans on the prior."""
    _, R, placed = scene(1.0, 1.2, 4.0)
    tiny = np.full((1, 17, 3, 3), 1e-10 * np.eye(3))
    sig, conf = np.full((1, 17), 1e-6), np.full((1, 17), 0.9)
    up = R[:, 1]
    above = placed - up * (placed @ up).min() + up * 0.5          # every joint 0.5 m above the camera
    for pose, height in ((above, 1.2), (placed, 5.0), (placed, 0.3)):
        s, var_rel, used = floor_scale(pose[None], tiny, sig, conf, Ground(up, height))
        assert not used[0] and s[0] == 1.0 and var_rel[0] == pytest.approx(G.SIZE_PRIOR_STD ** 2)
    wide = np.full((1, 17, 3, 3), 4.0 * np.eye(3))               # 2 m std of the ankle: nothing learned
    s, var_rel, used = floor_scale(scene(0.8, 1.2, 4.0)[2][None], wide, sig, conf, Ground(up, 1.2))
    assert used[0] and abs(s[0] - 1.0) < 0.05 and var_rel[0] > 0.9 * G.SIZE_PRIOR_STD ** 2


def test_ground_rejects_bad_floors():
    for up, h in (((0, 0, 0), 1.0), ((0, -1, 0), 0.0), ((0, -1, 0), np.nan), ((np.inf, 0, 0), 1.0)):
        with pytest.raises(ValueError):
            Ground(up, h)


def test_calibration_fits_a_floor_entry_used_only_where_the_floor_was():
    """Errors whose size part has the per-sample variance size * w (w the floor's size weight):
    the "ground" entry recovers that size term and gives nominal coverage on fresh samples; rows
    without the floor keep the plain scales."""
    rng = np.random.default_rng(1)
    S, J = 4000, 17
    H = np.broadcast_to(np.eye(3) * 4e-4, (S, J, 3, 3)).copy()
    pose = rng.standard_normal((S, J, 3)) * 0.3
    pose[:, 0] = 0
    root = np.stack([rng.uniform(-1, 1, S), rng.uniform(-0.5, 0.5, S), rng.uniform(2, 8, S)], -1)
    pos = pose + root[:, None]
    t2d = np.broadcast_to(np.diag([1e-4, 1e-4, 1e-2]), (S, 3, 3)).copy()
    size, w = 0.06 ** 2, rng.uniform(0.05, 1.0, S)

    def errors(var):
        delta = rng.standard_normal(S) * np.sqrt(var)
        e_rel = rng.standard_normal((S, J, 3)) * 0.02 + delta[:, None, None] * pose
        e_abs = e_rel + rng.standard_normal((S, 1, 3)) * np.sqrt([1e-4, 1e-4, 1e-2]) + delta[:, None, None] * root[:, None]
        return e_rel, e_abs

    er, ea = errors(size)
    gr, ga = errors(size * w)
    used = rng.random(S) < 0.8
    half, chi = S // 2, np.ones(S)
    tr, te = slice(0, half), slice(half, None)
    g = {"err_rel": gr[tr], "hyp_cov": H[tr], "pose": pose[tr], "err_abs": ga[tr], "hyp_cov_abs": H[tr],
         "cov_t2d": t2d[tr], "pos": pos[tr], "size_w": w[tr], "used": used[tr]}
    cal = fit_calibration(er[tr], H[tr], pose[tr], ea[tr], H[tr], t2d[tr], pos[tr], chi[tr], g)
    assert 0.4 * size < cal["ground"]["size_var_abs"] < 2.5 * size
    m = CovarianceModel(cal)
    kw = {"size_w": w[te], "used": used[te]}
    cov_abs = m.absolute(H[te], t2d[te], pos[te], chi[te], **kw)
    u = used[te]
    got = coverage(mahalanobis_sq(ga[te][u], cov_abs[u]), skip_root=False)["0.90"]
    assert abs(got - 0.9) < 0.03
    plain = m.absolute(H[te], t2d[te], pos[te], chi[te])
    np.testing.assert_array_equal(cov_abs[~u], plain[~u])       # no floor: the plain scales
    assert not np.allclose(cov_abs[u], plain[u])
    np.testing.assert_array_equal(m.size_variance(chi[te], len(u), **kw)[~u], m.size_variance(chi[te], len(u))[~u])


def test_lifter_places_a_small_person_with_the_floor():
    """A 1.35 m person (0.8 x STANDING) 4 m away, camera 1.2 m up looking at them: without the floor
    the lifter assumes a typical body and places them further away; with it the root is within
    10 % and every length of the result is the plain result's times one s (same draws)."""
    true, R, _ = scene(0.8, 1.2, 4.0)
    px = np.stack([K[0, 0] * true[:, 0] / true[:, 2] + K[0, 2], K[1, 1] * true[:, 1] / true[:, 2] + K[1, 2]], -1)
    conf = np.full((1, 17), 0.9)
    plain = Lifter(WEIGHTS_DIR / "frame", steps=5, n_hyp=5, seed=0).lift(px[None], conf, K)
    got = Lifter(WEIGHTS_DIR / "frame", steps=5, n_hyp=5, seed=0).lift(px[None], conf, K,
                                                                       ground=Ground(R[:, 1], 1.2))
    assert got.ground_used.tolist() == [True] and plain.ground_used.tolist() == [False]
    z = np.linalg.norm(true[0])
    assert abs(np.linalg.norm(got.root[0]) - z) < 0.1 * z < abs(np.linalg.norm(plain.root[0]) - z)
    s = got.root[0, 2] / plain.root[0, 2]
    for a, b in ((got.positions, plain.positions), (got.positions_rel, plain.positions_rel),
                 (got.hypotheses, plain.hypotheses)):
        np.testing.assert_allclose(a, s * b, rtol=1e-9, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(got.covariance) > 0) and np.all(np.linalg.eigvalsh(got.covariance_rel[:, 1:]) > 0)
    assert got.size_var[0] < plain.size_var[0]                   # the floor knows the size better
    # without the floor the whole size error repeats in every frame; with it only the prior's share
    assert plain.size_var_track[0] == plain.size_var[0]
    assert 0 < got.size_var_track[0] < got.size_var[0]


def test_lift_tool_with_camera_height(tmp_path):
    from diffpose_ros.tools import lift as lift_tool
    true, R, _ = scene(0.8, 1.2, 4.0)
    px = np.stack([K[0, 0] * true[:, 0] / true[:, 2] + K[0, 2], K[1, 1] * true[:, 1] / true[:, 2] + K[1, 2]], -1)
    tilt = np.rad2deg(np.arcsin(-R[2, 1]))
    inp = tmp_path / "in.npz"
    np.savez(inp, keypoints=px[None], scores=np.full((1, 17), 0.9), K=K)
    for extra, name in (([], "plain"), (["--camera-height", "1.2", "--camera-pitch", f"{tilt}"], "floor")):
        assert lift_tool.main([str(inp), str(tmp_path / f"{name}.npz"), "--no-filter", *extra]) == 0
    plain, floor = (np.load(tmp_path / f"{n}.npz") for n in ("plain", "floor"))
    assert plain["size_from_floor"].tolist() == [False] and floor["size_from_floor"].tolist() == [True]
    # the part of the size error that repeats over a track: all of it without the floor
    assert plain["size_var_track"][0] == plain["size_var"][0] and 0 < floor["size_var_track"][0] < floor["size_var"][0]
    z = np.linalg.norm(true[0])
    assert abs(np.linalg.norm(floor["root"][0]) - z) < 0.1 * z
    with pytest.raises(SystemExit):
        lift_tool.main([str(inp), str(tmp_path / "bad.npz"), "--camera-height", "-1"])


def test_apply_floor_scales_lengths_by_s_and_covariances_by_s_squared():
    """Every term of the placed body after the floor: positions, pose and root times s, every
    covariance (the hypotheses', the absolute ones, the root's 2D term) times s^2; chi stays."""
    from diffpose_ros.lifter.ground import apply_floor
    true, R, placed = scene(0.8, 1.2, 4.0)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 17, 3, 3)) * 0.01
    cov = a @ np.swapaxes(a, -1, -2) + 1e-4 * np.eye(3)
    t = {"pose": (placed - placed[0])[None], "root": placed[:1], "positions": placed[None], "hyp_cov": cov,
         "hyp_cov_abs": 2 * cov, "cov_t2d": np.diag([1e-4, 1e-4, 1e-2])[None], "chi": np.array([1.7])}
    out = apply_floor(t, np.full((1, 17), 1e-3), np.full((1, 17), 0.9), Ground(R[:, 1], 1.2))
    s = out["scale"][0]
    assert out["ground_used"][0] and abs(s - 0.8) < 0.03
    for k in ("pose", "root", "positions"):
        np.testing.assert_allclose(out[k], s * t[k])
    for k in ("hyp_cov", "hyp_cov_abs", "cov_t2d"):
        np.testing.assert_allclose(out[k], s ** 2 * t[k])
    assert out["chi"] is t["chi"]


def test_track_share_is_the_priors_share_of_the_fused_size_error():
    """The fused size w_p 1 + (1 - w_p) s_g errs by w_p times the person's offset from the prior
    (the same in every frame) plus (1 - w_p) times the floor's error (new in every frame):
    track_share = w_p = var_g / (var_g + prior), checked against its closed form and against
    draws of both errors; 1 where the floor is not used."""
    from diffpose_ros.lifter.ground import apply_floor
    size, cam_height = 0.8, 1.2
    _, R, placed = scene(size, cam_height, 4.0)
    foot_std = 0.2                           # an unsure foot: the prior keeps a real share
    cov = np.full((1, 17, 3, 3), 1e-10 * np.eye(3))
    t = {"pose": (placed - placed[0])[None], "root": placed[:1], "positions": placed[None], "hyp_cov": cov,
         "hyp_cov_abs": cov, "cov_t2d": np.full((1, 3, 3), 1e-10 * np.eye(3)), "chi": np.array([1.0])}
    old = G.FOOT_HEIGHT_STD
    G.FOOT_HEIGHT_STD = foot_std
    try:
        out = apply_floor(t, np.full((1, 17), 1e-6), np.full((1, 17), 0.9), Ground(R[:, 1], cam_height))
    finally:
        G.FOOT_HEIGHT_STD = old
    var_g = size ** 2 * foot_std ** 2 / (cam_height / size) ** 2
    prior = G.SIZE_PRIOR_STD ** 2
    w_p = var_g / (var_g + prior)
    assert 0.2 < w_p < 0.8 and out["track_share"][0] == pytest.approx(w_p, rel=1e-3)
    # the same from draws: people of sizes ~ the prior, each measured many times by the floor
    rng = np.random.default_rng(1)
    person = rng.normal(1.0, np.sqrt(prior), (2000, 1))
    fused = w_p * 1.0 + (1 - w_p) * (person + rng.normal(0, np.sqrt(var_g), (2000, 50)))
    err = fused - person
    track_part = err.mean(1).var() - err.var(1).mean() / 50        # the variance of each person's mean error
    assert track_part / err.var() == pytest.approx(w_p, abs=0.05)
    _, _, above = scene(1.0, 1.2, 4.0)
    out = apply_floor({**t, "positions": (above - R[:, 1] * 3.0)[None]}, np.full((1, 17), 1e-6),
                      np.full((1, 17), 0.9), Ground(R[:, 1], 1.2))    # 3 m lower: s < 0.55, not used
    assert not out["ground_used"][0] and out["track_share"][0] == 1.0
