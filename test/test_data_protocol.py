"""The leave-out protocol's splits on the metadata of every shared clip (no forward kinematics)."""
from types import SimpleNamespace

import numpy as np
import pytest

from diffpose_ros import paths
from diffpose_ros.data import sources
from diffpose_ros.data.protocol import protocol_splits, split_table

needs_data = pytest.mark.skipif(not (paths.SHARED_DATA / "mocap-cmu").is_dir(), reason="shared data not found")


@pytest.fixture(scope="module")
def meta_bank():
    refs = sources.resolve(["shared"])     # unpacks the CMU archives into the cache once per machine
    meta = {k: np.array([getattr(r, k) for r in refs]) for k in ("key", "source", "action", "style")}
    return SimpleNamespace(meta=meta, length=np.ones(len(refs), np.int64), fps=10.0)


@needs_data
def test_leave_out_v1_contents(meta_bank):
    s = protocol_splits(meta_bank, "leave-out-v1")
    src, act, sty = (meta_bank.meta[k] for k in ("source", "action", "style"))
    names = list(s)
    for i, a in enumerate(names):                                   # disjoint
        for b in names[i + 1:]:
            assert not set(s[a]) & set(s[b]), (a, b)
    assert sorted(np.concatenate(list(s.values()))) == list(range(len(src)))   # complete
    assert set(src[s["test_source"]]) == {"cmu-iclone"} and len(s["test_source"]) == 61
    assert "cmu-iclone" not in set(src[s["train"]]) | set(src[s["val"]])
    ta = s["test_actions"]
    assert set(zip(src[ta], act[ta])) == {("bandai-namco-1", "bow"), ("bandai-namco-1", "guide"),
                                          ("bandai-namco-2", "wave-both-hands")}
    for source, n_styles in (("bandai-namco-1", 10), ("bandai-namco-2", 7)):     # every style
        assert len(set(sty[ta][src[ta] == source])) == n_styles == len(set(sty[src == source]))
    ts = s["test_styles"]
    assert set(zip(src[ts], sty[ts])) == {("bandai-namco-1", "tired"), ("bandai-namco-2", "elderly"),
                                          ("bandai-namco-2", "exhausted")}
    assert not set(act[ts]) & {"bow", "guide", "wave-both-hands"}
    train = s["train"]
    assert not set(zip(src[train], act[train])) & set(zip(src[ta], act[ta]))
    assert not set(zip(src[train], sty[train])) & set(zip(src[ts], sty[ts]))
    frac = len(s["val"]) / (len(s["val"]) + len(train))
    assert 0.05 < frac < 0.11
    # every other source trains
    assert {"cmu-daz-acrnn", "cmu-daz-jaanga", "cmu-mb-fairmotion", "bandai-namco-1", "bandai-namco-2"} <= set(src[train])


@needs_data
def test_all_protocol_and_table(meta_bank):
    s = protocol_splits(meta_bank, "all")
    assert list(s) == ["train", "val"] and len(s["train"]) + len(s["val"]) == len(meta_bank.meta["key"])
    # val is chosen by clip key: the same clips in both protocols where they are not test clips
    lo = protocol_splits(meta_bank, "leave-out-v1")
    assert set(lo["val"]) <= set(s["val"])
    rows = split_table(meta_bank, lo)
    total = {r["split"]: r["clips"] for r in rows if r["source"] == "all"}
    assert total == {k: len(v) for k, v in lo.items()}
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_splits(meta_bank, "leave-out-v9")
