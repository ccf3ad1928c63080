"""The one interface every sampler backend (PyTorch, ONNX Runtime, TensorRT) implements.

A backend runs the DiffPose sampler graph on numpy arrays:

    run(keypoints, init_noise, kernel_u) -> (mean, cov, hyps)

    keypoints  (B, 17, 3) frame model or (B, T, 17, 3) temporal model: (x_norm, y_norm, conf)
    init_noise (B, N, 17, 3) standard normal draws that start the N reverse chains
    kernel_u   (B, N) uniform [0, 1) draws that pick each hypothesis' GMM kernel
    mean (B, 17, 3), cov (B, 17, 3, 3), hyps (B, N, 17, 3): root-relative metres, float32;
    cov is uncalibrated (the Lifter applies the calibration of its steps and N)

N, the number of hypotheses, is a dynamic axis (1..MAX_HYPOTHESES): one backend per step
count serves every N, so changing N never needs a new graph or engine.

The randomness is an *input* so that all backends compute the same function bit for bit
(parity tests compare them) and so that TensorRT needs no random-number layers.

Input checking, the empty batch and the split into chunks of at most ``max_people`` live here,
once, so that every backend accepts and rejects exactly the same inputs with the same errors.
"""
from __future__ import annotations

import logging
from typing import Tuple

import numpy as np

NUM_JOINTS = 17
LOGGER_NAME = "diffpose_ros.backends"
# largest N a backend accepts (the TensorRT profile's bound; the node's num_hypotheses range)
MAX_HYPOTHESES = 64

Outputs = Tuple[np.ndarray, np.ndarray, np.ndarray]


class BackendError(RuntimeError):
    """A backend is unavailable (library missing, no GPU) or failed while running."""


class Cancelled(Exception):
    """A graph export or engine build was stopped on request (the node is shutting down, or a
    newer setting replaced the one being built). Not an error: nothing was written."""


