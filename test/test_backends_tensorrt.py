"""TensorRT backend: engine cache key, shape profile (N dynamic), cache folder and rebuild
decisions (no TensorRT needed), and a real engine run where TensorRT and a GPU exist (skipped
otherwise: it never ran in this project, no GPU was available)."""
import logging
import os

import numpy as np
import pytest

from diffpose_ros.backends import BackendError
from diffpose_ros.backends.tensorrt_backend import (engine_cache_dir, engine_cache_key,
                                                    load_cached_engine, obtain_engine,
                                                    shape_profile)

LOG = "diffpose_ros.backends"


def _key(**change):
    args = dict(onnx_bytes=b"graph", trt_version="8.5.2.2", gpu_name="Orin",
                compute_capability=(8, 7), precision="fp16",
                profile=shape_profile(1, False, 10))
    args.update(change)
    return engine_cache_key(**args)


def test_cache_key_depends_on_everything_an_engine_depends_on():
    base = _key()
    assert base == _key() and len(base) == 64
    variants = [_key(onnx_bytes=b"graph2"), _key(trt_version="10.3.0"), _key(gpu_name="RTX"),
                _key(compute_capability=(8, 6)), _key(precision="fp32"),
                _key(profile=shape_profile(1, False, 4)),
                _key(profile=shape_profile(1, False, 10, max_hyp=20)),
                _key(profile=shape_profile(27, True, 10))]
    assert len({base, *variants}) == len(variants) + 1


def test_shape_profile_covers_people_and_hypotheses():
    """1..max_people people on every input, 1..max_hyp hypotheses (N dynamic: one engine
    serves every N), optimised for 2 people and the default N = 5."""
    from diffpose_ros.backends.base import MAX_HYPOTHESES

    prof = shape_profile(window=27, temporal=True, max_people=6)
    assert prof["keypoints"] == ((1, 27, 17, 3), (2, 27, 17, 3), (6, 27, 17, 3))
    assert prof["init_noise"] == ((1, 1, 17, 3), (2, 5, 17, 3), (6, MAX_HYPOTHESES, 17, 3))
    assert prof["kernel_u"] == ((1, 1), (2, 5), (6, MAX_HYPOTHESES))
    assert MAX_HYPOTHESES >= 64  # the node's num_hypotheses range
    assert shape_profile(1, False, 1)["keypoints"] == ((1, 17, 3),) * 3
    assert shape_profile(1, False, 1, max_hyp=3)["init_noise"][1] == (1, 3, 17, 3)
    with pytest.raises(ValueError, match="max_people"):
        shape_profile(1, False, 0)
    with pytest.raises(ValueError, match="max_hyp"):
        shape_profile(1, False, 4, max_hyp=0)


