"""Backends: ONNX export with a dynamic N, torch <-> onnxruntime parity, input checking,
the graph cache and its re-export decisions."""
import logging
import numpy as np
import pytest
import torch

from diffpose_ros.backends import BackendError, make_backend
from diffpose_ros.backends.export import (DEFAULT_OPSET, TENSORRT_85_OPS, ExportError,
                                          export_onnx, graph_op_types, load_or_export,
                                          onnx_settings, read_metadata, weights_sha256)
from diffpose_ros.backends.onnx_backend import OnnxRuntimeBackend
from diffpose_ros.backends.torch_backend import TorchBackend
from diffpose_ros.lifter.model_io import init_bundle
from diffpose_ros.lifter.sampler import DiffPoseSampler, build_sampler

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------
# the real sampler, built from freshly initialised bundles (the architecture decides the graph;
# trained weights would only change the numbers)
# ------------------------------------------------------------------------------------------
def write_bundle(folder, model="frame", seed=0):
    init_bundle(folder, model=model, window=9, seed=seed)  # short window: fast temporal export
    return folder


def inputs(sampler, batch, seed=1, n_hyp=None):
    rng = np.random.default_rng(seed)
    n = sampler.n_hyp if n_hyp is None else n_hyp
    lead = (batch, sampler.window) if sampler.temporal else (batch,)
    kp = np.concatenate([rng.uniform(-0.5, 0.5, lead + (17, 2)),
                         rng.uniform(0, 1, lead + (17, 1))], -1).astype(np.float32)
    noise = rng.standard_normal((batch, n, 17, 3)).astype(np.float32)
    u = rng.uniform(0, 1, (batch, n)).astype(np.float32)
    return kp, noise, u


# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["frame", "temporal"])
def exported(request, tmp_path_factory):
    folder = write_bundle(tmp_path_factory.mktemp(request.param), request.param)
    sampler = build_sampler(folder, steps=5, n_hyp=5)
    path = export_onnx(sampler, folder / "sampler_s5_n5.onnx", max_people=7, weights_dir=folder)
    return sampler, path


def test_export_is_one_file_with_metadata(exported):
    import onnx

    sampler, path = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        ["calibration.json", "config.json", "gmm.npz", "model.pt", path.name])  # no side files
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == \
        [DEFAULT_OPSET]
    meta = read_metadata(path)
    assert meta["weights_sha256"] == weights_sha256(path.parent)
    assert (meta["steps"], meta["hypotheses"], meta["window"]) == ("5", "dynamic",
                                                                   str(sampler.window))
    assert meta["temporal"] == str(sampler.temporal).lower()
    for key in ("opset", "exporter", "onnx_version", "package_version", "format_version",
                "code_sha256"):
        assert meta[key]
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim][:2]
            for i in list(model.graph.input) + list(model.graph.output)}
    assert dims == {"keypoints": ["people", sampler.window if sampler.temporal else 17],
                    "init_noise": ["people", "hypotheses"], "kernel_u": ["people", "hypotheses"],
                    "mean": ["people", 17], "cov": ["people", 17],
                    "hyps": ["people", "hypotheses"]}
    assert onnx_settings(path) == {"steps": 5, "window": sampler.window,
                                   "temporal": sampler.temporal}


def test_graph_ops_are_supported_by_tensorrt_85(exported):
    ops = graph_op_types(exported[1])
    assert ops - TENSORRT_85_OPS == set(), f"ops TensorRT 8.5 cannot parse: {ops - TENSORRT_85_OPS}"
    assert "LayerNormalization" not in ops  # decomposed for TensorRT 8.5


@pytest.mark.parametrize("batch,n_hyp", [(1, 1), (3, 5), (7, 2), (2, 20), (1, 64)])
def test_torch_and_onnxruntime_agree_for_any_n(exported, batch, n_hyp):
    """One graph (exported with 3 hypotheses) computes the sampler for every N."""
    sampler, path = exported
    pt = TorchBackend(sampler, max_people=7, threads=1)
    ort = OnnxRuntimeBackend(path, max_people=7, threads=1)
    args = inputs(sampler, batch, seed=batch, n_hyp=n_hyp)
    for name, a, b in zip(("mean", "cov", "hyps"), pt.run(*args), ort.run(*args)):
        assert a.dtype == b.dtype == np.float32
        assert a.shape == b.shape
        assert np.max(np.abs(a - b)) < 1e-4, name
    assert ort.run(*args)[2].shape == (batch, n_hyp, 17, 3)
    # the noise really drives the hypotheses (a parity test of constants would prove nothing)
    if n_hyp > 1:
        assert np.std(pt.run(*args)[2], axis=1).mean() > 1e-3


