"""Sampler contract: shapes, determinism (no randomness inside), PSD covariances, ONNX export."""
import numpy as np
import pytest
import torch

from diffpose_ros.lifter.model_io import init_bundle, load_bundle
from diffpose_ros.lifter.sampler import DiffPoseSampler, build_sampler, covariance_from_hypotheses


def _inputs(b, temporal, n=5, window=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (b, window, 17, 3) if temporal else (b, 17, 3)
    kp = torch.randn(shape, generator=g) * 0.2
    kp[..., 2] = torch.rand(shape[:-1], generator=g)
    return kp, torch.randn(b, n, 17, 3, generator=g), torch.rand(b, n, generator=g)


@pytest.mark.parametrize("model", ["frame", "temporal"])
def test_shapes_determinism_psd(tmp_path, model):
    init_bundle(tmp_path, model=model, window=9, seed=1)
    s = build_sampler(tmp_path, steps=3, n_hyp=4)
    assert s.temporal == (model == "temporal") and s.window == (9 if model == "temporal" else 1)
    kp, noise, u = _inputs(3, s.temporal, 4)
    with torch.no_grad():
        m1, c1, h1 = s(kp, noise, u)
        m2, c2, h2 = s(kp, noise, u)
    assert m1.shape == (3, 17, 3) and c1.shape == (3, 17, 3, 3) and h1.shape == (3, 4, 17, 3)
    assert torch.equal(m1, m2) and torch.equal(c1, c2) and torch.equal(h1, h2)
    assert torch.allclose(c1, c1.transpose(-1, -2))
    assert torch.linalg.eigvalsh(c1).min() > 0
    assert torch.all(m1[:, 0] == 0)  # root-relative
    # different noise -> different hypotheses (the noise is really used)
    with torch.no_grad():
        _, _, h3 = s(kp, noise + 1.0, u)
    assert not torch.allclose(h1, h3)


def test_batch_independent(tmp_path):
    """Each pose's output depends only on its own inputs (batch dimension is free)."""
    s = DiffPoseSampler(init_bundle(None, seed=2), steps=2, n_hyp=3)
    kp, noise, u = _inputs(4, False, 3)
    with torch.no_grad():
        full = s(kp, noise, u)[0]
        one = s(kp[2:3], noise[2:3], u[2:3])[0]
    assert torch.allclose(full[2:3], one, atol=1e-5)


def test_kernel_choice_by_uniform():
    b = init_bundle(None, seed=0)
    b.gmm = {"weights": np.array([0.2, 0.3, 0.5]), "means": np.zeros((3, 48)),
             "covs": np.repeat(np.eye(48)[None], 3, 0)}
    s = DiffPoseSampler(b, 1, 1)
    u = torch.tensor([[0.0], [0.19], [0.2], [0.49], [0.5], [0.999999]])
    onehot = s.kernel_onehot(u)
    assert torch.equal(onehot.sum(-1), torch.ones(6, 1))
    assert onehot.argmax(-1).flatten().tolist() == [0, 0, 1, 1, 2, 2]


def test_covariance_shrinkage_single_hypothesis():
    hyps = torch.randn(2, 1, 17, 3)
    prior = torch.eye(3).expand(2, 17, 3, 3) * 0.01
    mean, cov = covariance_from_hypotheses(hyps, prior, n0=2.0, floor=0.0)
    assert torch.allclose(mean, hyps[:, 0]) and torch.allclose(cov, prior)


def test_save_load_roundtrip(tmp_path):
    b = init_bundle(tmp_path, seed=3)
    b2 = load_bundle(tmp_path)
    kp, noise, u = _inputs(2, False, 5)
    with torch.no_grad():
        a = DiffPoseSampler(b, 2, 5)(kp, noise, u)[0]
        c = DiffPoseSampler(b2, 2, 5)(kp, noise, u)[0]
    assert torch.allclose(a, c)


def test_any_n_and_aggregations(tmp_path):
    """One sampler serves every N (the hypothesis count is init_noise's axis 1); the posterior-mean
    aggregation is root-relative and differs from the hypotheses' mean."""
    b = init_bundle(None, seed=5)
    s = DiffPoseSampler(b, steps=3, n_hyp=2)
    post = DiffPoseSampler(b, steps=3, n_hyp=2, aggregation="posterior")
    for n in (1, 2, 7):
        kp, noise, u = _inputs(2, False, n)
        with torch.no_grad():
            m, c, h = s(kp, noise, u)
            mp, cp, hp = post(kp, noise, u)
        assert h.shape == (2, n, 17, 3) and c.shape == (2, 17, 3, 3)
        assert torch.allclose(m, h.mean(1), atol=1e-6) and torch.equal(h, hp) and torch.equal(c, cp)
        assert torch.all(mp[:, 0] == 0) and not torch.allclose(mp, m)
    with pytest.raises(ValueError, match="aggregation"):
        DiffPoseSampler(b, aggregation="median")


@pytest.mark.parametrize("aggregation", ["mean", "posterior"])
def test_first_hypotheses_are_a_draw_of_that_n(aggregation):
    """Calibration lifts once with the largest N (lift_set_nested): aggregating the first n chains
    of an N = 6 run gives what the sampler gives when called with those n draws only."""
    from diffpose_ros.lifter.evaluation import lift_set_nested
    b = init_bundle(None, seed=6)
    s = DiffPoseSampler(b, steps=3, n_hyp=6, aggregation=aggregation)
    kp, noise, u = _inputs(3, False, 6)
    with torch.no_grad():
        hyps, first, prior = s.chain(kp, noise, u)
        for n in (1, 2, 5):
            m, c, h = s(kp, noise[:, :n], u[:, :n])
            m2, c2 = s.aggregate(hyps[:, :n], first[:, :n], prior)
            assert torch.allclose(h, hyps[:, :n], atol=1e-6)
            assert torch.allclose(m, m2, atol=1e-6) and torch.allclose(c, c2, atol=1e-7)
    # through the evaluation path: the nested outputs of each N are its own first-N slice
    rng = np.random.default_rng(0)
    d = {"inputs": rng.normal(0, 0.2, (5, 17, 3)).astype(np.float32),
         "keypoints_px": rng.uniform(200, 400, (5, 17, 2)), "conf": rng.uniform(0.3, 1, (5, 17)),
         "K": np.repeat(np.array([[[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]]), 5, 0),
         "pose3d": rng.normal(0, 0.3, (5, 17, 3)), "root": np.tile([0.0, 0, 4], (5, 1))}
    d["inputs"][..., 2] = d["conf"]
    out = lift_set_nested(b, d, 3, [2, 6], sampler_aggregation=aggregation, progress=False)
    assert np.allclose(out[2]["hyps"], out[6]["hyps"][:, :2])
    assert out[2]["pose"].shape == (5, 17, 3) and not np.allclose(out[2]["pose"], out[6]["pose"])


@pytest.mark.parametrize("model", ["frame", "temporal"])
@pytest.mark.parametrize("mirror", [False, True])
def test_onnx_export_matches_torch(tmp_path, model, mirror):
    ort = pytest.importorskip("onnxruntime")
    s = DiffPoseSampler(init_bundle(None, model=model, window=9, seed=4), steps=2, n_hyp=3, mirror=mirror)
    kp, noise, u = _inputs(2, s.temporal, 3)
    path = tmp_path / "s.onnx"
    axes = {"keypoints": {0: "batch"}, "init_noise": {0: "batch", 1: "hyps"}, "kernel_u": {0: "batch", 1: "hyps"},
            "mean": {0: "batch"}, "cov": {0: "batch"}, "hyps": {0: "batch", 1: "hyps"}}
    with torch.no_grad():
        torch.onnx.export(s, (kp, noise, u), str(path), input_names=["keypoints", "init_noise", "kernel_u"],
                          output_names=["mean", "cov", "hyps"], opset_version=17, dynamo=False,
                          dynamic_axes=axes)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (6, 1):  # other batch size and N than at export (N = 1: no mirror hypothesis)
        kp5, n5, u5 = _inputs(5, s.temporal, n, seed=9)
        out = sess.run(None, {"keypoints": kp5.numpy(), "init_noise": n5.numpy(), "kernel_u": u5.numpy()})
        with torch.no_grad():
            ref = s(kp5, n5, u5)
        for o, r in zip(out, ref):
            np.testing.assert_allclose(o, r.numpy(), atol=1e-4, rtol=1e-3)


def test_mirror_is_the_mirrored_scene():
    """skeleton.mirror of a camera-frame pose projects to the mirror of its normalised 2D (so the
    mirror image of an input is what a mirrored person gives), and mirroring twice is nothing."""
    from diffpose_ros.skeleton import mirror
    rng = np.random.default_rng(3)
    pose = rng.normal(0, 0.3, (4, 17, 3)) + [0.4, -0.2, 4.0]
    kp = pose[..., :2] / pose[..., 2:]
    mp = mirror(pose)
    np.testing.assert_allclose(mp[..., :2] / mp[..., 2:], mirror(kp), atol=1e-12)
    np.testing.assert_array_equal(mirror(mirror(pose)), pose)
    t = torch.from_numpy(pose)
    assert torch.equal(mirror(t), torch.from_numpy(mp))
    assert mp[0, 1].tolist() == [-pose[0, 4, 0], pose[0, 4, 1], pose[0, 4, 2]]  # r_hip <- mirrored l_hip


@pytest.mark.parametrize("model", ["frame", "temporal"])
@pytest.mark.parametrize("aggregation", ["mean", "posterior"])
def test_mirror_hypotheses(model, aggregation):
    """With `mirror`, hypothesis n is the plain sampler's hypothesis n of the input (n even) or,
    mirrored back, of the input's mirror image (n odd), with the same noise; the pose is the
    average of the two halves' means; N = 1 is the plain sampler's output."""
    from diffpose_ros.skeleton import mirror
    b = init_bundle(None, model=model, window=9, seed=6)
    on = DiffPoseSampler(b, steps=3, n_hyp=5, aggregation=aggregation, mirror=True)
    off = DiffPoseSampler(b, steps=3, n_hyp=5, aggregation=aggregation, mirror=False)
    kp, noise, u = _inputs(3, on.temporal, 5)
    with torch.no_grad():
        h_on, f_on, prior = on.chain(kp, noise, u)
        h_in, f_in, prior_in = off.chain(kp, noise, u)
        h_mi, f_mi, _ = off.chain(mirror(kp), noise, u)
        m_on, c_on, _ = on(kp, noise, u)
        m1_on, c1_on, h1_on = on(kp, noise[:, :1], u[:, :1])
        m1_off, c1_off, h1_off = off(kp, noise[:, :1], u[:, :1])
    want = torch.where((torch.arange(5) % 2 == 1).view(1, 5, 1, 1), mirror(h_mi), h_in)
    torch.testing.assert_close(h_on, want, atol=1e-5, rtol=1e-5)
    src = f_on if aggregation == "posterior" else h_on
    halves = 0.5 * (src[:, 0::2].mean(1) + src[:, 1::2].mean(1))
    torch.testing.assert_close(m_on, halves - halves[:, :1], atol=1e-5, rtol=1e-5)
    assert torch.equal(prior, prior_in)
    torch.testing.assert_close(m1_on, m1_off, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(c1_on, c1_off, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(m_on, off(kp, noise, u)[0], atol=1e-4)
