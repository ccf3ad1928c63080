"""Export (hash check, idempotence), diffpose-detect and diffpose-bench-detector."""
import json

import numpy as np
import pytest

from diffpose_ros.detector import export
from diffpose_ros.paths import IMAGES_DIR
from diffpose_ros.tools import bench_detector, detect

needs_model = pytest.mark.skipif(not export.DEFAULT_ONNX.exists(),
                                 reason=f"{export.DEFAULT_ONNX} not exported yet (run diffpose-export-detector)")


def test_changed_weights_are_refused(tmp_path):
    fake = tmp_path / "yolo11n-pose.pt"
    fake.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="sha256"):
        export.verify_pt(fake)
    with pytest.raises(ValueError, match="sha256"):
        export.export_onnx(tmp_path / "x.onnx", pt=fake)
    assert not (tmp_path / "x.onnx").exists()


@needs_model
def test_export_is_up_to_date():
    assert export.is_up_to_date(export.DEFAULT_ONNX)
    # a second export is a no-op that returns the same file
    before = export.DEFAULT_ONNX.stat().st_mtime_ns
    assert export.export_onnx() == export.DEFAULT_ONNX
    assert export.DEFAULT_ONNX.stat().st_mtime_ns == before


def test_intrinsics():
    K = detect.intrinsics_from_fov(640, 480, 90.0)
    assert K[0, 0] == pytest.approx(320.0) and K[1, 1] == pytest.approx(320.0)
    assert (K[0, 2], K[1, 2]) == (319.5, 239.5)   # pixel centres at integers: the centre is (w - 1) / 2
    np.testing.assert_allclose(detect.parse_k("500,501,320,240"), [[500, 0, 320], [0, 501, 240], [0, 0, 1]])
    with pytest.raises(ValueError, match="4 values"):
        detect.parse_k("1,2,3")
    with pytest.raises(ValueError, match="fov"):
        detect.intrinsics_from_fov(640, 480, 200)


@needs_model
def test_detect_tool_writes_lifter_input(tmp_path, capsys):
    out = tmp_path / "kp.npz"
    imgs = [str(IMAGES_DIR / "basketball1.png"), str(IMAGES_DIR / "basketball2.png")]
    assert detect.main(imgs + ["-o", str(out), "--overlay-dir", str(tmp_path / "ov")]) == 0
    assert "60 deg" in capsys.readouterr().err
    d = np.load(out)
    n = len(d["frame"])
    assert n == 4 and d["keypoints"].shape == (n, 17, 2) and d["scores"].shape == (n, 17)
    assert d["sigma_px"].shape == (n, 17) and np.all(d["sigma_px"] > 0)
    assert d["K"].shape == (3, 3) and str(d["format"]) == "h36m"
    assert sorted(d["frame"].tolist()) == [0, 0, 1, 1]
    assert set(d["track_ids"][d["frame"] == 0]) == set(d["track_ids"][d["frame"] == 1])
    assert len(list((tmp_path / "ov").glob("*.png"))) == 2
    assert not list(tmp_path.glob("*.tmp"))

    out2 = tmp_path / "coco.npz"
    assert detect.main(imgs[:1] + ["-o", str(out2), "--format", "coco17", "--K", "500,500,320,240"]) == 0
    d2 = np.load(out2)
    assert str(d2["format"]) == "coco17" and d2["K"][0, 0] == 500
    with pytest.raises(ValueError, match="cannot read"):
        detect.main([str(tmp_path / "nope.png"), "-o", str(tmp_path / "x.npz")])
    assert not (tmp_path / "x.npz").exists()


@needs_model
def test_bench_tool(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_detector.main(["--rounds", "2", "--frames", "1", "--no-accuracy", "--out", str(out),
                                "--settings", "sq: size=320,letterbox=square", "al: size=320"]) == 0
    res = json.loads(out.read_text())
    assert set(res["latency"]) == {"sq", "al"}
    assert res["latency"]["sq"]["input"] == "320x320" and res["latency"]["al"]["input"] == "320x256"
    assert res["latency"]["al"]["total"]["n"] == 2 and 0 < res["latency"]["al"]["total"]["median_ms"] < 5000
    assert "latency per frame" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unique"):
        bench_detector.main(["--no-accuracy", "--settings", "a: size=320", "a: size=416"])


def test_bench_settings_parse():
    s = bench_detector.Setting.parse("fast: size=416,letterbox=tight,model=int8,threads=1,opt=basic,spin=1")
    assert (s.name, s.size, s.letterbox, s.model, s.threads, s.opt, s.spin) == ("fast", 416, "tight", "int8", 1,
                                                                              "basic", True)
    assert s.model_path() == export.INT8_ONNX
    assert bench_detector.Setting.parse("size=480").size == 480
    with pytest.raises(ValueError, match="not one of"):
        bench_detector.Setting.parse("x: colour=red")


def test_compare_counts_and_errors():
    from diffpose_ros.detector.yolo_pose import Detection

    def det(x, score, shift=0.0):
        kp = np.stack([np.linspace(x, x + 50, 17), np.linspace(10, 200, 17)], axis=1) + shift
        return Detection(box=np.array([x, 0, x + 60, 210.0]), score=score, keypoints=kp,
                         keypoint_conf=np.full(17, 0.9))
    ref = [[det(0, 0.9), det(300, 0.8)], [det(0, 0.9)]]
    cand = [[det(0, 0.9, 3.0), det(300, 0.3)], [det(0, 0.9), det(500, 0.7)]]
    r = bench_detector.compare(ref, cand, score=0.4)
    # person 2 of frame 1 matches but with a score under the threshold: not found, keypoints compared
    assert (r["reference_people"], r["found"], r["extra"]) == (3, 2, 1)
    assert r["keypoint_median_px"] == 0.0 and r["keypoint_p90_px"] == pytest.approx(3 * 2 ** 0.5, abs=0.01)
    assert r["keypoint_per_joint"]["nose"]["n"] == 3


def test_int8_export_is_checked_and_idempotent():
    if not export.INT8_ONNX.exists():
        pytest.skip("int8 model not made (diffpose-export-detector --int8)")
    before = export.INT8_ONNX.stat().st_mtime_ns
    assert export.quantize_int8() == export.INT8_ONNX
    assert export.INT8_ONNX.stat().st_mtime_ns == before
    meta = json.loads(export.INT8_ONNX.with_suffix(".json").read_text())
    assert meta["source_onnx_sha256"] == export.sha256_file(export.DEFAULT_ONNX)