def test_n_enters_the_covariance_from_the_shape(exported):
    """The shrinkage weight n0 / (N - 1 + n0) and the 1 / (N - 1) of the sample covariance come
    from init_noise's shape inside the graph: the N-hypothesis covariance equals a direct
    numpy computation from the graph's own hypotheses, for N other than the traced one."""
    sampler, path = exported
    ort = OnnxRuntimeBackend(path, max_people=7, threads=1)
    kp, noise, u = inputs(sampler, 2, seed=5, n_hyp=8)
    _, cov8, hyps8 = ort.run(kp, noise, u)
    _, cov1, _ = ort.run(kp, noise[:, :1], u[:, :1])
    n0 = sampler.n0
    d = hyps8 - hyps8.mean(axis=1, keepdims=True)
    sample = np.einsum("bnjk,bnjl->bjkl", d, d) / 7
    lam = n0 / (7 + n0)
    # cov = (1 - lam) sample + lam prior + floor^2 I; with N = 1 only the prior part remains
    prior_part = cov1 - sampler.floor ** 2 * np.eye(3)
    want = (1 - lam) * sample + lam * prior_part + sampler.floor ** 2 * np.eye(3)
    np.testing.assert_allclose(cov8, want, atol=1e-6)


def test_chunks_match_one_batch(exported):
    sampler, path = exported
    args = inputs(sampler, 7, seed=3)
    whole = OnnxRuntimeBackend(path, max_people=7, threads=1).run(*args)
    split = OnnxRuntimeBackend(path, max_people=3, threads=1).run(*args)  # 3 + 3 + 1
    torch_split = TorchBackend(sampler, max_people=2, threads=1).run(*args)
    for a, b, c in zip(whole, split, torch_split):
        assert a.shape == b.shape == c.shape
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-4)


def test_empty_batch(exported):
    sampler, path = exported
    kp, noise, u = inputs(sampler, 0)
    for backend in (TorchBackend(sampler), OnnxRuntimeBackend(path)):
        mean, cov, hyps = backend.run(kp, noise, u)
        assert mean.shape == (0, 17, 3) and cov.shape == (0, 17, 3, 3)
        assert hyps.shape == (0, sampler.n_hyp, 17, 3)  # N of the input


def _bad_cases(sampler):
    kp, noise, u = inputs(sampler, 2)
    nan_kp = kp.copy()
    nan_kp[0, ..., 3, 0] = np.nan
    return {
        "keypoints": [(kp[:, ..., :2], noise, u), (nan_kp, noise, u),
                      (kp.astype(np.int32), noise, u), (kp[None], noise, u)],
        "init_noise": [(kp, noise[:, :, :5], u), (kp, noise[:1], u), (kp, noise * np.inf, u),
                       (kp, noise[:, :0], u[:, :0]),
                       (kp, np.zeros((2, 65, 17, 3)), np.zeros((2, 65)))],  # N > 64
        "kernel_u": [(kp, noise, u + 1.0), (kp, noise, u[:, :2]), (kp, noise, u > 0.5)],
    }


def test_bad_inputs_give_the_same_error_from_both_backends(exported):
    sampler, path = exported
    backends = (TorchBackend(sampler), OnnxRuntimeBackend(path))
    for argname, cases in _bad_cases(sampler).items():
        for args in cases:
            messages = []
            for backend in backends:
                with pytest.raises(ValueError, match=argname) as err:
                    backend.run(*args)
                messages.append(str(err.value))
            assert messages[0] == messages[1]


def test_float64_inputs_are_accepted(exported):
    sampler, path = exported
    args = inputs(sampler, 2)
    a = OnnxRuntimeBackend(path).run(*args)
    b = OnnxRuntimeBackend(path).run(*(x.astype(np.float64) for x in args))
    np.testing.assert_array_equal(a[0], b[0])


