"""Tracker: id stability, birth/death, no id reuse, out-of-order stamps; real sequences."""
import cv2
import numpy as np
import pytest

from diffpose_ros.detector.export import DEFAULT_ONNX
from diffpose_ros.detector.tracker import Tracker
from diffpose_ros.detector.yolo_pose import Detection, YoloPoseDetector, box_iou
from diffpose_ros.paths import IMAGES_DIR

needs_model = pytest.mark.skipif(not DEFAULT_ONNX.exists(),
                                 reason=f"{DEFAULT_ONNX} not exported yet (run diffpose-export-detector)")
needs_images = pytest.mark.skipif(not (IMAGES_DIR / "vtest.avi").exists(),
                                  reason=f"shared images not found in {IMAGES_DIR}")


def person(x, y, w=60.0, h=150.0, seed=0):
    """A synthetic detection: box at (x, y) and keypoints spread inside it."""
    rng = np.random.default_rng(seed)
    rel = rng.uniform(0.1, 0.9, (17, 2))
    kp = np.array([x, y]) + rel * [w, h]
    return Detection(np.array([x, y, x + w, y + h]), 0.9, kp, np.full(17, 0.9))


def test_ids_stable_while_people_walk_past_each_other():
    tr = Tracker()
    ids = {}
    for f in range(30):
        a = person(10 + 4 * f, 50, seed=1)          # walks right
        b = person(250 - 4 * f, 60, seed=2)         # walks left, crosses a's path
        tracks = tr.update([b, a] if f % 2 else [a, b], f * 0.1)
        by_x = {t.track_id: t.detection.box[0] for t in tracks}
        got = {("a" if abs(x - (10 + 4 * f)) < 1e-9 else "b"): tid for tid, x in by_x.items()}
        for k, tid in got.items():
            assert ids.setdefault(k, tid) == tid, f"id switch for {k} at frame {f}"
    assert len(set(ids.values())) == 2


def test_birth_tentative_then_confirmed():
    tr = Tracker(min_hits=2)
    (t,) = tr.update([person(0, 0)], 0.0)
    assert t.hits == 1 and not t.confirmed            # reported from the first frame
    (t2,) = tr.update([person(2, 0)], 0.1)
    assert t2.track_id == t.track_id and t2.hits == 2 and t2.confirmed
    # a tentative track that misses a frame is dropped and reported as removed
    (n,) = [x for x in tr.update([person(2, 0), person(400, 0, seed=5)], 0.2) if x.hits == 1]
    tr.update([person(2, 0)], 0.3)
    assert tr.removed_ids() == [n.track_id]


def test_death_after_timeout_and_ids_never_reused():
    tr = Tracker(max_age_s=1.0)
    first = tr.update([person(0, 0)], 0.0)[0].track_id
    tr.update([person(1, 0)], 0.1)
    assert tr.update([], 0.9) == [] and tr.last_removed == []      # coasting, still alive
    tracks = tr.update([person(2, 0)], 1.0)                         # comes back in time
    assert tracks[0].track_id == first
    tr.update([], 1.5)
    assert tr.last_removed == []
    tr.update([], 2.2)                                              # 1.2 s unseen: dead
    assert tr.last_removed == [first] and tr.tracks == []
    again = tr.update([person(2, 0)], 2.3)[0].track_id              # same place: a new id
    assert again != first and again > first
    seen = {first, again}
    for k in range(5):
        tr.update([], 10.0 + 5 * k)
        tid = tr.update([person(2, 0)], 10.1 + 5 * k)[0].track_id
        assert tid not in seen
        seen.add(tid)


def test_out_of_order_stamps_do_not_crash():
    tr = Tracker(max_age_s=1.0)
    a = tr.update([person(0, 0)], 5.0)[0].track_id
    tr.update([person(1, 0)], 5.2)
    t = tr.update([person(2, 0)], 5.1)              # older stamp: still associated
    assert t[0].track_id == a and t[0].last_stamp == 5.2
    assert tr.update([], 4.8) == [] and tr.last_removed == []   # older again, nothing dies
    tr.update([person(3, 0)], 0.0)                  # big jump back (bag replay): reset
    assert a in tr.last_removed
    assert tr.tracks[0].track_id != a
    with pytest.raises(ValueError, match="finite"):
        tr.update([], float("nan"))


def test_far_detection_is_not_matched():
    tr = Tracker()
    a = tr.update([person(0, 0)], 0.0)[0].track_id
    b = tr.update([person(500, 300)], 0.1)[0].track_id
    assert a != b and tr.last_removed == [a]       # tentative a missed a frame: dropped
    cost = tr.cost_matrix(tr.tracks, [person(502, 300, seed=0), person(0, 0)])
    assert cost[0, 0] < 0.2 and cost[0, 1] == pytest.approx(1.0)


@needs_model
@needs_images
def test_same_ids_on_real_sequences():
    det = YoloPoseDetector(threads=2)
    # basketball1 -> basketball2 (consecutive frames, two people)
    tr = Tracker()
    t1 = tr.update(det.detect(cv2.imread(str(IMAGES_DIR / "basketball1.png"), cv2.IMREAD_UNCHANGED)), 0.0)
    t2 = tr.update(det.detect(cv2.imread(str(IMAGES_DIR / "basketball2.png"), cv2.IMREAD_UNCHANGED)), 1 / 30)
    assert len(t1) == len(t2) == 2
    for a in t1:
        iou = [box_iou(a.detection.box[None], b.detection.box[None])[0, 0] for b in t2]
        same = t2[int(np.argmax(iou))]
        assert max(iou) > 0.7 and same.track_id == a.track_id and same.confirmed

    # vtest.avi, first 100 frames at 10 fps: a person (box IoU > 0.5 with a box of the
    # previous frame) keeps their id
    cap = cv2.VideoCapture(str(IMAGES_DIR / "vtest.avi"))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    tr = Tracker()
    prev, pairs, switches = {}, 0, 0
    for f in range(100):
        ok, img = cap.read()
        assert ok
        cur = {t.track_id: t.detection.box for t in tr.update(det.detect(img), f / fps)}
        for tid, box in cur.items():
            for pid, pbox in prev.items():
                if box_iou(box[None], pbox[None])[0, 0] > 0.5:
                    pairs += 1
                    switches += tid != pid
        prev = cur
    cap.release()
    assert pairs >= 50, "too few people followed across frames to test anything"
    assert switches == 0
