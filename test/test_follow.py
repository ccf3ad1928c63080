"""Follow mode: the detector in a region of its own input, and when the pipeline uses one."""
import cv2
import numpy as np
import pytest

from diffpose_ros.detector.export import DEFAULT_ONNX
from diffpose_ros.detector.follow import FollowConfig, Follower
from diffpose_ros.detector.yolo_pose import YoloPoseDetector
from diffpose_ros.paths import IMAGES_DIR

needs_model = pytest.mark.skipif(not DEFAULT_ONNX.exists(),
                                 reason=f"{DEFAULT_ONNX} not exported yet (run diffpose-export-detector)")
needs_video = pytest.mark.skipif(not (IMAGES_DIR / "vtest.avi").exists(), reason="shared vtest.avi not found")


def test_follower_plans_whole_image_every_k_frames_and_regions_between():
    f = Follower(FollowConfig(every=3, margin=0.5))
    box = [[100, 100, 140, 180]]                       # 40 x 80 px
    plans = []
    for _ in range(7):
        r = f.plan((480, 640), box)
        plans.append(r)
        f.done(r, found=1, followed=1)
    assert [p is None for p in plans] == [True, False, False, True, False, False, True]
    assert plans[1] == [(60.0, 60.0, 180.0, 220.0)]     # grown by 0.5 x 80 px on every side
    # two people far apart: two small regions; overlapping ones: their union
    apart = f.plan((480, 640), [[100, 100, 140, 180], [500, 100, 540, 180]])
    assert apart is None or len(apart) == 2               # (None if this frame is a whole-image one)
    f2 = Follower(FollowConfig(every=9, margin=0.5))
    f2.done(None, 2, 0)
    assert len(f2.plan((480, 640), [[100, 100, 140, 180], [500, 100, 540, 180]])) == 2
    assert f2.plan((480, 640), [[100, 100, 140, 180], [150, 100, 190, 180]]) == [(60.0, 60.0, 230.0, 220.0)]
    assert f.counts == {"whole": 3, "region": 4, "redone": 0}
    # a region that loses a person is redone on the whole image, and counts as a whole frame
    f = Follower(FollowConfig(every=5))
    f.done(None, 1, 0)
    r = f.plan((480, 640), box)
    assert r is not None and f.done(r, found=0, followed=1)
    f.done(None, 1, 1)
    assert f.since_full == 0 and f.counts["redone"] == 1
    # off, nobody to follow, or people filling the image: the whole image
    assert Follower(FollowConfig(every=0)).plan((480, 640), box) is None
    f = Follower(FollowConfig(every=5))
    f.done(None, 0, 0)
    assert f.plan((480, 640), np.zeros((0, 4))) is None
    assert f.plan((480, 640), [[0, 0, 600, 470]]) is None
    with pytest.raises(ValueError, match="every"):
        FollowConfig(every=-1)
    with pytest.raises(ValueError, match="max_area"):
        FollowConfig(max_area=0.0)


@needs_model
@needs_video
def test_region_detection_matches_the_whole_image_on_real_pedestrians():
    """vtest.avi: people about 100 px tall in a 768x576 image. Detected in the region around
    each (grown by 0.3 of its size), the same people come back with about the whole image's
    keypoints (same pixels, scale and grid phase; measured 0.5 px median, p90 2.4 px, over
    frames 0:400:8) from a network input a tenth of the size."""
    cap = cv2.VideoCapture(str(IMAGES_DIR / "vtest.avi"))
    frames = []
    for i in range(361):
        ok, img = cap.read()
        assert ok
        if i in (40, 200, 240, 360):                       # frames with two pedestrians each
            frames.append(img)
    cap.release()
    det = YoloPoseDetector(threads=2, score_threshold=0.4)
    errs, people = [], 0
    for img in frames:
        whole = det.detect(img)
        whole_shape = det.last_input_shape
        for target in whole:
            people += 1
            s = max(target.box[2] - target.box[0], target.box[3] - target.box[1])
            found = det.detect(img, tuple(target.box + np.array([-0.3, -0.3, 0.3, 0.3]) * s))
            shape = det.last_input_shape
            assert shape[0] * shape[1] < 0.2 * whole_shape[0] * whole_shape[1]
            assert shape[0] % 32 == 0 and shape[1] % 32 == 0
            best = min(found, key=lambda d: np.abs(d.box - target.box).sum())
            assert np.abs(best.box - target.box).max() < 0.15 * s
            seen = target.keypoint_conf > 0.5
            errs.append(np.linalg.norm(best.keypoints[seen] - target.keypoints[seen], axis=1))
    err = np.concatenate(errs)
    assert people >= 6
    assert np.median(err) < 1.5 and np.percentile(err, 90) < 6.0, (np.median(err), np.percentile(err, 90))
    # a region that covers the whole input: exactly the whole-image result
    img = frames[0]
    whole = det.detect(img)
    again = det.detect(img, (0, 0, img.shape[1], img.shape[0]))
    np.testing.assert_allclose(sorted(d.score for d in again), sorted(d.score for d in whole), rtol=1e-6)
    with pytest.raises(ValueError, match="region"):
        det.detect(img, (10, 10, 5, 20))


class RegionRecorder:
    """A detector stand-in that sees two fixed people and records where it was asked to look."""
    nms_iou = 0.5

    def __init__(self):
        from diffpose_ros.detector.yolo_pose import Detection
        kp = np.zeros((17, 2))
        self.people = [Detection(np.array([100.0, 100, 140, 180]), 0.9, kp + 120, np.ones(17)),
                       Detection(np.array([500.0, 100, 540, 180]), 0.8, kp + 520, np.ones(17))]
        self.calls = []
        self.score_threshold = 0.4
        self.hide_second = False

    def detect(self, image, region=None):
        self.calls.append(region)
        people = self.people[:1] if self.hide_second else self.people
        if region is None:
            return list(people)
        x1, y1, x2, y2 = region
        return [d for d in people if d.box[0] >= x1 and d.box[2] <= x2 and d.box[1] >= y1 and d.box[3] <= y2]


def test_pipeline_follows_tracked_people_and_searches_again_when_one_is_lost():
    from diffpose_ros.detector.tracker import Tracker
    from diffpose_ros.pipeline import PipelineConfig, PosePipeline
    det = RegionRecorder()
    pipe = PosePipeline(det, Tracker(), None, PipelineConfig(follow=FollowConfig(every=4, margin=0.3)))
    img = np.zeros((480, 640, 3), np.uint8)
    ids = []
    for f in range(5):
        tracks, _ = pipe.detect_and_track(img, f / 30)
        ids.append(sorted(t.track_id for t in tracks))
    # whole image, then three frames of one region per person (far apart), then the whole image
    assert det.calls[0] is None and det.calls[-1] is None
    assert len(det.calls) == 8 and None not in det.calls[1:-1]
    assert all(i == ids[0] for i in ids) and len(ids[0]) == 2
    # the second person vanishes between whole-image frames: the regions find one of two, so
    # the whole image is searched in the same frame
    det.calls.clear()
    det.hide_second = True
    pipe.detect_and_track(img, 5 / 30)
    assert None not in det.calls[:2] and det.calls[-1] is None and pipe.follower.counts["redone"] == 1
    # after a time jump nothing is followed: the whole image
    pipe.forget_tracks()
    det.calls.clear()
    pipe.detect_and_track(img, 0.0)
    assert det.calls == [None]
