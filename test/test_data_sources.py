"""Source specs (diffpose-train --data), clip metadata, user BVH folders and Human3.6M as motion."""
import numpy as np
import pytest

from diffpose_ros import paths
from diffpose_ros.data import sources
from diffpose_ros.data.motion import MotionBank, MotionDataError
from diffpose_ros.data.sources import SourceSpecError, parse_source_spec

from test_data_mapping import CMU, build_bvh

needs_cmu = pytest.mark.skipif(not (paths.SHARED_DATA / "mocap-cmu").is_dir(), reason="shared data not found")


def test_parse_good_specs(tmp_path):
    s = parse_source_spec(f"bvh:{tmp_path}:map=cmu_mb:units=cm:fps=120:weight=2")
    assert s.kind == "bvh" and s.path == str(tmp_path)
    assert s.opts == {"map": "cmu_mb", "units": "cm", "fps": "120", "weight": "2"}
    assert parse_source_spec("shared").kind == "shared"
    assert parse_source_spec("shared:sources=cmu-iclone,bandai-namco-1:weight=0.5").opts["weight"] == "0.5"
    assert parse_source_spec("h36m:/x/data_3d_h36m.npz:subjects=S1,S5").path == "/x/data_3d_h36m.npz"
    assert parse_source_spec(f"bvh:{tmp_path}:units=0.056444").opts["units"] == "0.056444"


@pytest.mark.parametrize("spec, message", [
    ("", "empty"),
    ("mocap:/x", "unknown kind"),
    ("bvh", "needs a path"),
    ("bvh:/x:colour=red", "unknown option 'colour'"),
    ("bvh:/x:weight=-1", "positive"),
    ("bvh:/x:weight=abc", "not a number"),
    ("bvh:/x:fps=0", "positive"),
    ("bvh:/x:units=furlong", "units 'furlong'"),
    ("bvh:/x:map=no_such_map", "unknown skeleton map"),
    ("bvh:/x:drop=1.5", "whole number"),
    ("bvh:/x:weight=1:weight=2", "given twice"),
    ("shared:/somewhere", "takes no path"),
    ("shared:sources=cmu-iclone,mars", "unknown shared sources"),
    ("h36m:/x.npz:map=daz", "unknown option 'map'"),
])
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(SourceSpecError, match=message) as e:
        parse_source_spec(spec)
    assert spec in str(e.value)


def test_missing_paths(tmp_path):
    with pytest.raises(SourceSpecError, match="not found"):
        sources.resolve([f"bvh:{tmp_path / 'nope'}"])
    with pytest.raises(SourceSpecError, match="no .bvh files"):
        sources.resolve([f"bvh:{tmp_path}"])
    with pytest.raises(SourceSpecError, match="not found"):
        sources.resolve([f"h36m:{tmp_path / 'nope.npz'}"])


def test_bandai_metadata():
    m = sources.bandai_metadata("dataset-2_raise-up-both-hands_not-confident_004.bvh")
    assert m == {"dataset": 2, "action": "raise-up-both-hands", "style": "not-confident", "take": "004"}
    with pytest.raises(ValueError, match="not a Bandai Namco file name"):
        sources.bandai_metadata("walk.bvh")


@needs_cmu
def test_shared_metadata():
    refs = sources.resolve(["shared"])     # the CMU archives unpack into the cache once per machine
    by_source = {}
    for r in refs:
        by_source.setdefault(r.source, []).append(r)
    assert {k: len(v) for k, v in by_source.items()} == {
        "bandai-namco-1": 110, "bandai-namco-2": 991, "cmu-iclone": 61, "cmu-daz-acrnn": 23,
        "cmu-daz-jaanga": 12, "cmu-mb-fairmotion": 1}
    salsa = [r for r in by_source["cmu-daz-acrnn"] if "salsa" in r.path]
    assert salsa and all(r.fps == 60 and r.drop_first == 1 for r in salsa)            # header says 120
    indian = [r for r in by_source["cmu-daz-acrnn"] if "indian" in r.path]
    assert all(r.fps == 120 for r in indian)
    tpose = {r.action for r in by_source["cmu-iclone"] if r.drop_first}
    assert tpose == {f"07_{i:02d}" for i in range(3, 13)}
    assert all(r.fps == 30 and r.style for r in by_source["bandai-namco-2"])
    # unpacked into the cache, never into shared/
    assert all(r.path.startswith(str(paths.cache_dir())) for r in refs if r.source.startswith("cmu"))
    assert not list((paths.SHARED_DATA / "mocap-cmu").glob("cmu_*/"))


def test_user_bvh_folder_bank(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    text = build_bvh(CMU).replace("Frames: 1", "Frames: 3")
    frame = text.splitlines()[-1]
    (folder / "a.bvh").write_text(text + "\n" + frame + "\n" + frame + "\n")
    (folder / "sub" / "b.bvh").write_text(text + "\n" + frame + "\n" + frame + "\n")
    bank = MotionBank.load([f"bvh:{folder}:fps=30:weight=2:name=mine"], fps=10.0, progress=False)
    assert len(bank) == 2 and list(bank.meta["source"]) == ["mine", "mine"]
    assert list(bank.meta["key"]) == ["mine/a.bvh", "mine/sub/b.bvh"]
    assert set(bank.meta["map"]) == {"cmu_mb"} and bank.weight.tolist() == [2.0, 2.0]
    assert bank.length.tolist() == [1, 1]            # 3 frames at 30 fps -> 1 frame at 10 fps
    # a file of an unknown convention names the file
    (folder / "c.bvh").write_text(text.replace("LeftUpLeg", "Thigh_L") + "\n" + frame + "\n" + frame + "\n")
    with pytest.raises(MotionDataError, match="c.bvh.*unknown skeleton convention"):
        MotionBank.load([f"bvh:{folder}"], progress=False, workers=1)


def test_h36m_as_motion_source(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.2, (32, 3)) + [0, 0, 1.0]
    walk = base[None] + np.linspace(0, 1, 100)[:, None, None] * [1.0, 0, 0]     # Z up, 50 fps
    data = {s: {"Walking 1": walk, "Sitting": walk[:50]} for s in ("S1", "S5", "S6", "S7", "S8", "S9", "S11")}
    path = tmp_path / "data_3d_h36m.npz"
    np.savez(path, positions_3d=np.array(data, dtype=object))
    bank = MotionBank.load([f"h36m:{path}"], fps=10.0, progress=False)
    assert set(bank.meta["subject"]) == {"S1", "S5", "S6", "S7", "S8"}       # train subjects only
    assert len(bank) == 10 and set(bank.meta["action"]) == {"Walking", "Sitting"}
    c = int(bank.indices(subject="S1", action="Walking")[0])
    assert bank.length[c] == 20                                                  # 100 frames at 50 fps
    j0 = bank.clip(c)[0, 0]
    np.testing.assert_allclose(j0, [base[0, 0], base[0, 2], -base[0, 1]], atol=1e-6)   # Z up -> Y up
    with pytest.raises(SourceSpecError, match="S42"):
        sources.resolve([f"h36m:{path}:subjects=S42"])
