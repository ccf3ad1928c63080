"""Inference backends for the DiffPose sampler: PyTorch, ONNX Runtime and TensorRT.

One sampler graph (``lifter.sampler.DiffPoseSampler``) is exported once to ONNX
(``export.load_or_export``); every backend runs it behind the same interface:

    backend = make_backend("auto", weights_dir, steps=5, n_hyp=5)
    mean, cov, hyps = backend.run(keypoints, init_noise, kernel_u)   # numpy float32

See ``base`` for the array shapes. Heavy libraries (torch, onnxruntime, tensorrt) are imported
only by the backend that needs them.
"""
from .auto import AUTO_ORDER, BACKEND_NAMES, available_backends, backend_available, make_backend
from .base import BackendError, SamplerBackend, validate_inputs

__all__ = ["AUTO_ORDER", "BACKEND_NAMES", "BackendError", "SamplerBackend", "available_backends",
           "backend_available", "make_backend", "validate_inputs"]
