"""Run the exported sampler graph as a TensorRT engine (Jetson / NVIDIA GPUs).

The engine is built from the same ONNX file ONNX Runtime runs, with one optimisation profile
covering 1..max_people people on every input and 1..max_hyp hypotheses (N is a dynamic
dimension, so changing N needs no new engine), and cached on disk at
``<cache_dir>/engines/<key>.engine``. The key is the sha256 of everything an engine depends on:
the ONNX bytes, the TensorRT version, the GPU name and compute capability, the precision and
the shape profile. A cached engine that fails to deserialise (truncated write, TensorRT upgrade
under the same version string) is rebuilt. If the cache folder is not writable the engine is
built anyway and kept in memory only (rebuilt at every start: minutes on a Jetson). The build
runs in a child process (``child.run_engine_build``) that a stop kills at once; it writes under
a temporary name renamed into the cache only when complete.

Device buffers are torch CUDA tensors: torch is a dependency of the package anyway, and this
avoids pycuda/cuda-python. So this backend needs a CUDA build of torch next to TensorRT.
Execution uses the name-based API (set_input_shape / set_tensor_address / execute_async_v3),
available from TensorRT 8.5 (JetPack 5) and the only one left in TensorRT 10.

Written against the TensorRT 8.5/8.6/10 Python API documentation; it was NOT run on a GPU
while being written (no GPU was available). The cache logic, the shape profile and the
child-process build are tested without TensorRT.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from .base import MAX_HYPOTHESES, BackendError, SamplerBackend, default_logger
from .export import INPUT_NAMES, OUTPUT_NAMES, onnx_settings

Shape = Tuple[int, ...]
Profile = Dict[str, Tuple[Shape, Shape, Shape]]  # input name -> (min, opt, max) shapes


def import_tensorrt():
    """The tensorrt module, or BackendError saying why it cannot be used."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken install failing to load libnvinfer
        raise BackendError(f"tensorrt: not installed ({exc})") from exc
    return trt


# --------------------------------------------------------------------------------------------
# pure helpers: shape profile, cache key, cache folder, cached file -> engine decision
# --------------------------------------------------------------------------------------------
def shape_profile(window: int, temporal: bool, max_people: int,
                  max_hyp: int = MAX_HYPOTHESES, opt_hyp: int = 5) -> Profile:
    """People: min 1, optimised for 2 (typical scene), max ``max_people``, on every input.
    Hypotheses (init_noise and kernel_u axis 1): min 1, optimised for ``opt_hyp`` (the
    default N), max ``max_hyp``."""
    if max_people < 1:
        raise ValueError(f"max_people: must be >= 1, got {max_people}")
    if max_hyp < 1:
        raise ValueError(f"max_hyp: must be >= 1, got {max_hyp}")
    kp = (window, 17, 3) if temporal else (17, 3)
    opt, opt_n = min(2, max_people), min(max(1, opt_hyp), max_hyp)
    profile = {"keypoints": ((1,) + kp, (opt,) + kp, (max_people,) + kp)}
    for name, tail in (("init_noise", (17, 3)), ("kernel_u", ())):
        profile[name] = ((1, 1) + tail, (opt, opt_n) + tail, (max_people, max_hyp) + tail)
    return profile


def engine_cache_key(onnx_bytes: bytes, trt_version: str, gpu_name: str,
                     compute_capability: Tuple[int, int], precision: str,
                     profile: Profile) -> str:
    """sha256 hex of everything a serialised engine depends on."""
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(onnx_bytes).digest())
    described = {
        "tensorrt": str(trt_version),
        "gpu": str(gpu_name),
        "sm": [int(c) for c in compute_capability],
        "precision": str(precision),
        "profile": {k: [list(s) for s in v] for k, v in sorted(profile.items())},
    }
    digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()


def engine_cache_dir(cache_dir=None, logger=None) -> Optional[Path]:
    """``<cache_dir>/engines`` if it can be created and written, else None (with a warning)."""
    log = default_logger(logger)
    if cache_dir is None:
        from diffpose_ros import paths

        try:
            cache_dir = paths.cache_dir()
        except OSError as exc:
            log.warning("tensorrt: cache folder unavailable (%s); the engine will be kept in "
                        "memory only and rebuilt at every start", exc)
            return None
    folder = Path(cache_dir) / "engines"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=str(folder), prefix=".write-test-"):
            pass
    except OSError as exc:
        log.warning("tensorrt: engine cache %s is not writable (%s); the engine will be kept "
                    "in memory only and rebuilt at every start", folder, exc)
        return None
    return folder