def check_cancel(cancel, what: str = "build") -> None:
    """Raise Cancelled when the threading.Event ``cancel`` (or None) is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled")


def default_logger(logger=None):
    return logger if logger is not None else logging.getLogger(LOGGER_NAME)


def _as_float32(name: str, value) -> np.ndarray:
    """Accept any real floating array; reject ints/bools/objects so a wrong argument order or a
    pixel array of uint8 fails loudly instead of being silently converted."""
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists etc.
            raise ValueError(f"{name}: cannot be converted to an array ({exc})") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: dtype must be floating point (float32 preferred), "
                         f"got {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN/inf value(s); mark missing joints with "
                         "confidence 0 and finite coordinates instead")
    return arr


def validate_inputs(keypoints, init_noise, kernel_u, *, window: int, temporal: bool,
                    max_hyp: int = MAX_HYPOTHESES):
    """Check shapes, dtypes and values; return C-contiguous float32 copies/views.

    N is taken from init_noise (axis 1) and must be 1..max_hyp. Raises ValueError naming the
    offending argument.
    """
    kp = _as_float32("keypoints", keypoints)
    noise = _as_float32("init_noise", init_noise)
    u = _as_float32("kernel_u", kernel_u)

    if temporal:
        want = f"(B, {window}, {NUM_JOINTS}, 3)"
        ok = kp.ndim == 4 and kp.shape[1:] == (window, NUM_JOINTS, 3)
    else:
        want = f"(B, {NUM_JOINTS}, 3)"
        ok = kp.ndim == 3 and kp.shape[1:] == (NUM_JOINTS, 3)
    if not ok:
        raise ValueError(f"keypoints: expected shape {want}, got {kp.shape}")
    batch = kp.shape[0]

    if noise.ndim != 4 or noise.shape[0] != batch or noise.shape[2:] != (NUM_JOINTS, 3):
        raise ValueError(f"init_noise: expected shape ({batch}, N, {NUM_JOINTS}, 3) "
                         f"(batch from keypoints, N hypotheses), got {noise.shape}")
    n_hyp = noise.shape[1]
    if not 1 <= n_hyp <= max_hyp:
        raise ValueError(f"init_noise: N={n_hyp} hypotheses, must be 1..{max_hyp}")
    if u.shape != (batch, n_hyp):
        raise ValueError(f"kernel_u: expected shape ({batch}, {n_hyp}), got {u.shape}")
    if u.size and (u.min() < 0.0 or u.max() >= 1.0):
        raise ValueError(f"kernel_u: values must lie in [0, 1), got range "
                         f"[{u.min():.4g}, {u.max():.4g}]")
    return kp, noise, u


def empty_outputs(n_hyp: int) -> Outputs:
    return (np.zeros((0, NUM_JOINTS, 3), np.float32),
            np.zeros((0, NUM_JOINTS, 3, 3), np.float32),
            np.zeros((0, n_hyp, NUM_JOINTS, 3), np.float32))


class SamplerBackend:
    """Base class: subclasses set the attributes below and implement ``_run_chunk``.

    Attributes: name ("torch", "onnxruntime", "tensorrt"), device ("cpu", "cuda"), steps,
    window (1 for the frame model), temporal, max_people (largest batch sent to the engine at
    once; bigger batches are split), max_hyp (largest N accepted), source (which graph or
    engine file serves, for diagnostics).
    """

    name: str = "base"
    device: str = "cpu"
    source: str = ""

    def __init__(self, *, steps: int, window: int, temporal: bool, max_people: int,
                 max_hyp: int = MAX_HYPOTHESES, logger=None):
        if int(max_people) < 1:
            raise ValueError(f"max_people: must be >= 1, got {max_people}")
        if int(max_hyp) < 1:
            raise ValueError(f"max_hyp: must be >= 1, got {max_hyp}")
        self.steps = int(steps)
        self.max_hyp = int(max_hyp)
        self.window = int(window)
        self.temporal = bool(temporal)
        self.max_people = int(max_people)
        self.log = default_logger(logger)

    # -- the public call -------------------------------------------------------------------
    def run(self, keypoints, init_noise, kernel_u) -> Outputs:
        kp, noise, u = validate_inputs(keypoints, init_noise, kernel_u, window=self.window,
                                       temporal=self.temporal, max_hyp=self.max_hyp)
        batch, n_hyp = noise.shape[:2]
        if batch == 0:
            return empty_outputs(n_hyp)
        parts = []
        for start in range(0, batch, self.max_people):
            stop = min(start + self.max_people, batch)
            try:
                out = self._run_chunk(kp[start:stop], noise[start:stop], u[start:stop])
            except (BackendError, ValueError):
                raise
            except Exception as exc:
                raise BackendError(f"{self.name} backend ({self.device}) failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            parts.append(self._check_outputs(out, stop - start, n_hyp))
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate([p[i] for p in parts], axis=0) for i in range(3))

    # Lifter(runner=...) calls its runner like a function
    __call__ = run

    def _check_outputs(self, out, batch: int, n_hyp: int) -> Outputs:
        mean, cov, hyps = (np.ascontiguousarray(o, dtype=np.float32) for o in out)
        expected = ((batch, NUM_JOINTS, 3), (batch, NUM_JOINTS, 3, 3),
                    (batch, n_hyp, NUM_JOINTS, 3))
        for label, arr, shape in zip(("mean", "cov", "hyps"), (mean, cov, hyps), expected):
            if arr.shape != shape:
                raise BackendError(f"{self.name} backend returned {label} of shape {arr.shape}, "
                                   f"expected {shape}")
            # finite inputs must give finite outputs; anything else is an engine fault
            # (e.g. an FP16 overflow), not something to pass on to a robot.
            if not np.all(np.isfinite(arr)):
                raise BackendError(f"{self.name} backend ({self.device}) returned non-finite "
                                   f"{label} for finite inputs")
        return mean, cov, hyps

    def _run_chunk(self, keypoints: np.ndarray, init_noise: np.ndarray,
                   kernel_u: np.ndarray) -> Outputs:
        raise NotImplementedError

    def describe(self) -> str:
        return (f"{self.name} on {self.device} (steps={self.steps}, N=1..{self.max_hyp}, "
                f"{'temporal T=' + str(self.window) if self.temporal else 'frame'} model, "
                f"max_people={self.max_people})")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"
