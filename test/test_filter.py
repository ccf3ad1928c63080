"""The per-track filter: Kalman algebra, consistency on a process it models exactly, stamps not
frame counts, gate, prediction and deletion, new tracks, joints, the process-noise fit, and the
pipeline step that publishes predicted people."""
import numpy as np
import pytest

from diffpose_ros.filter.kinematic import KinematicFilter, transition
from diffpose_ros.filter.people_filter import FilterConfig, PeopleFilter
from diffpose_ros.filter.process_noise import ProcessNoise, fit_process_noise, load_process_noise
from diffpose_ros.skeleton import NUM_JOINTS

CHI2_90 = 6.251388631170325
R_ROOT = np.diag([0.04, 0.01, 0.09])


def exact_noise(q=0.5, joint_q=2.0) -> ProcessNoise:
    """Process noise of a world that is exactly constant velocity: no gait terms, white errors."""
    return ProcessNoise(model="cv", root_q=np.full(3, q), root_pos_jitter=np.zeros(3),
                        root_vel_jitter_var=np.zeros(3), root_vel_jitter_var_per_speed2=np.zeros(3),
                        joint_q=np.full(NUM_JOINTS, joint_q), joint_derivative_std=np.full((NUM_JOINTS, 1), 0.5),
                        measurement_correlation_s=np.zeros(3), measurement_dof=np.inf)


def frame(root, rel=None, rel_var=1e-3):
    rel = np.zeros((NUM_JOINTS, 3)) if rel is None else rel
    return ([7], np.asarray(root, float)[None], R_ROOT[None], rel[None],
            np.tile(np.eye(3) * rel_var, (1, NUM_JOINTS, 1, 1)))


EMPTY = ([], np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, NUM_JOINTS, 3)), np.zeros((0, NUM_JOINTS, 3, 3)))


