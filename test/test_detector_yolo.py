"""YOLO-pose detector: letterbox, NMS, input handling, model validation, real images."""
import cv2
import numpy as np
import pytest

from diffpose_ros.detector.export import DEFAULT_ONNX
from diffpose_ros.detector.yolo_pose import (Detection, YoloPoseDetector, box_iou, letterbox, nms,
                                             to_bgr)
from diffpose_ros.paths import IMAGES_DIR
from diffpose_ros.skeleton import COCO_JOINTS

needs_model = pytest.mark.skipif(not DEFAULT_ONNX.exists(),
                                 reason=f"{DEFAULT_ONNX} not exported yet (run diffpose-export-detector)")
needs_images = pytest.mark.skipif(not (IMAGES_DIR / "basketball1.png").exists(),
                                  reason=f"shared images not found in {IMAGES_DIR}")
J = {n: i for i, n in enumerate(COCO_JOINTS)}


@pytest.fixture(scope="module")
def detector():
    return YoloPoseDetector(threads=2)


@pytest.mark.parametrize("hw", [(480, 640), (600, 512), (37, 1001), (999, 13), (641, 640), (17, 17)])
def test_letterbox_round_trip_odd_aspect(hw):
    h, w = hw
    img = np.zeros((h, w, 3), np.uint8)
    rng = np.random.default_rng(h * 7 + w)
    pts = np.c_[rng.uniform(0, w, 20), rng.uniform(0, h, 20)]
    out, lb = letterbox(img, 640)
    assert out.shape == (640, 640, 3)
    np.testing.assert_allclose(lb.to_original(lb.to_input(pts)), pts, atol=1e-9)
    # the image content really lands where the map says: its corners map to the content's edges
    corners = lb.to_input(np.array([[0.0, 0.0], [w, h]]))
    assert np.all(corners >= -1e-9) and np.all(corners <= 640 + 1e-9)
    assert max(corners[1] - corners[0]) == pytest.approx(640, abs=1)


def test_letterbox_maps_a_bright_spot():
    # a bright square in a wide image: find it in the letterboxed input, map back
    img = np.zeros((300, 900, 3), np.uint8)
    img[200:220, 700:720] = 255
    out, lb = letterbox(img, 640)
    ys, xs = np.nonzero(out[:, :, 0] > 128)
    centre_in = np.array([xs.mean() + 0.5, ys.mean() + 0.5])  # pixel centres
    np.testing.assert_allclose(lb.to_original(centre_in), [710, 210], atol=1.0)
    # padding is the neutral grey, content is not
    assert out[0, 0, 0] == 114 and out[320, 10, 0] == 0


def test_to_bgr_shapes_and_errors():
    g = np.full((5, 7), 9, np.uint8)
    for img in (g, g[:, :, None], np.dstack([g, g, g])):
        out = to_bgr(img)
        assert out.shape == (5, 7, 3) and out.dtype == np.uint8 and np.all(out == 9)
    with pytest.raises(ValueError, match="uint8"):
        to_bgr(np.zeros((5, 7), np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_bgr(np.zeros((5, 7, 4), np.uint8))


def test_nms_and_iou():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)
    assert box_iou(boxes[:1], boxes[2:3])[0, 0] == 0.0
    keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [3, 2]           # highest first; the overlapping two are suppressed
    assert nms(boxes, scores, 0.99).tolist() == [3, 0, 1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_wrong_output_shape_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    # a "model" whose output has 84 channels (a detection, not a pose model)
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 84, 10])
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, 84, 10])
    node0 = helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0)
    node1 = helper.make_node("Expand", ["m", "shape"], ["out"])
    graph = helper.make_graph([node0, node1], "g", [inp], [out], initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="56"):
        YoloPoseDetector(path)
    with pytest.raises(FileNotFoundError, match="diffpose-export-detector"):
        YoloPoseDetector(tmp_path / "missing.onnx")


@needs_model
@needs_images
def test_basketball_full_body(detector):
    img = cv2.imread(str(IMAGES_DIR / "basketball1.png"), cv2.IMREAD_UNCHANGED)
    assert img.ndim == 2  # the shared file is grey
    dets = detector.detect(img)
    assert detector.provider == "CPUExecutionProvider"
    assert all(isinstance(d, Detection) for d in dets)
    h, w = img.shape
    full = [d for d in dets if np.all((d.keypoints >= 0) & (d.keypoints < [w, h]))
            and d.keypoint_conf[J["l_ankle"]] > 0.5 and d.keypoint_conf[J["r_ankle"]] > 0.5]
    assert len(full) >= 1
    k = full[0].keypoints
    for side in ("l", "r"):
        assert k[J[f"{side}_ankle"], 1] > k[J[f"{side}_knee"], 1] > k[J[f"{side}_hip"], 1]
        assert k[J[f"{side}_hip"], 1] > k[J[f"{side}_shoulder"], 1] > k[J["nose"], 1] - 5
    # keypoints lie inside (or very near) the box
    b = full[0].box
    assert np.all(k >= b[:2] - 10) and np.all(k <= b[2:] + 10)
    # grey HxW, HxWx1 and BGR give the same answer
    d3 = detector.detect(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    d1 = detector.detect(img[:, :, None])
    assert len(d3) == len(d1) == len(dets)
    np.testing.assert_allclose(d3[0].keypoints, dets[0].keypoints, atol=1e-3)


@needs_model
@needs_images
def test_messi_and_empty(detector):
    img = cv2.imread(str(IMAGES_DIR / "messi5.jpg"))
    dets = detector.detect(img)
    assert len(dets) >= 1 and dets[0].score > 0.5
    assert dets[0].keypoints.shape == (17, 2) and dets[0].keypoint_conf.shape == (17,)
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (360, 500, 3), dtype=np.uint8)
    assert detector.detect(noise) == []
    # a crop of basketball1's empty wall between the two people
    wall = cv2.imread(str(IMAGES_DIR / "basketball1.png"), cv2.IMREAD_GRAYSCALE)[:, 200:420]
    assert detector.detect(wall) == []


