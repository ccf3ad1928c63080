"""diffpose-build-dataset and diffpose-render-data on a small source; the map derivation."""
import json

import pytest

from diffpose_ros import paths

needs_cmu = pytest.mark.skipif(not (paths.SHARED_DATA / "mocap-cmu").is_dir(), reason="shared data not found")
needs_data = pytest.mark.skipif(not paths.MOCAP_DIR.is_dir(), reason="shared mocap data not found")


@needs_cmu
def test_build_dataset_tool(tmp_path, monkeypatch, capsys):
    from diffpose_ros.tools import build_dataset
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path))
    out_json = tmp_path / "summary.json"
    args = ["--data", "shared:sources=cmu-mb-fairmotion,cmu-daz-jaanga", "--bones", "--no-progress",
            "--json", str(out_json)]
    assert build_dataset.main(args) == 0
    text = capsys.readouterr().out
    assert "| train | cmu-daz-jaanga |" in text and "thigh" in text and "reference (H36M-like" in text
    s = json.loads(out_json.read_text())
    assert s["clips"] == 13 and not s["cached"] and s["cache"].startswith(str(tmp_path))
    rows = {(r["split"], r["source"]): r for r in s["splits"]}
    assert rows[("train", "all")]["clips"] + rows.get(("val", "all"), {"clips": 0})["clips"] == 13
    bones = {r["source"]: r for r in s["bones_at_1.75m"]}
    assert 0.35 < bones["cmu-daz-jaanga"]["thigh"] < 0.55
    assert build_dataset.main(args) == 0                     # second run: from the cache
    assert json.loads(out_json.read_text())["cached"]
    assert build_dataset.main(["--data", "bvh:/no/such/folder", "--no-progress"]) == 2
    assert "not found" in capsys.readouterr().err


@needs_cmu
def test_render_data_tool(tmp_path, monkeypatch, capsys):
    from diffpose_ros.tools import render_data
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path))
    out = tmp_path / "samples.png"
    assert render_data.main(["--out", str(out), "--num", "2", "--data", "shared:sources=cmu-mb-fairmotion"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert not list(tmp_path.glob("*.tmp*"))


@needs_cmu
@pytest.mark.slow
def test_shipped_maps_match_their_derivation(tmp_path, monkeypatch):
    """The numbers in skeleton_maps/*.json are what data/map_design.py derives (no drift)."""
    from diffpose_ros.data import map_design
    from diffpose_ros.data.mapping import load_map
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path))
    for name in ("iclone_cc3", "cmu_mb", "daz", "bandai_namco"):
        derived = map_design.derive(name)["joints"]
        shipped = load_map(name)["joints"]
        for joint in ("l_hip", "r_shoulder", "neck_nose", "head"):
            a, b = derived[joint], shipped[joint]
            if "offset" in a:
                assert a["at"] == b["at"] and a["offset"] == pytest.approx(b["offset"], abs=2e-3), (name, joint)
            else:
                assert a == pytest.approx(b, abs=2e-3), (name, joint)
