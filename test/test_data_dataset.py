"""Dataset: clip splits, sample layout, cache, causal windows."""
import numpy as np
import pytest

from diffpose_ros import camera, paths
from diffpose_ros.data.dataset import causal_windows, clip_split, list_clips, load_pairs, split_clips
from diffpose_ros.data.noise import NoiseConfig
from diffpose_ros.skeleton import H36M_JOINTS

needs_data = pytest.mark.skipif(not paths.MOCAP_DIR.is_dir(), reason="shared mocap data not found")
J = {n: i for i, n in enumerate(H36M_JOINTS)}


@needs_data
def test_splits_disjoint_by_clip_and_about_80_10_10():
    clips = list_clips()
    parts = {s: set(split_clips(s)) for s in ("train", "val", "test")}
    assert parts["train"].isdisjoint(parts["val"]) and parts["train"].isdisjoint(parts["test"])
    assert parts["val"].isdisjoint(parts["test"])
    assert set().union(*parts.values()) == set(clips)
    frac = len(parts["train"]) / len(clips)
    assert 0.75 < frac < 0.85 and len(parts["val"]) > 50 and len(parts["test"]) > 50
    assert clip_split("bandai-namco-1/x.bvh") == clip_split("bandai-namco-1/x.bvh")
    with pytest.raises(ValueError, match="split"):
        split_clips("training")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path))
    return tmp_path


@needs_data
def test_load_pairs_layout_and_geometry(tmp_cache):
    d = load_pairs("val", stride=10, cameras_per_clip=2, limit_clips=4)
    S = len(d["frame"])
    assert S > 50
    shapes = {"keypoints": (S, 17, 2), "keypoints_clean": (S, 17, 2), "conf": (S, 17), "visible": (S, 17),
              "keypoints_px": (S, 17, 2), "pose3d": (S, 17, 3), "root": (S, 3), "K": (S, 3, 3),
              "image_size": (S, 2), "clip": (S,), "seq": (S,), "frame": (S,)}
    for k, shp in shapes.items():
        assert d[k].shape == shp, k
        assert d[k].dtype in (np.float32, np.int32, np.bool_), (k, d[k].dtype)
    assert len(d["clip_names"]) == 4 and set(np.unique(d["clip"])) <= {0, 1, 2, 3}
    assert np.all(d["seq"] // 2 == d["clip"])
    assert d["conf"].min() >= 0 and d["conf"].max() <= 1
    np.testing.assert_allclose(d["pose3d"][:, 0], 0, atol=1e-6)
    # clean keypoints are the pinhole projection of the 3D pose; noisy px and normalised agree
    p = d["pose3d"] + d["root"][:, None]
    np.testing.assert_allclose(d["keypoints_clean"][d["visible"]], (p[..., :2] / p[..., 2:])[d["visible"]], atol=1e-4)
    np.testing.assert_allclose(camera.normalize(d["keypoints_px"], d["K"]), d["keypoints"], atol=1e-4)
    # the camera frame is y-down: the head is above the pelvis in the image for upright frames
    assert np.mean(d["pose3d"][:, J["head"], 1] < -0.3) > 0.8
    thigh = np.linalg.norm(d["pose3d"][:, J["l_knee"]] - d["pose3d"][:, J["l_hip"]], axis=-1)
    assert np.all((thigh > 0.35) & (thigh < 0.55))
    # stride and camera offsets: frames within a sequence are multiples of the stride apart
    for s in np.unique(d["seq"]):
        f = np.sort(d["frame"][d["seq"] == s])
        assert np.all(np.diff(f) % 10 == 0)


@needs_data
def test_cache_and_determinism(tmp_cache):
    a = load_pairs("test", stride=20, limit_clips=3)
    files = list((tmp_cache / "datasets").glob("*.npz"))
    assert len(files) == 1
    b = load_pairs("test", stride=20, limit_clips=3)
    c = load_pairs("test", stride=20, limit_clips=3, cache=False, workers=1)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], c[k])
    e = load_pairs("test", stride=20, limit_clips=3, seed=1, cache=False)
    assert not np.array_equal(a["K"][:1], e["K"][:1]) or not np.array_equal(a["keypoints"], e["keypoints"])
    clean = load_pairs("test", stride=20, limit_clips=3, cache=False, noise=NoiseConfig(enabled=False))
    np.testing.assert_allclose(clean["keypoints"], clean["keypoints_clean"], atol=1e-5)


def test_causal_windows_stay_in_sequence():
    rng = np.random.default_rng(0)
    seq = np.repeat([3, 1, 2], [5, 1, 7])
    frame = np.concatenate([rng.permutation(5) * 5, [0], rng.permutation(7) * 5])
    perm = rng.permutation(len(seq))
    seq, frame = seq[perm], frame[perm]
    w = causal_windows(seq, frame, 4)
    assert w.shape == (13, 4) and w.dtype == np.int64
    assert np.all(w[:, -1] == np.arange(13))                       # ends at the sample itself
    assert np.all(seq[w] == seq[:, None])                          # never crosses sequences
    assert np.all(np.diff(frame[w], axis=1) >= 0)                  # ordered in time
    for i in range(13):                                            # the exact last-4 window
        same = np.sort(frame[seq == seq[i]])
        k = np.searchsorted(same, frame[i])
        expect = same[np.maximum(np.arange(k - 3, k + 1), 0)]
        np.testing.assert_array_equal(frame[w[i]], expect)
    with pytest.raises(ValueError):
        causal_windows(seq, frame[:-1], 4)


@needs_data
def test_causal_windows_on_real_samples(tmp_cache):
    d = load_pairs("val", stride=5, limit_clips=2, cache=False)
    w = causal_windows(d["seq"], d["frame"], 9)
    assert np.all(w[:, -1] == np.arange(len(w))) and np.all(d["seq"][w] == d["seq"][:, None])