def load_cached_engine(path: Path, deserialize: Callable[[bytes], object], logger=None):
    """Deserialize ``path`` or return None when it is missing or unusable (reason logged)."""
    log = default_logger(logger)
    if not path.exists():
        log.info("tensorrt: no cached engine %s", path.name)
        return None
    try:
        data = path.read_bytes()
        engine = deserialize(data) if data else None
    except Exception as exc:
        log.warning("tensorrt: cached engine %s failed to deserialize (%s: %s); rebuilding",
                    path, type(exc).__name__, exc)
        return None
    if engine is None:
        log.warning("tensorrt: cached engine %s failed to deserialize (%s); rebuilding", path,
                    "empty file" if not data else "TensorRT returned None")
        return None
    log.info("tensorrt: loaded cached engine %s", path)
    return engine


def _build_into(path: Path, build: Callable[[Path], object], log) -> bytes:
    """``build(path)`` writes the engine to ``path`` (complete or not at all); its bytes."""
    t0 = time.perf_counter()
    build(path)
    data = path.read_bytes()
    log.warning("built TensorRT engine in %.0f s (%.1f MB)", time.perf_counter() - t0,
                len(data) / 1e6)
    return data


def obtain_engine(key: str, folder: Optional[Path], build: Callable[[Path], object],
                  deserialize: Callable[[bytes], object], logger=None):
    """Cached engine for ``key`` if usable, else build (+ cache when ``folder``) and load it.

    Returns (engine, "cache" | "built"). ``build(path)`` writes the serialised engine to
    ``path`` atomically (``child.run_engine_build`` does: temporary name, renamed when
    complete); without a cache folder, or when writing there fails, it goes to a temporary
    folder and the engine is kept in memory only.
    """
    log = default_logger(logger)
    path = folder / f"{key}.engine" if folder is not None else None
    if path is not None:
        engine = load_cached_engine(path, deserialize, log)
        if engine is not None:
            return engine, "cache"
    log.warning("building TensorRT engine, this can take minutes on a Jetson ...")
    data = None
    if path is not None:
        try:
            data = _build_into(path, build, log)
            log.info("tensorrt: cached engine at %s", path)
        except OSError as exc:
            log.warning("tensorrt: could not write engine cache %s (%s); keeping it in memory",
                        path, exc)
    if data is None:
        with tempfile.TemporaryDirectory(prefix="diffpose-engine-") as tmp:
            data = _build_into(Path(tmp) / f"{key}.engine", build, log)
    engine = deserialize(data)
    if engine is None:
        raise BackendError("tensorrt: the freshly built engine failed to deserialize")
    return engine, "built"


# --------------------------------------------------------------------------------------------
# TensorRT calls
# --------------------------------------------------------------------------------------------
_TRT_LOGGER = None


