"""Export the DiffPose sampler once per step count to a single ONNX file that ONNX Runtime and
TensorRT both run, cached in the user's cache directory.

Why the TorchScript exporter (``dynamo=False``): the sampler's K-step reverse loop has a fixed,
Python-level step count, so tracing unrolls it into a plain feed-forward graph in a few seconds.
The dynamo exporter takes about a minute and pins every dimension whose example size is 1, so
we export with an example batch of 2 people and 3 hypotheses (no example size is 1 and no two
are equal, so the tracer cannot confuse them) and mark both axes dynamic: the batch
("people") on every input and output, the hypotheses ("hypotheses") on init_noise, kernel_u
and hyps. One graph per (weights, steps) therefore serves every N; the N-dependent parts of the
covariance are computed from the tensor shape inside the graph, and the calibration scale (keyed
by steps and N) is applied outside it by the Lifter. The verification runs the fresh graph at
several (people, N) pairs against PyTorch.

Why opset 17: TensorRT 8.5 (JetPack 5) parses ONNX up to opset 17. Its parser does not know
``LayerNormalization`` (added to the TensorRT parser in 8.6), which the exporter emits for
``nn.LayerNorm`` from opset 17 on; so by default LayerNorm is exported as its decomposition
(ReduceMean/Sub/Pow/Sqrt/Div), which every TensorRT version reads.

Where: ``<cache_dir>/samplers/sampler_s<K>_<key>.onnx`` (``paths.cache_dir()``: $DIFFPOSE_CACHE,
$XDG_CACHE_HOME/diffpose_ros or ~/.cache/diffpose_ros), never the install space or the weights
folder. The key hashes what the graph depends on: the weights' sha256, the lifter code's sha256,
the step count, the opset, the export format and the exporter's versions (torch, onnx, this
package). The file also carries all of it in ``metadata_props``, so a file of the right name
whose content does not match (a stale or foreign file) is rebuilt too.

``load_or_export`` runs the export in a child process (``child.py``) that a stop kills and
reaps; the child writes under a temporary name that is renamed only once the child has
finished and the file checks out, so a killed export leaves no half-written graph.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from .base import NUM_JOINTS, default_logger

FORMAT_VERSION = "2"  # 2: dynamic hypotheses axis, uncalibrated covariance
DEFAULT_OPSET = 17
INPUT_NAMES = ("keypoints", "init_noise", "kernel_u")
OUTPUT_NAMES = ("mean", "cov", "hyps")
PEOPLE_AXIS, HYP_AXIS = "people", "hypotheses"
DYNAMIC_AXES = {"keypoints": {0: PEOPLE_AXIS}, "init_noise": {0: PEOPLE_AXIS, 1: HYP_AXIS},
                "kernel_u": {0: PEOPLE_AXIS, 1: HYP_AXIS}, "mean": {0: PEOPLE_AXIS},
                "cov": {0: PEOPLE_AXIS}, "hyps": {0: PEOPLE_AXIS, 1: HYP_AXIS}}
# the fixed trailing dimensions of the outputs (after the people / hypothesis axes)
OUTPUT_TRAILING = {"mean": (NUM_JOINTS, 3), "cov": (NUM_JOINTS, 3, 3), "hyps": (NUM_JOINTS, 3)}
EXAMPLE_PEOPLE, EXAMPLE_HYPOTHESES = 2, 3  # traced sizes: neither is 1, and they differ
# files in a weights folder that are build artifacts, not weights
_NOT_WEIGHTS = (".onnx", ".engine", ".tmp", ".lock", ".pyc")

# ONNX operators the sampler graph may contain, each marked "Y" for TensorRT 8.5 in the
# onnx-tensorrt operator support matrix (docs/operators.md of the 8.5 release branch: "TensorRT
# 8.5 supports operators up to Opset 17"). Deliberately limited to the ops a GCN/attention
# denoiser + DDIM loop + GMM kernel choice produces; grow it only after checking that matrix.
# Restrictions noted there that apply here: Slice/Squeeze `axes` must be initializers/constants
# (the TorchScript exporter emits them as Constant), Einsum without ellipsis/broadcasting, Conv
# weights must be initializers (they are: the temporal encoder's convolutions are fixed weights).
# Not in the set on purpose: LayerNormalization (N in 8.5; decomposed at export), the Random*
# ops (randomness is an input), Loop/If (the step loop is unrolled).
TENSORRT_85_OPS = frozenset({
    "Abs", "Add", "And", "ArgMax", "ArgMin", "Cast", "Ceil", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "Cos", "CumSum", "Div", "Einsum", "Equal", "Erf", "Exp", "Expand",
    "Flatten", "Floor", "Gather", "GatherElements", "Gemm", "Greater", "GreaterOrEqual",
    "Identity", "LeakyRelu", "Less", "LessOrEqual", "Log", "MatMul", "Max", "Min", "Mul", "Neg",
    "Not", "Or", "Pow", "Range", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceMin",
    "ReduceSum", "Relu", "Reshape", "Shape", "Sigmoid", "Sin", "Slice", "Softmax", "Split",
    "Sqrt", "Squeeze", "Sub", "Tanh", "Tile", "Transpose", "Unsqueeze", "Where",
})


class ExportError(RuntimeError):
    """The sampler could not be exported, or the exported graph disagrees with PyTorch."""


# --------------------------------------------------------------------------------------------
# hashes and metadata
# --------------------------------------------------------------------------------------------
def _sha256_files(files, root: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def weights_sha256(weights_dir) -> str:
    """sha256 over every weights file (name + bytes) under ``weights_dir``, recursively.

    Exported graphs and engines stored in the same folder are not weights and are skipped, so
    exporting does not change the hash it is compared against.
    """
    root = Path(weights_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"weights_dir: {root} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not p.name.startswith(".") and not p.name.endswith(_NOT_WEIGHTS)
                   and ".tmp" not in p.name)
    if not files:
        raise FileNotFoundError(f"weights_dir: no weights files in {root}")
    return _sha256_files(files, root)


def code_sha256(obj) -> str:
    """sha256 of the Python sources of the package that defines ``obj`` (a class or function).

    The graph is a function of the code as much as of the weights: editing the sampler must
    invalidate an old export even when the weights did not change.
    """
    source = Path(inspect.getsourcefile(obj)).resolve()
    folder = source.parent
    return _sha256_files(sorted(folder.glob("*.py")), folder)


def read_metadata(onnx_path) -> Dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (weights are not loaded)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def graph_op_types(onnx_path) -> set:
    """Operator types used anywhere in the graph (including subgraphs)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    ops = set()

    def walk(graph):
        for node in graph.node:
            ops.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                for sub in attr.graphs:
                    walk(sub)

    walk(model.graph)
    return ops


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("diffpose_ros")
    except Exception:
        import diffpose_ros

        return getattr(diffpose_ros, "__version__", "unknown")


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
def example_inputs(sampler, batch: int, seed: int = 0, n_hyp: Optional[int] = None):
    """Plausible inputs for tracing/checking: normalised coords ~ +-0.5, confidences in
    [0.3, 1], standard-normal noise, uniform kernel draws; N = n_hyp or the sampler's own."""
    rng = np.random.default_rng(seed)
    window = int(getattr(sampler, "window", 1))
    lead = (batch, window) if getattr(sampler, "temporal", False) else (batch,)
    kp = np.empty(lead + (NUM_JOINTS, 3), np.float32)
    kp[..., :2] = rng.uniform(-0.5, 0.5, size=lead + (NUM_JOINTS, 2))
    kp[..., 2] = rng.uniform(0.3, 1.0, size=lead + (NUM_JOINTS,))
    n = int(sampler.n_hyp if n_hyp is None else n_hyp)
    noise = rng.standard_normal((batch, n, NUM_JOINTS, 3)).astype(np.float32)
    u = rng.uniform(0.0, 1.0, size=(batch, n)).astype(np.float32)
    return kp, noise, u