def test_unwritable_cache_folder_warns_and_returns_none(tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    caplog.set_level(logging.WARNING, logger=LOG)
    assert engine_cache_dir(blocker) is None
    assert "not writable" in caplog.text and "in memory only" in caplog.text
    assert engine_cache_dir(tmp_path / "ok") == tmp_path / "ok" / "engines"


class FakeTensorRT:
    """Stands in for the engine build (which writes the file) and deserialize_cuda_engine."""

    def __init__(self):
        self.builds = 0

    def build(self, path):
        self.builds += 1
        path.write_bytes(b"ENGINE" + bytes([self.builds]))

    @staticmethod
    def deserialize(data):
        if not data.startswith(b"ENGINE"):
            return None  # what TensorRT does with garbage
        return ("engine", data)


def test_engine_is_built_once_then_loaded_from_cache(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    trt, folder = FakeTensorRT(), tmp_path / "engines"
    folder.mkdir()
    engine, source = obtain_engine("k1", folder, trt.build, trt.deserialize)
    assert (source, trt.builds) == ("built", 1) and (folder / "k1.engine").is_file()
    assert "building TensorRT engine, this can take minutes on a Jetson" in caplog.text
    engine2, source2 = obtain_engine("k1", folder, trt.build, trt.deserialize)
    assert (source2, trt.builds, engine2) == ("cache", 1, engine)
    obtain_engine("k2", folder, trt.build, trt.deserialize)  # new key -> new build
    assert trt.builds == 2 and (folder / "k2.engine").is_file()
    assert not [p for p in folder.iterdir() if p.suffix == ".tmp"]


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_corrupt_cached_engine_is_rebuilt(tmp_path, caplog, content):
    caplog.set_level(logging.INFO, logger=LOG)
    trt, folder = FakeTensorRT(), tmp_path
    (folder / "k.engine").write_bytes(content)
    engine, source = obtain_engine("k", folder, trt.build, trt.deserialize)
    assert (source, trt.builds) == ("built", 1)
    assert "failed to deserialize" in caplog.text
    assert (folder / "k.engine").read_bytes() == b"ENGINE\x01"


def test_deserialize_exception_means_rebuild(tmp_path, caplog):
    (tmp_path / "k.engine").write_bytes(b"ENGINE-old")

    def boom(data):
        raise RuntimeError("serialization version mismatch")

    caplog.set_level(logging.INFO, logger=LOG)
    assert load_cached_engine(tmp_path / "k.engine", boom) is None
    assert "version mismatch" in caplog.text


def test_no_cache_folder_builds_in_memory(tmp_path):
    trt = FakeTensorRT()
    engine, source = obtain_engine("k", None, trt.build, trt.deserialize)
    assert source == "built" and engine == ("engine", b"ENGINE\x01")
    assert list(tmp_path.iterdir()) == []


def test_failed_cache_write_keeps_engine_in_memory(tmp_path, caplog):
    trt = FakeTensorRT()
    folder = tmp_path / "gone"  # removed after the writability check
    caplog.set_level(logging.WARNING, logger=LOG)
    engine, source = obtain_engine("k", folder, trt.build, trt.deserialize)
    assert source == "built" and engine is not None
    assert "could not write engine cache" in caplog.text
    assert trt.builds == 2  # the first build could not write; the second went to a temp folder


def test_freshly_built_engine_that_does_not_load_is_an_error(tmp_path):
    with pytest.raises(BackendError, match="freshly built"):
        obtain_engine("k", tmp_path, lambda path: path.write_bytes(b"bad"),
                      FakeTensorRT.deserialize)


def test_engine_build_runs_in_a_child_that_a_stop_kills(tmp_path):
    """The engine build runs in a child process (tensorrt_backend -> child.run_engine_build):
    without TensorRT the child fails with its reason and writes nothing; a cancel kills it."""
    import threading

    from diffpose_ros.backends.child import BuildError, live_children, run_engine_build
    from diffpose_ros.backends.tensorrt_backend import shape_profile

    onnx = tmp_path / "s.onnx"
    onnx.write_bytes(b"graph")
    target = tmp_path / "engines" / "k.engine"
    if _tensorrt_skip_reason() is not None:
        with pytest.raises(BuildError, match="tensorrt"):
            run_engine_build(onnx_path=onnx, profile=shape_profile(1, False, 4), fp16=True,
                             workspace_mb=64, path=target)
    cancel = threading.Event()
    cancel.set()
    from diffpose_ros.backends.base import Cancelled

    with pytest.raises(Cancelled):
        run_engine_build(onnx_path=onnx, profile=shape_profile(1, False, 4), fp16=True,
                         workspace_mb=64, path=target, cancel=cancel)
    assert live_children() == [] and list(target.parent.iterdir()) == []


# ------------------------------------------------------------------------------------------
# the real thing, where TensorRT and a GPU exist
# ------------------------------------------------------------------------------------------
def _tensorrt_skip_reason():
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:
        return f"TensorRT not importable ({exc}): engine build/run not tested here"
    import torch

    if not torch.cuda.is_available():
        return "TensorRT importable but no CUDA device"
    return None


@pytest.mark.skipif(_tensorrt_skip_reason() is not None,
                    reason=str(_tensorrt_skip_reason()))
@pytest.mark.parametrize("fp16,atol", [(False, 1e-3), (True, 2e-2)])
def test_tensorrt_matches_onnxruntime(tmp_path, fp16, atol):
    from test_backends_parity import inputs, write_bundle

    from diffpose_ros.backends.export import export_onnx
    from diffpose_ros.backends.onnx_backend import OnnxRuntimeBackend
    from diffpose_ros.backends.tensorrt_backend import TensorRTBackend
    from diffpose_ros.lifter.sampler import build_sampler

    folder = write_bundle(tmp_path / "w")
    sampler = build_sampler(folder, steps=5, n_hyp=5)
    path = export_onnx(sampler, folder / "s.onnx", max_people=4, weights_dir=folder)
    trt_backend = TensorRTBackend(path, max_people=4, fp16=fp16, cache_dir=tmp_path / "cache")
    assert trt_backend.engine_source == "built"
    ort_backend = OnnxRuntimeBackend(path, max_people=4)
    for batch, n_hyp in ((1, 1), (3, 5), (6, 20)):  # 6 > max_people: two chunks; N dynamic
        args = inputs(sampler, batch, seed=batch, n_hyp=n_hyp)
        for a, b in zip(trt_backend.run(*args), ort_backend.run(*args)):
            assert np.max(np.abs(a - b)) < atol
    again = TensorRTBackend(path, max_people=4, fp16=fp16, cache_dir=tmp_path / "cache")
    assert again.engine_source == "cache"
    assert len(os.listdir(tmp_path / "cache" / "engines")) == 1