def _make_trt_logger(trt, log):
    """Forward TensorRT's messages to Python logging (the ROS node passes an adapter).

    One instance per process: TensorRT 8 treats the logger as a singleton shared by every
    Builder and Runtime, so later backends only retarget it.
    """
    global _TRT_LOGGER

    if _TRT_LOGGER is None:
        class _Forward(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.target = log

            def log(self, severity, msg):
                if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                    self.target.error("TensorRT: %s", msg)
                elif severity == trt.ILogger.WARNING:
                    self.target.warning("TensorRT: %s", msg)
                elif severity == trt.ILogger.INFO:
                    self.target.debug("TensorRT: %s", msg)

        _TRT_LOGGER = _Forward()
    _TRT_LOGGER.target = log
    return _TRT_LOGGER


def build_serialized_engine(trt, trt_logger, onnx_bytes: bytes, profile: Profile, fp16: bool,
                            workspace_bytes: int) -> bytes:
    """ONNX -> serialised engine with the TensorRT builder (explicit batch, one profile)."""
    builder = trt.Builder(trt_logger)
    flags = 0
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if explicit is not None and int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(explicit)  # required before TensorRT 10, implicit (deprecated) after
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"tensorrt: the ONNX parser rejected the sampler graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError("tensorrt: build_serialized_network failed (see TensorRT errors "
                           "above)")
    return bytes(serialized)


class TensorRTBackend(SamplerBackend):
    name = "tensorrt"
    device = "cuda"

    def __init__(self, onnx_path, max_people: int = 10, fp16: bool = True, cache_dir=None,
                 workspace_mb: int = 512, max_hyp: int = MAX_HYPOTHESES, cancel=None,
                 logger=None):
        """``cancel`` (threading.Event): setting it kills an engine build in progress
        (Cancelled is raised; nothing is cached)."""
        trt = import_tensorrt()
        try:
            import torch
        except ImportError as exc:
            raise BackendError(f"tensorrt: torch is needed for device buffers ({exc})") from exc
        if not torch.cuda.is_available():
            raise BackendError("tensorrt: no CUDA device visible to torch "
                               "(torch.cuda.is_available() is False; a CUDA build of torch is "
                               "needed for the device buffers)")
        onnx_path = Path(onnx_path)
        settings = onnx_settings(onnx_path)
        super().__init__(max_people=max_people, max_hyp=max_hyp, logger=logger, **settings)
        self.trt = trt
        self._trt_logger = _make_trt_logger(trt, self.log)

        gpu = torch.cuda.get_device_name(0)
        sm = torch.cuda.get_device_capability(0)
        builder_probe = trt.Builder(self._trt_logger)
        fast_fp16 = getattr(builder_probe, "platform_has_fast_fp16", True)
        self.precision = "fp16" if fp16 and fast_fp16 else "fp32"
        if fp16 and not fast_fp16:
            self.log.info("tensorrt: %s has no fast FP16; building an FP32 engine", gpu)
        profile = shape_profile(self.window, self.temporal, self.max_people, self.max_hyp)
        onnx_bytes = onnx_path.read_bytes()
        self.cache_key = engine_cache_key(onnx_bytes, trt.__version__, gpu, sm,
                                          self.precision, profile)
        self._runtime = trt.Runtime(self._trt_logger)

        def deserialize(data: bytes):
            return self._runtime.deserialize_cuda_engine(data)

        def build(path: Path):
            from .child import run_engine_build

            self.log.warning("tensorrt: engine for %s on %s (sm_%d%d, TensorRT %s, %s, "
                             "1..%d people, N 1..%d)", onnx_path.name, gpu, sm[0], sm[1],
                             trt.__version__, self.precision, self.max_people, self.max_hyp)
            run_engine_build(onnx_path=onnx_path, profile=profile,
                             fp16=self.precision == "fp16", workspace_mb=workspace_mb,
                             path=path, cancel=cancel, logger=self.log)

        folder = engine_cache_dir(cache_dir, self.log)
        self.engine, self.engine_source = obtain_engine(self.cache_key, folder, build,
                                                        deserialize, self.log)
        self.source = f"engine {self.cache_key[:12]} ({self.engine_source}) of {onnx_path.name}"
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendError("tensorrt: could not create an execution context "
                               "(out of GPU memory?)")
        self._setup_buffers(torch, profile)
        self.stream = torch.cuda.Stream()

    def _setup_buffers(self, torch, profile: Profile):
        trt = self.trt
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if set(inputs) != set(INPUT_NAMES) or set(outputs) != set(OUTPUT_NAMES):
            raise BackendError(f"tensorrt: engine has inputs {inputs} and outputs {outputs}, "
                               f"expected {list(INPUT_NAMES)} -> {list(OUTPUT_NAMES)}")
        for n in names:
            if self.engine.get_tensor_dtype(n) != trt.DataType.FLOAT:
                raise BackendError(f"tensorrt: tensor {n} has dtype "
                                   f"{self.engine.get_tensor_dtype(n)}, expected FLOAT")
        # one flat buffer per tensor, sized for max_people and max_hyp; a call with b people
        # and N hypotheses views its first b*N*... elements in that shape (contiguous, so the
        # addresses never change, only the input shapes do).
        largest = {name: profile[name][2] for name in INPUT_NAMES}
        largest.update({"mean": (self.max_people, 17, 3), "cov": (self.max_people, 17, 3, 3),
                        "hyps": (self.max_people, self.max_hyp, 17, 3)})
        self._buffers = {}
        for name, shape in largest.items():
            count = 1
            for d in shape:
                count *= int(d)
            self._buffers[name] = torch.empty(count, dtype=torch.float32, device="cuda")
        for name, buf in self._buffers.items():
            if not self.context.set_tensor_address(name, buf.data_ptr()):
                raise BackendError(f"tensorrt: set_tensor_address failed for {name}")

    def _run_chunk(self, keypoints, init_noise, kernel_u):
        import torch

        batch, n_hyp = init_noise.shape[:2]
        wanted = {"mean": (batch, 17, 3), "cov": (batch, 17, 3, 3),
                  "hyps": (batch, n_hyp, 17, 3)}
        with torch.cuda.stream(self.stream):
            for name, array in zip(INPUT_NAMES, (keypoints, init_noise, kernel_u)):
                self._buffers[name][:array.size].view(array.shape).copy_(torch.from_numpy(array))
                if not self.context.set_input_shape(name, tuple(array.shape)):
                    raise BackendError(f"tensorrt: set_input_shape({name}, {array.shape}) "
                                       "rejected (outside the engine's profile?)")
            for name in OUTPUT_NAMES:
                shape = tuple(self.context.get_tensor_shape(name))
                if shape != wanted[name]:
                    raise BackendError(f"tensorrt: output {name} has shape {shape}, "
                                       f"expected {wanted[name]}")
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError("tensorrt: execute_async_v3 failed")
            outs = []
            for name in OUTPUT_NAMES:
                count = 1
                for d in wanted[name]:
                    count *= d
                outs.append(self._buffers[name][:count].view(wanted[name]).cpu())
        self.stream.synchronize()
        return tuple(o.numpy() for o in outs)

    def describe(self) -> str:
        return (super().describe() + f", {self.precision}, engine {self.cache_key[:12]} "
                f"({self.engine_source})")