@needs_model
@needs_images
def test_score_threshold_filters(detector):
    img = cv2.imread(str(IMAGES_DIR / "messi5.jpg"))
    strict = YoloPoseDetector(score_threshold=0.8)
    assert all(d.score >= 0.8 for d in strict.detect(img))
    assert len(strict.detect(img)) <= len(detector.detect(img))
    with pytest.raises(ValueError, match="score_threshold"):
        YoloPoseDetector(score_threshold=1.5)


@pytest.mark.parametrize("hw,size,mode,want", [
    ((480, 640), 640, "square", (640, 640)),
    ((480, 640), 640, "tight", (480, 640)),
    ((480, 640), 640, "aligned", (512, 640)),      # 80 px of grey above -> 16 px (80 mod 32)
    ((480, 640), 480, "aligned", (416, 480)),      # 60 px -> 28 px
    ((480, 640), 416, "tight", (320, 416)),
    ((600, 512), 640, "aligned", (640, 576)),      # portrait: the width is cut instead
    ((360, 640), 640, "aligned", (384, 640)),      # 16:9: 140 px -> 12 px
    ((640, 640), 320, "aligned", (320, 320)),
])
def test_rect_shape(hw, size, mode, want):
    from diffpose_ros.detector.yolo_pose import rect_shape
    got = rect_shape(*hw, size, mode)
    assert got == want and got[0] % 32 == 0 and got[1] % 32 == 0


def test_aligned_letterbox_is_the_square_one_cropped():
    # the aligned input is the square input with whole 32-px bands of padding removed, so the
    # image lands on the same grid phase; a letterbox of any (h, w) round-trips points
    from diffpose_ros.detector.yolo_pose import rect_shape
    img = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    square, lb_sq = letterbox(img, 640)
    aligned, lb_al = letterbox(img, rect_shape(480, 640, 640, "aligned"))
    cut = (640 - aligned.shape[0]) // 2
    assert cut % 32 == 0
    np.testing.assert_array_equal(aligned, square[cut:640 - cut])
    assert lb_sq.pad_y - lb_al.pad_y == cut
    pts = np.array([[0.0, 0.0], [639.0, 479.0], [100.5, 200.25]])
    np.testing.assert_allclose(lb_al.to_original(lb_al.to_input(pts)), pts, atol=1e-9)
    with pytest.raises(ValueError, match="letterbox mode"):
        rect_shape(480, 640, 640, "round")


def test_input_size_validation(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from diffpose_ros.detector.yolo_pose import check_input_size
    assert check_input_size(480) == 480
    for bad in (0, 100, 5000):
        with pytest.raises(ValueError, match="multiple of 32"):
            check_input_size(bad)
    # a fixed 64x64 model cannot take another input size: said before anything else
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 56, 1])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", [inp], [out])
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match="fixed 64x64"):
        YoloPoseDetector(path, input_size=640)
    with pytest.raises(ValueError, match="letterbox_mode"):
        YoloPoseDetector(path, letterbox_mode="round")


@needs_model
@needs_images
def test_dynamic_model_sizes_and_modes(detector):
    img = cv2.imread(str(IMAGES_DIR / "basketball1.png"))
    assert detector.fixed_shape is None and detector.input_size == 640
    assert detector.letterbox_mode == "aligned" and detector.input_shape(img.shape[:2]) == (512, 640)
    square = YoloPoseDetector(letterbox_mode="square")
    ref, got = square.detect(img), detector.detect(img)
    assert len(ref) == len(got) == 2
    # same content on the same grid phase: the keypoints barely move (measured 0.2 px median)
    for a, b in zip(sorted(ref, key=lambda d: d.box[0]), sorted(got, key=lambda d: d.box[0])):
        seen = a.keypoint_conf > 0.5
        assert np.median(np.linalg.norm(a.keypoints[seen] - b.keypoints[seen], axis=1)) < 1.0
    small = YoloPoseDetector(input_size=320)
    assert small.preprocess(img)[0].shape == (1, 3, 256, 320)
    assert len(small.detect(img)) >= 1
    small.input_size = 480                      # settable between frames on a dynamic model
    assert small.preprocess(img)[0].shape == (1, 3, 416, 480)
    with pytest.raises(ValueError, match="multiple of 32"):
        small.input_size = 500
