"""A short real training run on a few real clips: the losses fall, H_K is fitted on held-out
samples, training resumes, the bundle calibrates and lifts (slow: ~1-2 min on 2 cores)."""
import numpy as np
import pytest
import torch

from diffpose_ros import paths

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not paths.MOCAP_DIR.is_dir(), reason="shared mocap data not available")]


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory):
    """Eight Bandai Namco clips as a user's BVH folder."""
    from diffpose_ros.data.motion import MotionBank
    folder = tmp_path_factory.mktemp("bvh")
    for f in sorted((paths.MOCAP_DIR / "bandai-namco-1").glob("*.bvh"))[::14][:8]:
        (folder / f.name).symlink_to(f)
    return MotionBank.load(sources=[f"bvh:{folder}:map=bandai_namco"], fps=10.0, progress=False, cache=False)


def small_setup(bank, n_per_clip: int):
    """Six training clips, the other two as fixed validation samples, and a small frame model."""
    from diffpose_ros.data.generator import PairGenerator
    from diffpose_ros.lifter.model_io import build_modules, make_config
    torch.set_num_threads(1)
    clips = np.arange(len(bank))
    gen = PairGenerator(bank, clips[:6])
    val = PairGenerator(bank, clips[6:]).fixed_set(seed=0, n_per_clip=n_per_clip, cache=False)
    cfg = make_config("frame", encoder={"hidden": 32, "layers": 1}, denoiser={"hidden": 32, "layers": 1})
    return gen, val, cfg, *build_modules(cfg)


def test_short_training_lowers_loss(tmp_path, small_bank, monkeypatch):
    from diffpose_ros.lifter import training as T
    from diffpose_ros.lifter.calibration import select_entry
    from diffpose_ros.lifter.lifter import Lifter
    from diffpose_ros.lifter.model_io import Bundle
    from diffpose_ros.tools import calibrate
    gen, val, cfg, enc, scale, den = small_setup(small_bank, 60)
    hist = T.train_regressor(enc, gen.sample, val, iters=80, batch=64, lr=2e-3, ckpt=tmp_path / "enc.pt",
                             resume=False, seed=0, eval_every=40, log=lambda m: None)
    assert hist[-1]["train_loss"] < 0.6 * hist[0]["train_loss"] or hist[-1]["val_mpjpe_mm"] < 250
    assert hist[-1]["val_mpjpe_mm"] < hist[0]["val_mpjpe_mm"] * 1.05
    b = Bundle(cfg, enc, scale, den)
    rep = T.fit_initial_distribution(b, val, 2, max_samples=500, log=lambda m: None)
    assert np.isfinite(rep["gmm_loglik"]) and len(rep["gmm_weights"]) == 2
    assert np.all(b.scale.base.numpy()[1:] > 0.005)
    h2 = T.train_denoiser(b, gen.sample, iters=60, batch=64, lr=2e-3, ckpt=tmp_path / "den.pt", resume=False,
                          seed=0, val=val, eval_every=20, log=lambda m: None)
    assert h2[-1]["train_loss"] < h2[0]["train_loss"]
    # resume: a finished checkpoint means no further iterations
    h3 = T.train_denoiser(b, gen.sample, iters=60, batch=64, lr=2e-3, ckpt=tmp_path / "den.pt", resume=True,
                          seed=0, val=val, eval_every=20, log=lambda m: None)
    assert len(h3) == len(h2)
    # N = 3 and 5 share their draws: rows 0-49 are lifted once with N = 5, rows 50-79 with N = 3
    monkeypatch.setattr(calibrate, "sample_count", lambda steps, n, m: {3: 80, 5: 50}[n])
    calibrate.calibrate_bundle(b, val, [2], [3, 5], log=lambda m: None)
    for n, rows in ((3, 80), (5, 50)):
        entry, key = select_entry(b.calibration, 2, n)
        assert key == f"s2_n{n}" and entry["n_samples"] == rows and len(entry["var_scale"]) == 17
        assert entry["coverage_rel_after"]["0.90"] > 0.8
    r = Lifter(bundle=b, steps=2, n_hyp=3).lift(val["keypoints_px"][:4], val["conf"][:4], val["K"][0])
    assert np.isfinite(r.covariance).all() and np.all(np.linalg.eigvalsh(r.covariance) > 0)


def test_chunked_gradients_train_as_the_whole_batch(tmp_path, small_bank):
    """fit(chunk=...) accumulates the gradient over row chunks: the same losses and trained model
    as one pass per batch, for the encoder and for the denoiser (whose per-batch draws are made before the
    split); a BatchNorm model is refused."""
    import copy

    from diffpose_ros.lifter import training as T
    from diffpose_ros.lifter.baseline import MartinezBaseline
    from diffpose_ros.lifter.model_io import Bundle
    from diffpose_ros.lifter.sampler import DiffPoseSampler
    gen, val, cfg, enc, scale, den = small_setup(small_bank, 30)

    def both(model, train, output):
        """The two runs' losses and trained outputs agree (outputs rather than weights: Adam turns
        the float noise of a parameter without gradient, such as an attention key bias, into steps)."""
        runs = []
        for i, chunk in enumerate((None, 24)):  # 64 rows: chunks of 24, 24 and 16
            m = copy.deepcopy(model)
            runs.append((train(m, chunk, tmp_path / f"{i}.pt"), output(m)))
        (h1, o1), (h2, o2) = runs
        assert np.allclose([r["train_loss"] for r in h1], [r["train_loss"] for r in h2], rtol=1e-4)
        assert np.abs(o1 - o2).max() < 1e-5 and np.abs(o1).max() > 1e-2   # metres
        return m

    enc = both(enc, lambda m, chunk, ckpt: T.train_regressor(
        m, gen.sample, val, iters=12, batch=64, lr=2e-3, ckpt=ckpt, resume=False, seed=0, eval_every=4,
        log=lambda s: None, chunk=chunk), lambda m: T.predict_regressor(m, val))
    b = Bundle(cfg, enc, scale, den)
    T.fit_initial_distribution(b, val, 2, max_samples=300, log=lambda m: None)

    def train_den(m, chunk, ckpt):
        b.denoiser = m
        return T.train_denoiser(b, gen.sample, iters=12, batch=64, lr=2e-3, ckpt=ckpt, resume=False, seed=0,
                                eval_every=4, log=lambda s: None, chunk=chunk)

    def sampled(m):
        b.denoiser = m
        return T.run_sampler(DiffPoseSampler(b, 2, 3), val, 3, progress=False)[2]
    both(den, train_den, sampled)
    with pytest.raises(ValueError, match="BatchNorm"):
        T.train_regressor(MartinezBaseline(hidden=16, blocks=1), gen.sample, val, iters=1, batch=64, lr=1e-3,
                          ckpt=tmp_path / "bn.pt", resume=False, seed=0, chunk=24)
