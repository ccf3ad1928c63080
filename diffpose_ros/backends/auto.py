"""Pick and construct a sampler backend by name.

Names: "torch" (CUDA when available, else CPU), "torch-cpu", "torch-cuda", "onnxruntime"
(CUDA execution provider when it works, else CPU), "onnxruntime-cpu", "onnxruntime-cuda",
"tensorrt", and "auto".

"auto" tries, fastest first: tensorrt, onnxruntime-cuda, torch-cuda, onnxruntime-cpu, and logs
which one it took and why each earlier one was not usable. An explicitly named backend that
cannot run raises BackendError: a robot configured for TensorRT must not quietly run 20x
slower on the CPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from .base import BackendError, SamplerBackend, default_logger

BACKEND_NAMES = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cuda", "onnxruntime-cpu",
                 "torch", "torch-cuda", "torch-cpu")
AUTO_ORDER = ("tensorrt", "onnxruntime-cuda", "torch-cuda", "onnxruntime-cpu")


def backend_available(name: str) -> Tuple[bool, str]:
    """Cheap check (imports and device queries only, no model) whether ``name`` can run here."""
    if name == "tensorrt":
        try:
            import tensorrt  # noqa: F401
        except Exception as exc:
            return False, f"not installed ({exc})"
        ok, why = _torch_cuda()
        return (True, "available") if ok else (False, why)
    if name == "onnxruntime-cuda":
        from .onnx_backend import onnxruntime_cuda_available

        return onnxruntime_cuda_available()
    if name in ("onnxruntime", "onnxruntime-cpu"):
        try:
            import onnxruntime  # noqa: F401
        except Exception as exc:
            return False, f"not installed ({exc})"
        return True, "available"
    if name == "torch-cuda":
        return _torch_cuda()
    if name in ("torch", "torch-cpu"):
        return True, "available"
    raise ValueError(f"backend: unknown name {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


def _torch_cuda() -> Tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        return False, (f"no CUDA device (torch {torch.__version__}, "
                       f"CUDA build: {torch.version.cuda or 'none'})")
    return True, "available"


def available_backends() -> Dict[str, Tuple[bool, str]]:
    return {name: backend_available(name) for name in BACKEND_NAMES if name != "auto"}


def make_backend(name: str = "auto", weights_dir=None, steps: int = 5, max_people: int = 10,
                 threads: int = 2, fp16: bool = True, cache_dir=None, logger=None, *,
                 build: Optional[Callable] = None, onnx_path=None, cancel=None,
                 niceness: int = 0) -> SamplerBackend:
    """Construct the backend ``name`` for the sampler in ``weights_dir`` with K=steps (any N:
    the number of hypotheses is a dynamic axis; default bundle: diffpose_ros/weights/frame,
    like the Lifter's).

    ``build(weights_dir, steps=)`` makes the PyTorch sampler (default
    ``diffpose_ros.lifter.sampler.build_sampler``); ONNX-based backends use
    ``export.load_or_export`` (graph cached in ``cache_dir``, default the user cache) unless
    ``onnx_path`` names an export to use as is. Exports and TensorRT engine builds run in a
    child process at ``niceness``; setting the threading.Event ``cancel`` stops them
    (``Cancelled``).
    """
    log = default_logger(logger)
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend: unknown name {name!r}; choose one of "
                         f"{', '.join(BACKEND_NAMES)}")
    from diffpose_ros.paths import lifter_bundle   # '' / None: the Lifter's default bundle

    weights_dir = lifter_bundle(weights_dir)
    if build is None:
        try:
            from diffpose_ros.lifter.sampler import build_sampler as build
        except ImportError as exc:
            raise BackendError(f"the sampler (diffpose_ros.lifter.sampler) is unavailable: "
                               f"{exc}") from exc

    cached = {}

    def sampler():
        if "sampler" not in cached:
            cached["sampler"] = build(weights_dir, steps=steps)
        return cached["sampler"]

    def onnx_file():
        if onnx_path is not None:
            return Path(onnx_path)
        if "onnx" not in cached:
            from .export import load_or_export

            cached["onnx"] = load_or_export(weights_dir, steps, max_people=max_people,
                                            build=build, cache_dir=cache_dir, cancel=cancel,
                                            niceness=niceness, logger=log)
        return cached["onnx"]

    def construct(which: str) -> SamplerBackend:
        ok, why = backend_available(which)
        if not ok:
            raise BackendError(f"{which}: {why}")
        if which == "tensorrt":
            from .tensorrt_backend import TensorRTBackend

            return TensorRTBackend(onnx_file(), max_people=max_people, fp16=fp16,
                                   cache_dir=cache_dir, cancel=cancel, logger=log)
        if which.startswith("onnxruntime"):
            from .onnx_backend import OnnxRuntimeBackend

            device = {"onnxruntime": "auto", "onnxruntime-cuda": "cuda",
                      "onnxruntime-cpu": "cpu"}[which]
            return OnnxRuntimeBackend(onnx_file(), device=device, max_people=max_people,
                                      threads=threads, logger=log)
        from .torch_backend import TorchBackend

        if which == "torch":
            device = "cuda" if _torch_cuda()[0] else "cpu"
        else:
            device = which.split("-")[1]
        return TorchBackend(sampler(), device=device, max_people=max_people, threads=threads,
                            logger=log)

    if name != "auto":
        backend = construct(name)
        log.info("sampler backend: %s", backend.describe())
        return backend

    skipped = []
    for which in AUTO_ORDER:
        try:
            backend = construct(which)
        except BackendError as exc:
            reason = str(exc)
            skipped.append(reason if reason.startswith(which) else f"{which}: {reason}")
            continue
        log.info("sampler backend (auto): chose %s%s", backend.describe(),
                 "".join(f"; not {s}" for s in skipped))
        return backend
    raise BackendError("no sampler backend could run: " + "; ".join(skipped))