# ------------------------------------------------------------------------------------------
def test_load_or_export_reuses_only_a_current_export(tmp_path, caplog):
    folder, cache = write_bundle(tmp_path / "w"), tmp_path / "cache"
    before = sorted(p.name for p in folder.iterdir())
    caplog.set_level(logging.INFO, logger="diffpose_ros.backends")
    path = load_or_export(folder, 2, max_people=4, build=build_sampler, cache_dir=cache)
    assert path.parent == cache / "samplers" and path.name.startswith("sampler_s2_")
    assert "does not exist yet" in caplog.text and "running in child process" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing in the weights folder
    stamp = path.stat().st_mtime_ns
    caplog.clear()
    assert load_or_export(folder, 2, max_people=4, build=build_sampler, cache_dir=cache) == path
    assert "reusing" in caplog.text and path.stat().st_mtime_ns == stamp
    # another step count is another graph; the same weights copied elsewhere are the same one
    other = load_or_export(folder, 1, max_people=4, build=build_sampler, cache_dir=cache)
    assert other != path and other.name.startswith("sampler_s1_")
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    caplog.clear()
    assert load_or_export(copy, 2, max_people=4, build=build_sampler, cache_dir=cache) == path
    assert "reusing" in caplog.text

    write_bundle(folder, seed=1)  # new weights -> new key -> a new graph; the old one stays
    caplog.clear()
    fresh = load_or_export(folder, 2, max_people=4, build=build_sampler, cache_dir=cache)
    assert fresh != path and path.exists() and "does not exist yet" in caplog.text
    assert read_metadata(fresh)["weights_sha256"] == weights_sha256(folder)

    fresh.write_bytes(b"not an onnx file")  # corrupt -> re-export
    caplog.clear()
    load_or_export(folder, 2, max_people=4, build=build_sampler, cache_dir=cache)
    assert "unreadable" in caplog.text and read_metadata(fresh)["steps"] == "2"
    path.replace(fresh)  # a file of the right name but other content -> re-export
    caplog.clear()
    load_or_export(folder, 2, max_people=4, build=build_sampler, cache_dir=cache)
    assert "weights_sha256 changed" in caplog.text
    assert read_metadata(fresh)["weights_sha256"] == weights_sha256(folder)
    assert not [p for p in (cache / "samplers").iterdir() if not p.name.endswith(".onnx")]


def test_export_verification_catches_a_baked_in_branch(tmp_path):
    class Branchy(DiffPoseSampler):
        def forward(self, keypoints, init_noise, kernel_u):
            mean, cov, hyps = super().forward(keypoints, init_noise, kernel_u)
            # a Python number computed from the data: the trace freezes its example value
            return mean, cov, hyps + float(kernel_u.sum())

    from diffpose_ros.lifter.model_io import load_bundle

    folder = write_bundle(tmp_path / "w")
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(Branchy(load_bundle(folder), steps=1, n_hyp=2), tmp_path / "x.onnx",
                    max_people=3)
    assert not (tmp_path / "x.onnx").exists()


# ------------------------------------------------------------------------------------------
def _unavailable(name):
    from diffpose_ros.backends import backend_available

    return not backend_available(name)[0]


@pytest.mark.parametrize("name", ["tensorrt", "onnxruntime-cuda", "torch-cuda"])
def test_explicit_unavailable_backend_raises(name, tmp_path):
    if not _unavailable(name):
        pytest.skip(f"{name} is available here")
    folder = write_bundle(tmp_path / "w")
    with pytest.raises(BackendError, match=name):
        make_backend(name, folder, steps=2, build=build_sampler, cache_dir=tmp_path / "c")


def test_auto_explains_its_choice(tmp_path, caplog):
    if not (_unavailable("tensorrt") and _unavailable("onnxruntime-cuda")
            and _unavailable("torch-cuda")):
        pytest.skip("a GPU backend is available here")
    folder = write_bundle(tmp_path / "w")
    caplog.set_level(logging.INFO, logger="diffpose_ros.backends")
    backend = make_backend("auto", folder, steps=2, max_people=4, build=build_sampler,
                           cache_dir=tmp_path / "c")
    assert (backend.name, backend.device) == ("onnxruntime", "cpu")
    assert "not tensorrt: not installed" in caplog.text
    assert "not onnxruntime-cuda:" in caplog.text and "not torch-cuda:" in caplog.text
    torch_backend = make_backend("torch-cpu", folder, steps=2, build=build_sampler)
    args = inputs(build_sampler(folder, 2, 3), 2)
    for a, b in zip(backend.run(*args), torch_backend.run(*args)):
        assert np.max(np.abs(a - b)) < 1e-4


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="unknown name"):
        make_backend("tensorflow")
