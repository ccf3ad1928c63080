"""Fixed-camera sequences (the per-track filter's evaluation data) and causal windows."""
import numpy as np
import pytest

from diffpose_ros import camera, paths
from diffpose_ros.data.noise import NoiseConfig
from diffpose_ros.data.sequence import MOCAP_DIR, causal_windows, clip_hash, load_clip_h36m, make_sequence
from diffpose_ros.data.virtual_camera import CameraConfig
from diffpose_ros.skeleton import H36M_JOINTS

needs_data = pytest.mark.skipif(not paths.MOCAP_DIR.is_dir(), reason="shared mocap data not found")
J = {n: i for i, n in enumerate(H36M_JOINTS)}
CLIP = "bandai-namco-1/dataset-1_walk_normal_001.bvh"


def _sequence(clip=CLIP, cam_i=0, noise=None, stride=3):
    pose, floor, _ = load_clip_h36m(MOCAP_DIR / clip)
    rng = np.random.default_rng([0, clip_hash(clip), cam_i])
    frames = np.arange(0, len(pose), stride)
    return pose, make_sequence(pose, floor, frames, rng, noise or NoiseConfig(), CameraConfig(distance_range=(3.0, 6.0)))


@needs_data
def test_sequence_layout_and_geometry():
    pose, d = _sequence()
    S = len(d["frame"])
    assert S > 30
    shapes = {"keypoints": (S, 17, 2), "keypoints_clean": (S, 17, 2), "conf": (S, 17), "visible": (S, 17),
              "keypoints_px": (S, 17, 2), "pose3d": (S, 17, 3), "root": (S, 3), "K": (S, 3, 3),
              "image_size": (S, 2), "frame": (S,)}
    for k, shp in shapes.items():
        assert d[k].shape == shp, k
        assert d[k].dtype in (np.float32, np.int32, np.bool_), (k, d[k].dtype)
    assert d["conf"].min() >= 0 and d["conf"].max() <= 1
    np.testing.assert_allclose(d["pose3d"][:, 0], 0, atol=1e-6)
    # one camera for the whole clip: the same K everywhere, and the camera-frame poses are one
    # rigid transform of the world poses (pairwise joint distances are kept)
    assert np.all(d["K"] == d["K"][0])
    p = d["pose3d"] + d["root"][:, None]
    w = pose[d["frame"]]
    dist = lambda x: np.linalg.norm(x[:, :, None] - x[:, None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(dist(p), dist(w), atol=1e-4)
    # clean keypoints are the pinhole projection of the 3D pose; noisy px and normalised agree
    np.testing.assert_allclose(d["keypoints_clean"][d["visible"]], (p[..., :2] / p[..., 2:])[d["visible"]], atol=1e-4)
    np.testing.assert_allclose(camera.normalize(d["keypoints_px"], d["K"]), d["keypoints"], atol=1e-4)
    # the camera frame is y-down: the head is above the pelvis; the person is 3-6 m away or so
    assert np.mean(d["pose3d"][:, J["head"], 1] < -0.3) > 0.8
    assert 2.0 < np.median(d["root"][:, 2]) < 8.0
    assert np.all(np.diff(d["frame"]) % 3 == 0)


@needs_data
def test_sequence_is_seeded_and_noise_can_be_off():
    _, a = _sequence()
    _, b = _sequence()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    _, c = _sequence(cam_i=1)
    assert not np.array_equal(a["K"][0], c["K"][0]) or not np.allclose(a["root"][:3], c["root"][:3])
    _, clean = _sequence(noise=NoiseConfig(enabled=False))
    np.testing.assert_allclose(clean["keypoints"], clean["keypoints_clean"], atol=1e-5)
    # the noise is correlated from frame to frame (a detector's errors are)
    err = (a["keypoints_px"] - camera.denormalize(a["keypoints_clean"], a["K"]))[:, J["thorax"]]
    ok = a["visible"][:, J["thorax"]]
    e = err[ok & np.r_[ok[1:], False]][:-1]
    assert np.corrcoef(e[:-1, 0], e[1:, 0])[0, 1] > 0.2


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
def test_causal_windows_on_real_sequences():
    parts = [_sequence(cam_i=i)[1] for i in range(2)]
    seq = np.concatenate([np.full(len(p["frame"]), i) for i, p in enumerate(parts)])
    frame = np.concatenate([p["frame"] for p in parts])
    w = causal_windows(seq, frame, 9)
    assert np.all(w[:, -1] == np.arange(len(w))) and np.all(seq[w] == seq[:, None])
    assert np.all(np.diff(frame[w], axis=1) >= 0)
