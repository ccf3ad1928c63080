"""Inference backends for the DiffPose sampler: PyTorch, ONNX Runtime and TensorRT.

One sampler graph per step count (``lifter.sampler.DiffPoseSampler``) is exported once to ONNX
and cached in the user's cache directory (``export.load_or_export``, in a child process:
``child``); every backend runs it behind the same interface, for any number of hypotheses N:

    backend = make_backend("auto", weights_dir, steps=5)
    mean, cov, hyps = backend.run(keypoints, init_noise, kernel_u)   # numpy float32, N = axis 1

``SamplerManager`` serves one backend and builds the one for a new step count in the
background. See ``base`` for the array shapes. Heavy libraries (torch, onnxruntime, tensorrt)
are imported only by the backend that needs them.
"""
from .auto import AUTO_ORDER, BACKEND_NAMES, available_backends, backend_available, make_backend
from .base import (MAX_HYPOTHESES, BackendError, Cancelled, SamplerBackend, check_cancel,
                   validate_inputs)
from .manager import SamplerManager

__all__ = ["AUTO_ORDER", "BACKEND_NAMES", "MAX_HYPOTHESES", "BackendError", "Cancelled",
           "SamplerBackend", "SamplerManager", "available_backends", "backend_available",
           "check_cancel", "make_backend", "validate_inputs"]