def verification_sizes(max_people: int):
    """(people, N) pairs every fresh export is checked at: the smallest, the largest batch, and
    N values on both sides of the traced one (1 hypothesis, the default 5, a large 17)."""
    return sorted({(1, 1), (max(1, int(max_people)), 5), (2, 17)})


def _module_device(module):
    """Where the sampler's tensors live (a torch backend may have moved it to CUDA)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return "cpu"


@contextlib.contextmanager
def _decomposed_layer_norm(opset: int, enabled: bool):
    """Export aten::layer_norm as primitive ops for this export only (see module docstring)."""
    if not enabled:
        yield
        return
    import torch
    from torch.onnx import symbolic_opset9

    # the opset-9 symbolic writes ReduceMean with an `axes` attribute, valid up to opset 17
    if opset > 17:
        raise ExportError("decompose_layer_norm needs opset <= 17 (ReduceMean axes attribute)")
    torch.onnx.register_custom_op_symbolic("aten::layer_norm", symbolic_opset9.layer_norm, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::layer_norm", opset)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def graph_versions() -> Dict[str, str]:
    """The versions an exported graph depends on besides weights, code and settings."""
    import onnx
    import torch

    return {"format_version": FORMAT_VERSION,
            "exporter": f"torch.onnx.export(dynamo=False) torch {torch.__version__}",
            "onnx_version": onnx.__version__, "package_version": _package_version()}


def export_onnx_bytes(sampler, max_people: int = 10, opset: int = DEFAULT_OPSET, *,
                      weights_dir=None, decompose_layer_norm: bool = True, verify: bool = True,
                      atol: float = 1e-4, code_hash: Optional[str] = None) -> bytes:
    """Export ``sampler`` (a DiffPoseSampler) to the bytes of one self-contained ONNX model.

    Inputs/outputs are named keypoints, init_noise, kernel_u -> mean, cov, hyps, with dynamic
    people and hypotheses axes. With ``verify`` the model is checked by ``onnx.checker`` and run
    by ONNX Runtime at ``verification_sizes(max_people)``, and must match PyTorch within
    ``atol`` metres. ``code_hash`` overrides the hash of the sampler's source folder stored in
    the metadata.
    """
    import onnx
    import torch

    sampler = sampler.eval()
    device = _module_device(sampler)
    args = tuple(torch.from_numpy(a).to(device) for a in
                 example_inputs(sampler, batch=EXAMPLE_PEOPLE, n_hyp=EXAMPLE_HYPOTHESES))
    buf = io.BytesIO()
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), \
                _decomposed_layer_norm(opset, decompose_layer_norm):
            # expected here: the legacy-exporter deprecation notice, and TracerWarnings about
            # Python numbers (the step schedule is constant by design; a data-dependent one is
            # caught by the verification below)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(sampler, args, buf, dynamo=False, opset_version=opset,
                              input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                              dynamic_axes=DYNAMIC_AXES, do_constant_folding=True)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed for {type(sampler).__name__}: "
                          f"{type(exc).__name__}: {exc}") from exc
    model = onnx.load_from_string(buf.getvalue())
    _pin_output_shapes(model)

    meta = dict(graph_versions())
    meta.update({
        "opset": str(opset),
        "steps": str(int(sampler.steps)),
        "hypotheses": "dynamic",
        "window": str(int(getattr(sampler, "window", 1))),
        "temporal": str(bool(getattr(sampler, "temporal", False))).lower(),
        "decompose_layer_norm": str(bool(decompose_layer_norm)).lower(),
        "max_people_checked": str(int(max_people)),
        "code_sha256": code_hash or code_sha256(type(sampler)),
    })  # no timestamp: equal weights + code + settings give equal bytes (and TensorRT cache keys)
    if weights_dir is not None:
        meta["weights_sha256"] = weights_sha256(weights_dir)
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "diffpose_ros"
    model.producer_version = meta["package_version"]

    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    if verify:
        _verify_against_torch(sampler, data, max_people, atol)
    return data


def export_onnx(sampler, path, max_people: int = 10, opset: int = DEFAULT_OPSET, *,
                weights_dir=None, decompose_layer_norm: bool = True, verify: bool = True,
                atol: float = 1e-4, code_hash: Optional[str] = None, logger=None) -> Path:
    """``export_onnx_bytes`` in this process, written atomically (temp file + rename) to
    ``path``. Returns the path. (``load_or_export`` exports in a child process instead.)"""
    log = default_logger(logger)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = export_onnx_bytes(sampler, max_people, opset, weights_dir=weights_dir,
                             decompose_layer_norm=decompose_layer_norm, verify=verify, atol=atol,
                             code_hash=code_hash)
    atomic_write_bytes(path, data)
    log.info("exported sampler (steps=%d, %s) to %s at opset %d in %.1f s", int(sampler.steps),
             "temporal" if getattr(sampler, "temporal", False) else "frame", path, opset,
             time.perf_counter() - t0)
    return path


def _verify_against_torch(sampler, onnx_bytes: bytes, max_people: int, atol: float) -> None:
    """Run the fresh graph with ONNX Runtime at several (people, N) and compare to PyTorch:
    catches people/hypotheses dims frozen by tracing and data-dependent branches the trace
    baked in."""
    import onnxruntime as ort
    import torch

    device = _module_device(sampler)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    for batch, n_hyp in verification_sizes(max_people):
        inputs = example_inputs(sampler, batch=batch, seed=100 + batch + 7 * n_hyp, n_hyp=n_hyp)
        where = f"at {batch} people, N={n_hyp}"
        try:
            got = session.run(list(OUTPUT_NAMES), dict(zip(INPUT_NAMES, inputs)))
        except Exception as exc:
            raise ExportError(f"exported graph fails in ONNX Runtime {where}: {exc}") from exc
        with torch.inference_mode():
            want = sampler(*(torch.from_numpy(a).to(device) for a in inputs))
        for name, g, w in zip(OUTPUT_NAMES, got, want):
            w = w.detach().cpu().numpy()
            if g.shape != w.shape:
                raise ExportError(f"exported {name} has shape {g.shape} {where}, "
                                  f"PyTorch gives {w.shape}")
            err = float(np.max(np.abs(g - w))) if g.size else 0.0
            if not err <= atol:
                raise ExportError(f"exported {name} differs from PyTorch by {err:.3g} "
                                  f"(> {atol}) {where}")


# --------------------------------------------------------------------------------------------
# the cache: one graph per (weights, code, steps, opset, versions)
# --------------------------------------------------------------------------------------------
def _pin_output_shapes(model) -> None:
    """The exporter leaves some fixed output dimensions symbolic (a reduction over the hypotheses
    loses the joint axis's size in its shape inference); write the known sizes back, so that the
    graph says (people, 17, 3) and consumers (TensorRT profiles, the backends' checks) see them."""
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        fixed = OUTPUT_TRAILING.get(out.name)
        if fixed is None:
            continue
        for d, size in zip(list(dims)[len(dims) - len(fixed):], fixed):
            if d.dim_param or d.dim_value != size:
                d.Clear()
                d.dim_value = size


def expected_metadata(weights_dir, steps: int, opset: int = DEFAULT_OPSET,
                      build: Optional[Callable] = None) -> Dict[str, str]:
    """The metadata a current export for (weights_dir, steps, opset) must carry."""
    if build is None:
        from diffpose_ros.lifter.sampler import build_sampler as build
    meta = dict(graph_versions())
    meta.update({"opset": str(int(opset)), "steps": str(int(steps)), "hypotheses": "dynamic",
                 "decompose_layer_norm": "true", "weights_sha256": weights_sha256(weights_dir),
                 "code_sha256": code_sha256(build)})
    return meta


def graph_key(expected: Dict[str, str]) -> str:
    """Short hex key of everything a graph depends on (the metadata a current one carries)."""
    text = json.dumps(expected, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def graph_filename(steps: int, key: str) -> str:
    return f"sampler_s{int(steps)}_{key}.onnx"


def sampler_cache_dir(cache_dir=None) -> Path:
    from diffpose_ros import paths

    folder = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    return folder / "samplers"


def default_onnx_path(weights_dir, steps: int, opset: int = DEFAULT_OPSET, *,
                      cache_dir=None, build: Optional[Callable] = None) -> Path:
    """Where the current graph for (weights_dir, steps, opset) lives in the user cache."""
    expected = expected_metadata(weights_dir, steps, opset, build)
    return sampler_cache_dir(cache_dir) / graph_filename(steps, graph_key(expected))


def stale_reason(onnx_path, expected: Dict[str, str]) -> Optional[str]:
    """None when ``onnx_path`` exists and its metadata matches ``expected``; else why not."""
    onnx_path = Path(onnx_path)
    if not onnx_path.exists():
        return f"{onnx_path.name} does not exist yet"
    try:
        meta = read_metadata(onnx_path)
    except Exception as exc:
        return f"{onnx_path.name} is unreadable ({type(exc).__name__}: {exc})"
    for key, want in expected.items():
        have = meta.get(key)
        if have != want:
            short = (lambda s: s[:12] + "..." if s and len(s) > 16 else s)
            return f"{key} changed ({short(have)} in the file, now {short(want)})"
    return None


def _importable_name(func) -> Optional[str]:
    """'module:qualname' when a child process can import ``func`` by name, else None."""
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def load_or_export(weights_dir=None, steps: int = 5, *, max_people: int = 10,
                   opset: int = DEFAULT_OPSET, path=None, build: Optional[Callable] = None,
                   cache_dir=None, force: bool = False, cancel=None, niceness: int = 0,
                   logger=None) -> Path:
    """Return the path of a current ONNX export for (weights_dir, steps): one graph serves
    every number of hypotheses.

    An existing file is reused only when its metadata matches the current weights hash, code
    hash, steps, opset and versions; otherwise (or with ``force``) the sampler is built with
    ``build(weights_dir, steps=)`` (default: ``diffpose_ros.lifter.sampler.build_sampler``)
    and exported again, in a child process (``child.run_export``) that setting the
    threading.Event ``cancel`` kills (raising ``Cancelled``), at ``niceness`` (a background
    build yields the CPU to the frames being served). The reason for an export is logged.
    ``path`` overrides the cache location.
    """
    from .child import run_export

    log = default_logger(logger)
    if build is None:
        from diffpose_ros.lifter.sampler import build_sampler as build
    from diffpose_ros.paths import lifter_bundle   # '' / None: the Lifter's default bundle

    weights_dir = lifter_bundle(weights_dir)
    expected = expected_metadata(weights_dir, steps, opset, build)
    if path is None:
        path = sampler_cache_dir(cache_dir) / graph_filename(steps, graph_key(expected))
    path = Path(path)
    reason = "forced" if force else stale_reason(path, expected)
    if reason is None:
        log.info("reusing ONNX sampler %s (weights and settings unchanged)", path)
        return path
    log.info("exporting ONNX sampler to %s: %s", path, reason)
    name = _importable_name(build)
    if name is None:
        raise ExportError(f"build function {build!r} cannot be imported by the export process; "
                          "pass a module-level function")
    t0 = time.perf_counter()
    run_export(build=name, weights_dir=weights_dir, steps=steps, max_people=max_people,
               opset=opset, code_hash=expected["code_sha256"], path=path,
               check=lambda partial: stale_reason(partial, expected), cancel=cancel,
               niceness=niceness, logger=log)
    log.info("exported ONNX sampler (steps=%d, N dynamic) to %s in %.1f s", int(steps), path,
             time.perf_counter() - t0)
    return path


def onnx_settings(onnx_path) -> Dict[str, object]:
    """steps, window, temporal read back from an export's metadata (N is dynamic)."""
    meta = read_metadata(onnx_path)
    try:
        settings = {"steps": int(meta["steps"]), "window": int(meta["window"]),
                    "temporal": meta["temporal"] == "true"}
    except KeyError as exc:
        raise ValueError(f"{onnx_path}: not a diffpose_ros sampler export "
                         f"(metadata key {exc} missing)") from None
    if meta.get("hypotheses") != "dynamic":
        raise ValueError(f"{onnx_path}: an export with a fixed number of hypotheses (format "
                         f"{meta.get('format_version')}); export it again")
    return settings


def describe(onnx_path) -> str:
    return json.dumps(read_metadata(onnx_path), indent=1, sort_keys=True)
