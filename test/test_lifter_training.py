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


def test_short_training_lowers_loss(tmp_path, small_bank):
    from diffpose_ros.data.generator import PairGenerator
    from diffpose_ros.lifter import training as T
    from diffpose_ros.lifter.calibration import select_entry
    from diffpose_ros.lifter.lifter import Lifter
    from diffpose_ros.lifter.model_io import Bundle, build_modules, make_config
    from diffpose_ros.tools.calibrate import calibrate_bundle
    torch.set_num_threads(1)
    clips = np.arange(len(small_bank))
    gen = PairGenerator(small_bank, clips[:6])
    val = PairGenerator(small_bank, clips[6:]).fixed_set(seed=0, n_per_clip=60, cache=False)
    cfg = make_config("frame", encoder={"hidden": 32, "layers": 1}, denoiser={"hidden": 32, "layers": 1})
    enc, scale, den = build_modules(cfg)
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
    calibrate_bundle(b, val, [2], [3], max_samples=120, log=lambda m: None)
    entry, key = select_entry(b.calibration, 2, 3)
    assert key == "s2_n3" and len(entry["var_scale"]) == 17 and entry["coverage_rel_after"]["0.90"] > 0.8
    r = Lifter(bundle=b, steps=2, n_hyp=3).lift(val["keypoints_px"][:4], val["conf"][:4], val["K"][0])
    assert np.isfinite(r.covariance).all() and np.all(np.linalg.eigvalsh(r.covariance) > 0)
