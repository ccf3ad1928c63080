"""Command-line tools of the backends area: diffpose-export-sampler, diffpose-bench-sampler."""
import hashlib
import json
from pathlib import Path

from diffpose_ros.backends.export import read_metadata, weights_sha256
from diffpose_ros.lifter.model_io import init_bundle
from diffpose_ros.tools import bench_sampler, export_sampler


def test_export_tool_is_idempotent_and_reproducible(tmp_path, capsys):
    folder, cache = tmp_path / "bundle", tmp_path / "cache"
    init_bundle(folder)
    argv = ["--weights-dir", str(folder), "--steps", "2", "--max-people", "3",
            "--cache-dir", str(cache)]
    assert export_sampler.main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    path = Path(first["onnx"])
    assert path.parent == cache / "samplers" and path.name.startswith("sampler_s2_")
    assert first["ops_not_in_tensorrt_8_5_set"] == []
    assert first["metadata"]["weights_sha256"] == weights_sha256(folder)
    assert first["metadata"]["hypotheses"] == "dynamic"
    stamp = path.stat().st_mtime_ns
    assert export_sampler.main(argv) == 0  # up to date: kept
    assert path.stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert export_sampler.main(argv + ["--force"]) == 0  # forced: same bytes (no timestamps)
    forced = json.loads(capsys.readouterr().out)
    assert forced["sha256"] == first["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_metadata(path)["steps"] == "2"
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == [path.name]


def test_bench_tool_writes_a_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--backends", "onnxruntime-cpu,torch-cpu", "--steps", "1,2", "--hyps", "2",
            "--people", "1,3", "--runs", "3", "--warmup", "1", "--threads", "1",
            "--out", str(out)]
    assert bench_sampler.main(argv) == 0
    table = json.loads(out.read_text())
    assert table["model"] == "frame" and table["runs"] == 3
    cells = {(r["backend"], r["steps"], r["people"]) for r in table["results"]}
    assert cells == {(b, k, p) for b in ("onnxruntime-cpu", "torch-cpu") for k in (1, 2)
                     for p in (1, 3)}
    assert all(0 < r["median_ms"] <= r["p90_ms"] for r in table["results"])
    assert "K" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # no temp file left
