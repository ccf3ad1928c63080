"""The ROS-free pipeline: intrinsics and undistortion, and the reliability rule for people."""
import cv2
import numpy as np
import pytest

from diffpose_ros.paths import IMAGES_DIR, WEIGHTS_DIR
from diffpose_ros.pipeline import Intrinsics, PipelineConfig, PosePipeline


def test_intrinsics_validation_and_fov():
    intr = Intrinsics.from_fov(640, 480, 90.0)
    assert intr.K[0, 0] == pytest.approx(320.0) and intr.K[0, 2] == pytest.approx(319.5)
    for K in ([[0, 0, 1], [0, 500, 1], [0, 0, 1]], [[np.nan, 0, 1], [0, 500, 1], [0, 0, 1]]):
        with pytest.raises(ValueError, match="invalid intrinsics"):
            Intrinsics(K=K)
    with pytest.raises(ValueError, match="distortion"):
        Intrinsics(K=intr.K, D=[np.inf, 0, 0, 0, 0])


def test_undistort_inverts_the_lens_model():
    K = np.array([[600.0, 0, 320], [0, 600, 240], [0, 0, 1]])
    D = np.array([-0.25, 0.08, 0.001, -0.002, 0.0])
    rng = np.random.default_rng(0)
    pts3d = np.c_[rng.uniform(-1, 1, (50, 2)), rng.uniform(2, 5, 50)]
    ideal = (pts3d[:, :2] / pts3d[:, 2:]) * 600 + [320, 240]
    distorted, _ = cv2.projectPoints(pts3d, np.zeros(3), np.zeros(3), K, D)
    back = Intrinsics(K=K, D=D).undistort(distorted.reshape(-1, 2))
    np.testing.assert_allclose(back, ideal, atol=1e-2)   # OpenCV iterates 5 times: < 0.01 px
    np.testing.assert_array_equal(Intrinsics(K=K).undistort(ideal), ideal)   # no distortion: unchanged


@pytest.mark.skipif(not (WEIGHTS_DIR / "detector" / "yolo11n-pose.onnx").exists(), reason="detector ONNX not exported")
def test_unreliable_people_flagged_or_dropped():
    image = cv2.imread(str(IMAGES_DIR / "basketball1.png"))
    intr = Intrinsics.from_fov(640, 480, 60.0)
    strict = PipelineConfig(min_keypoint_conf=0.99, min_keypoints=17, publish_unreliable=True)
    pipe = PosePipeline.create(backend="torch", config=strict)
    flagged = pipe.process(image, intr, 1.0).people
    assert flagged and not any(p.reliable for p in flagged)
    pipe.config = PipelineConfig(min_keypoint_conf=0.99, min_keypoints=17, publish_unreliable=False)
    assert pipe.process(image, intr, 2.0).people == []
    pipe.config = PipelineConfig()
    normal = pipe.process(image, intr, 3.0).people
    assert len(normal) == 2 and all(p.reliable for p in normal)
    assert {p.track_id for p in normal} == {p.track_id for p in flagged}   # the tracker carried on


def test_check_people_refuses_only_the_bad_ones():
    """One batched check for a frame's people; a bad one (here a filter state with a negative
    variance, or a NaN) is found and refused alone, the others are checked and repaired."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from ros_peer import two_people
    from diffpose_ros.people import FilteredState, check_people, repair_covariance
    people = two_people() + two_people()
    for p in people:
        p.covariance = p.covariance.copy()
        p.covariance[3, 0, 1] += 1e-12                             # asymmetric by rounding
        p.filtered = FilteredState(root=p.root, velocity=np.zeros(3), covariance=np.eye(6) * 0.01,
                                   positions=p.positions, joint_covariance=p.covariance, time_since_measurement=0.1,
                                   is_prediction=False, ahead_s=1.0, ahead_root=p.root, ahead_covariance=np.eye(3))
    assert check_people(people) == [None] * 4
    assert all(np.array_equal(p.covariance, np.swapaxes(p.covariance, 1, 2)) for p in people)
    people[1].filtered.covariance = -np.eye(6)
    people[3].positions = np.full((17, 3), np.nan)
    errors = check_people(people)
    assert errors[0] is None and errors[2] is None
    assert "positive semi-definite" in str(errors[1]) and "positions has non-finite" in str(errors[3])
    # states_only (the pipeline's second pass): the people's own values are not looked at again
    errors = check_people(people, states_only=True)
    assert errors[0] is None and errors[2] is None and errors[3] is None
    assert "positive semi-definite" in str(errors[1])
    # a PSD matrix comes back as it was (symmetrised), a tiny negative eigenvalue is clipped
    good = np.diag([1e-2, 2e-2, 3e-2])
    assert np.array_equal(repair_covariance(good), good)
    tiny = good.copy()
    tiny[0, 0] = -1e-12
    assert np.linalg.eigvalsh(repair_covariance(tiny)).min() > 0


@pytest.mark.skipif(not (WEIGHTS_DIR / "detector" / "yolo11n-pose.onnx").exists(), reason="detector ONNX not exported")
@pytest.mark.parametrize("ahead", [1, 9])
def test_overlapped_stages_give_what_process_gives(ahead):
    """The node's pipeline_overlap runs detect_stage() of the next image while lift_stage() of
    this one runs. Any such order gives exactly the frames process() gives, a time jump
    (forget_tracks) included: the tracker's later images must not change the detections a frame
    still waiting for the lifter holds (ahead = 9: every image detected before the first lift),
    and the lifter's windows are cleared for the first image after the jump, not for a frame
    from before it that is still being lifted (ahead = 1: the node's order)."""
    from diffpose_ros.tools.bench_detector import video_frames
    frames = video_frames(range(60, 78, 2))                 # moving pedestrians, 768x576
    stamps = [1.0 + 0.1 * i for i in range(5)] + [0.2 + 0.1 * i for i in range(4)]   # back in time at 5
    intr = Intrinsics.from_fov(768, 576, 60.0)

    def pipeline():       # the temporal model keeps windows per track: their reset matters
        return PosePipeline.create(backend="torch", lifter_weights=WEIGHTS_DIR / "temporal")

    def detect(pipe, i):
        if i == 5:
            pipe.forget_tracks()
        return pipe.detect_stage(frames[i], stamps[i])

    pipe = pipeline()
    sequential = []
    for i in range(len(frames)):
        if i == 5:
            pipe.forget_tracks()
        sequential.append(pipe.process(frames[i], intr, stamps[i]))
    pipe = pipeline()
    detected = [detect(pipe, i) for i in range(ahead)]
    overlapped = []
    for i in range(len(frames)):
        if i + ahead < len(frames):
            detected.append(detect(pipe, i + ahead))
        overlapped.append(pipe.lift_stage(detected[i], intr))

    assert sum(len(r.people) for r in sequential) >= 9
    for a, b in zip(sequential, overlapped, strict=True):
        assert [p.track_id for p in a.people] == [p.track_id for p in b.people]
        assert a.removed_track_ids == b.removed_track_ids
        for p, q in zip(a.people, b.people):
            np.testing.assert_array_equal(p.keypoints_2d, q.keypoints_2d)
            np.testing.assert_array_equal(p.positions, q.positions)
            np.testing.assert_array_equal(p.covariance, q.covariance)
            assert (p.filtered is None) == (q.filtered is None)
            if p.filtered is not None:
                np.testing.assert_array_equal(p.filtered.covariance, q.filtered.covariance)
