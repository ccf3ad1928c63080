"""A short real training run on a few clips lowers the losses (slow: ~1-2 min on 2 cores)."""
import numpy as np
import pytest
import torch

from diffpose_ros import paths

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not paths.MOCAP_DIR.is_dir(), reason="shared mocap data not available")
def test_short_training_lowers_loss(tmp_path):
    from diffpose_ros.lifter import training as T
    from diffpose_ros.lifter.model_io import Bundle, build_modules, make_config
    torch.set_num_threads(1)
    d = T.load_split("train", 3, limit_clips=12)
    v = T.load_split("val", 3, limit_clips=3)
    cfg = make_config("frame", encoder={"hidden": 64, "layers": 2}, denoiser={"hidden": 64, "layers": 2})
    enc, prior, den = build_modules(cfg)
    tr, va = T.Inputs(d), T.Inputs(v)
    hist = T.train_regressor(enc, tr, d["pose3d"], va, v["pose3d"], epochs=4, batch=64, lr=1e-3,
                             ckpt=tmp_path / "enc.pt", resume=False, seed=0, samples_per_epoch=4800)
    assert hist[-1]["train_mpjpe_mm"] < 0.6 * hist[0]["train_mpjpe_mm"]
    assert hist[-1]["val_mpjpe_mm"] < hist[0]["val_mpjpe_mm"]
    b = Bundle(cfg, enc, prior, den)
    feat, mu = T.encode(enc, tr)
    b.gmm, rep = T.fit_prior_and_gmm(prior, d, mu.numpy(), 3, max_samples=3000)
    assert np.isfinite(rep["gmm_loglik"]) and rep["s3d_m"] > 0.1
    with torch.no_grad():
        sigma = prior(torch.from_numpy(d["inputs"]))
    h2 = T.train_denoiser(b, feat, mu, sigma, d["pose3d"], epochs=3, batch=64, lr=1e-3,
                          ckpt=tmp_path / "den.pt", resume=False, seed=0, samples_per_epoch=4800)
    assert h2[-1]["train_rmse_mm"] < 0.8 * h2[0]["train_rmse_mm"]
    # resume: a finished checkpoint means no further epochs
    h3 = T.train_denoiser(b, feat, mu, sigma, d["pose3d"], epochs=3, batch=64, lr=1e-3,
                          ckpt=tmp_path / "den.pt", resume=True, seed=0, samples_per_epoch=4800)
    assert len(h3) == 3