def test_transition_matches_closed_form():
    h = 0.4
    F, Q = transition(np.array([h]), 2, [[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(F[0][:3, 3:], h * np.eye(3))
    np.testing.assert_allclose(np.diag(Q[0])[:3], np.array([1, 2, 3]) * h ** 3 / 3)
    np.testing.assert_allclose(Q[0][0, 3], h ** 2 / 2)
    F, Q = transition(np.array([h]), 3, [[1.0, 1.0, 1.0]])
    np.testing.assert_allclose(F[0][0, 6], h ** 2 / 2)
    np.testing.assert_allclose(Q[0][0, 0], h ** 5 / 20)
    np.testing.assert_allclose(Q[0][3, 6], h ** 2 / 2)
    with pytest.raises(ValueError, match="order"):
        KinematicFilter(4, [[1, 1, 1]])


@pytest.mark.parametrize("order", [2, 3])
def test_prediction_is_the_transition_applied(order):
    """predict() works on the scalar blocks (F = Fs (x) I3) and skips rows already at the stamp:
    it must equal F x and F P F^T + Q of the full matrices, for moving, fused-at-t and older rows."""
    rng = np.random.default_rng(order)
    B, n3 = 7, 3 * order
    kf = KinematicFilter(order, rng.uniform(0.1, 2, (B, 3)), max_horizon=np.r_[np.full(B - 1, np.inf), 0.2])
    kf.x = rng.standard_normal((B, n3))
    A = rng.standard_normal((B, n3, n3))
    kf.P = A @ np.swapaxes(A, 1, 2) + np.eye(n3)
    kf.t = np.array([0.0, 1.0, 0.9, 1.0, 1.2, 0.5, 0.1])        # t = 1: rows 1 and 3 are at the stamp
    for rows in (None, np.array([1, 3]), np.array([0, 2, 6])):
        x, P = kf.predict(1.0, rows)
        r = np.arange(B) if rows is None else rows
        h = np.clip(1.0 - kf.t[r], 0.0, kf.max_horizon[r])
        F, Q = transition(h, order, kf.q[r])
        np.testing.assert_allclose(x, np.einsum("bij,bj->bi", F, kf.x[r]), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(P, F @ kf.P[r] @ np.swapaxes(F, 1, 2) + Q, rtol=1e-12, atol=1e-12)
        x[:] = 0                                   # a copy: the state itself is untouched
        assert np.abs(kf.x[r]).max() > 0


def test_consistent_on_a_constant_velocity_world():
    """Truth simulated from the filter's own model, at irregular stamps: the true position and
    velocity fall inside the reported 90 % ellipsoids about 90 % of the time."""
    rng = np.random.default_rng(3)
    q = 0.5
    inside_p, inside_v = [], []
    for track in range(30):
        f = PeopleFilter(FilterConfig(gate_probability=1.0, velocity_prior_mps=1.0), noise=exact_noise(q))
        x = np.r_[rng.normal(0, 1, 3) + [0, 0, 4], rng.normal(0, 1.0, 3)]
        t = 0.0
        for k in range(60):
            if k:
                h = rng.uniform(0.03, 0.15)
                Fm, Qm = transition(np.array([h]), 2, [[q, q, q]])
                x = Fm[0] @ x + rng.multivariate_normal(np.zeros(6), Qm[0])
                t += h
            z = x[:3] + rng.multivariate_normal(np.zeros(3), R_ROOT)
            s = f.step(t, *frame(z)).states[7]
            if k >= 5:
                e = np.r_[s.root - x[:3], s.velocity - x[3:]]
                inside_p.append(e[:3] @ np.linalg.solve(s.covariance[:3, :3], e[:3]) <= CHI2_90)
                inside_v.append(e[3:] @ np.linalg.solve(s.covariance[3:, 3:], e[3:]) <= CHI2_90)
    assert 0.86 <= np.mean(inside_p) <= 0.94
    assert 0.86 <= np.mean(inside_v) <= 0.94


def test_body_size_is_a_bias_the_filter_carries_not_averages():
    """A world the size model describes: each track is a person of relative size error delta ~
    N(0, c), so every lift is (1 + delta) x the truth plus white noise, and the lifter's root
    covariance is R + c z z^T. The filter must not average delta away: its covariance keeps
    c x x^T along the ray and the true root stays inside the 90 % ellipsoid about 90 % of the
    time. Fed the same lifts with size_var None (the size term treated as white noise), it
    shrinks its covariance below the offset and the truth falls outside."""
    from diffpose_ros.filter.people_filter import without_size
    rng = np.random.default_rng(5)
    c, q = 0.004, 0.05                      # a slow walker: the filter averages over ~2 s
    R = np.diag([0.01, 0.01, 0.02])
    inside, inside_naive, floor_ok = [], [], []
    for track in range(150):
        delta = rng.normal(0, np.sqrt(c))
        with_size = PeopleFilter(FilterConfig(gate_probability=1.0, velocity_prior_mps=1.0), noise=exact_noise(q))
        naive = PeopleFilter(FilterConfig(gate_probability=1.0, velocity_prior_mps=1.0), noise=exact_noise(q))
        x = np.r_[rng.normal(0, 0.5, 3) + [0, 0, 5], rng.normal(0, 0.5, 3)]
        for k in range(40):
            if k:
                Fm, Qm = transition(np.array([0.1]), 2, [[q, q, q]])
                x = Fm[0] @ x + rng.multivariate_normal(np.zeros(6), Qm[0])
            z = (1 + delta) * x[:3] + rng.multivariate_normal(np.zeros(3), R)
            cov = R + c * np.outer(z, z)
            args = ([7], z[None], cov[None], np.zeros((1, NUM_JOINTS, 3)), np.tile(np.eye(3) * 1e-3, (1, NUM_JOINTS, 1, 1)))
            s = with_size.step(0.1 * k, *args, size_var=[c]).states[7]
            n = naive.step(0.1 * k, *args).states[7]
        e = s.root - x[:3]
        inside.append(e @ np.linalg.solve(s.covariance[:3, :3], e) <= CHI2_90)
        e = n.root - x[:3]
        inside_naive.append(e @ np.linalg.solve(n.covariance[:3, :3], e) <= CHI2_90)
        ray = s.root / np.linalg.norm(s.root)
        floor_ok.append(ray @ s.covariance[:3, :3] @ ray >= 0.99 * c * s.root @ s.root)
    assert all(floor_ok)
    assert 0.82 <= np.mean(inside) <= 0.96, np.mean(inside)
    assert np.mean(inside_naive) < np.mean(inside) - 0.2, (np.mean(inside_naive), np.mean(inside))
    # the measurement noise without the size term: exactly R where that is positive definite
    z = np.array([[0.3, -0.2, 4.0]])
    np.testing.assert_allclose(without_size((R + c * np.outer(z[0], z[0]))[None], z, np.array([c]))[0], R, atol=1e-12)
    with pytest.raises(ValueError, match="size_var"):
        PeopleFilter(noise=exact_noise()).step(0.0, *frame([0, 0, 4]), size_var=[-1.0])


def test_stamps_not_frame_counts():
    """The state at a stamp does not depend on how many empty frames came before it."""
    a = PeopleFilter(noise=exact_noise())
    b = PeopleFilter(noise=exact_noise())
    for f in (a, b):
        f.step(0.0, *frame([0, 0, 4]))
        f.step(0.1, *frame([0.1, 0, 4]))
    for k in range(2, 7):
        a.step(0.1 * k, *EMPTY)                  # five missed frames
    sa = a.step(0.7, *frame([0.7, 0, 4])).states[7]
    sb = b.step(0.7, *frame([0.7, 0, 4])).states[7]
    np.testing.assert_allclose(sa.root, sb.root)
    np.testing.assert_allclose(sa.covariance, sb.covariance)


def test_prediction_then_deletion():
    f = PeopleFilter(FilterConfig(max_prediction_s=0.5), noise=exact_noise())
    for k in range(10):
        f.step(0.1 * k, *frame([0.1 * k, 0, 4]))          # walking +x at 1 m/s
    last = f.step(0.9, *frame([0.9, 0, 4])).states[7]
    assert not last.is_prediction and last.time_since_measurement == 0
    prev = last
    for k in range(1, 6):
        r = f.step(0.9 + 0.1 * k, *EMPTY)
        s = r.states[7]
        assert s.is_prediction and s.time_since_measurement == pytest.approx(0.1 * k)
        assert s.root[0] > prev.root[0]                              # keeps walking
        assert np.trace(s.covariance[:3, :3]) > np.trace(prev.covariance[:3, :3])
        prev = s
    r = f.step(1.5, *EMPTY)
    assert 7 not in r.states and r.deleted == [7] and not f.tracks


def test_gate_refuses_gross_lift_and_restarts_after_the_limit():
    f = PeopleFilter(FilterConfig(max_prediction_s=0.35), noise=exact_noise())
    for k in range(10):
        f.step(0.1 * k, *frame([0, 0, 4]))
    before = f.kf.x[f.tracks[7].rows].copy()
    r = f.step(1.0, *frame([0, 0, 12.0]))                             # 8 m off: not this person
    assert r.gated == [7] and r.states[7].is_prediction
    np.testing.assert_allclose(f.kf.x[f.tracks[7].rows], before)
    assert abs(r.states[7].root[2] - 4) < 0.3
    f.step(1.1, *frame([0, 0, 12.0]))
    f.step(1.2, *frame([0, 0, 12.0]))
    r = f.step(1.3, *frame([0, 0, 12.0]))                             # refused for > 0.35 s: start over
    assert r.gated == [] and not r.states[7].is_prediction
    assert r.states[7].root[2] == pytest.approx(12.0)


def test_new_track_wide_velocity_prior_and_joints():
    f = PeopleFilter(FilterConfig(velocity_prior_mps=3.0), noise=exact_noise())
    rel = np.random.default_rng(0).normal(0, 0.3, (NUM_JOINTS, 3))
    rel[0] = 0
    s = f.step(5.0, *frame([1, 0, 4], rel)).states[7]
    np.testing.assert_allclose(s.velocity, 0)
    np.testing.assert_allclose(np.diag(s.covariance)[3:], 9.0)
    np.testing.assert_allclose(s.covariance[:3, :3], R_ROOT)
    np.testing.assert_allclose(s.positions, np.array([1, 0, 4]) + rel)
    np.testing.assert_allclose(s.positions[0], s.root)
    np.testing.assert_allclose(s.joint_covariance[0], s.covariance[:3, :3])
    # a noisy but still pose: the filtered joints are closer to it than the lifts
    rng = np.random.default_rng(1)
    raw_err, filt_err = [], []
    for k in range(1, 40):
        noisy = rel + rng.normal(0, 0.05, rel.shape)
        noisy[0] = 0
        s = f.step(5.0 + k / 30, *frame([1, 0, 4], noisy, rel_var=0.05 ** 2)).states[7]
        if k > 10:
            raw_err.append(np.abs(noisy[1:] - rel[1:]).mean())
            filt_err.append(np.abs(s.positions[1:] - s.root - rel[1:]).mean())
    assert np.mean(filt_err) < 0.7 * np.mean(raw_err)


def test_time_jump_back_resets_and_bad_input():
    f = PeopleFilter(noise=exact_noise())
    f.step(100.0, *frame([0, 0, 4]))
    r = f.step(10.0, *frame([0, 0, 4]))
    assert r.deleted == [7] and r.states[7].time_since_measurement == 0
    with pytest.raises(ValueError, match="duplicate"):
        f.step(11.0, [1, 1], np.zeros((2, 3)), np.tile(R_ROOT, (2, 1, 1)), np.zeros((2, 17, 3)),
               np.tile(np.eye(3), (2, 17, 1, 1)))
    with pytest.raises(ValueError, match="finite"):
        f.step(float("nan"), *EMPTY)
    with pytest.raises(ValueError, match="model"):
        FilterConfig(model="singer")
    with pytest.raises(ValueError, match="gate_probability"):
        FilterConfig(gate_probability=0.0)
    f.config = FilterConfig(model="ca")          # another motion model: the tracks start over
    r = f.step(12.0, *frame([0, 0, 4]))
    assert r.deleted == [7] and r.states[7].velocity.shape == (3,)
    off = PeopleFilter(FilterConfig(enabled=False))
    assert off.step(0.0, *frame([0, 0, 4])).states == {}


def test_shipped_process_noise_and_fit():
    for model, order in (("cv", 2), ("ca", 3)):
        n = load_process_noise(model)
        assert n.order == order and n.root_q.shape == (3,) and (n.root_q > 0).all()
        assert n.joint_derivative_std.shape == (NUM_JOINTS, order - 1)
        assert n.root_vel_var(3.0)[1] > n.root_vel_var(1.0)[1]    # runners bounce more
        assert n.measurement_correlation_s.shape == (3,) and n.measurement_dof > 2
    # the fit recovers the density of a constant-velocity world (white acceleration)
    rng = np.random.default_rng(0)
    q, dt = 0.3, 1 / 30
    trajs = []
    for _ in range(60):
        v = np.cumsum(rng.normal(0, np.sqrt(q * dt), (240, 3)), axis=0) + [1.0, 0, 0]
        p = np.cumsum(v * dt, axis=0)
        trajs.append(np.repeat(p[:, None], NUM_JOINTS, axis=1) + rng.normal(0, 1e-4, (240, NUM_JOINTS, 3)))
    fit = fit_process_noise(trajs)
    assert fit["clips"] == 60
    assert 0.7 * q < fit["models"]["cv"]["root_q"][0] < 1.3 * q
    assert 0.7 * q < fit["models"]["cv"]["root_q"][1] < 1.3 * q


def test_pipeline_publishes_predicted_people():
    from diffpose_ros.lifter.lifter import Lifter
    from diffpose_ros.people import Person3D
    from diffpose_ros.pipeline import PipelineConfig, PosePipeline
    pipe = PosePipeline(detector=None, tracker=None, lifter=Lifter(steps=2, n_hyp=3))
    rel = np.zeros((NUM_JOINTS, 3))
    rel[1:, 1] = np.linspace(-0.8, 0.8, NUM_JOINTS - 1)

    def person(x):
        root = np.array([x, 0.0, 4.0])
        return Person3D(track_id=5, score=0.9, positions=root + rel, covariance=np.tile(R_ROOT, (17, 1, 1)) + 1e-3,
                        root=root, root_covariance=R_ROOT, keypoints_2d=np.full((17, 2), 100.0),
                        keypoint_conf=np.full(17, 0.9), num_hypotheses=3, diffusion_steps=2,
                        positions_rel=rel, covariance_rel=np.tile(np.eye(3) * 1e-3, (17, 1, 1)),
                        box=np.array([1.0, 2, 3, 4]))
    for k in range(5):
        people, removed, predicted, gated = pipe.apply_filter([person(0.1 * k)], [], 0.1 * k)
        assert predicted == 0 and people[0].filtered is not None
    # the detector misses the person and the tracker drops the id: still published, predicted
    people, removed, predicted, _ = pipe.apply_filter([], [5], 0.5)
    assert predicted == 1 and removed == []
    p = people[0]
    assert p.track_id == 5 and p.filtered.is_prediction and not p.reliable and p.score == 0
    assert (p.keypoint_conf == 0).all() and np.allclose(p.keypoints_2d, 100) and np.allclose(p.box, [1, 2, 3, 4])
    np.testing.assert_allclose(p.positions, p.filtered.positions)
    np.testing.assert_allclose(p.root_covariance, p.filtered.covariance[:3, :3], atol=1e-12)
    # after max_prediction_s the filter deletes the track and the pipeline reports it removed
    pipe.config = PipelineConfig()
    people, removed, predicted, _ = pipe.apply_filter([], [], 1.45)
    assert people == [] and removed == [5]


def test_tracks_share_one_filter_but_not_their_states():
    """All tracks live in one batched filter (17 rows each): stepped together they report what
    each reports alone, and the rows of a deleted track serve the next new one from scratch."""
    rng = np.random.default_rng(8)
    cfg = FilterConfig(max_prediction_s=0.3)
    together, alone = PeopleFilter(cfg, noise=exact_noise()), {7: PeopleFilter(cfg, noise=exact_noise()),
                                                              8: PeopleFilter(cfg, noise=exact_noise())}
    rel = rng.normal(0, 0.3, (NUM_JOINTS, 3))
    rel[0] = 0
    for k in range(12):
        t = 0.1 * k
        ids = [7, 8] if k < 6 else [8]                       # 7 leaves after frame 5 and is deleted
        roots = {7: [0.1 * k, 0, 4], 8: [-1, 0, 5 - 0.05 * k]}
        z = {i: np.asarray(roots[i], float) + rng.normal(0, 0.05, 3) for i in ids}
        r = together.step(t, ids, np.array([z[i] for i in ids]), np.tile(R_ROOT, (len(ids), 1, 1)),
                          np.tile(rel, (len(ids), 1, 1)), np.tile(np.eye(3) * 1e-3, (len(ids), NUM_JOINTS, 1, 1)))
        for i in (7, 8):
            a = alone[i].step(t, *(([i], z[i][None], R_ROOT[None], rel[None], np.tile(np.eye(3) * 1e-3, (1, NUM_JOINTS, 1, 1)))
                                   if i in ids else EMPTY))
            assert (i in r.states) == (i in a.states) and (i in r.deleted) == (i in a.deleted)
            if i in r.states:
                np.testing.assert_allclose(r.states[i].covariance, a.states[i].covariance, rtol=1e-12)
                np.testing.assert_allclose(r.states[i].positions, a.states[i].positions, rtol=1e-12)
    assert 7 not in together.tracks and together.kf.B == 2 * NUM_JOINTS
    r = together.step(1.2, *frame([3, 0, 9]))                # a new track 7 takes the freed rows
    fresh = PeopleFilter(cfg, noise=exact_noise()).step(1.2, *frame([3, 0, 9]))
    assert together.kf.B == 2 * NUM_JOINTS
    np.testing.assert_allclose(r.states[7].root, fresh.states[7].root)
    np.testing.assert_allclose(r.states[7].covariance, fresh.states[7].covariance)
