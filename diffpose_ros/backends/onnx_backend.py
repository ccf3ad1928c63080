"""Run the exported sampler graph with ONNX Runtime (CPU, or the CUDA execution provider).

Threads: the ROS node shares a small CPU with the detector and the camera driver, so the
default is 2 intra-op threads with spinning off (``session.intra_op.allow_spinning = 0``):
idle worker threads sleep instead of busy-waiting and stealing cores between frames.

CUDA: onnxruntime-gpu quietly falls back to the CPU provider when the CUDA libraries don't
load, so the active providers are checked after the session is created.
"""
from __future__ import annotations

from pathlib import Path

from .base import MAX_HYPOTHESES, BackendError, SamplerBackend
from .export import INPUT_NAMES, OUTPUT_NAMES, onnx_settings

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def onnxruntime_cuda_available():
    """(available, reason) for the CUDA execution provider, without creating a session."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return False, f"onnxruntime not installed ({exc})"
    providers = ort.get_available_providers()
    if CUDA_EP not in providers:
        return False, (f"{CUDA_EP} not in this onnxruntime build ({ort.__version__}: "
                       f"{', '.join(providers)}); install onnxruntime-gpu")
    return True, "available"


class OnnxRuntimeBackend(SamplerBackend):
    """device: "cpu", "cuda" (CUDA EP or BackendError), or "auto" (CUDA EP when it works)."""

    name = "onnxruntime"

    def __init__(self, onnx_path, device: str = "cpu", max_people: int = 10, threads: int = 2,
                 max_hyp: int = MAX_HYPOTHESES, logger=None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError(f"onnxruntime: not installed ({exc})") from exc
        onnx_path = Path(onnx_path)
        settings = onnx_settings(onnx_path)
        super().__init__(max_people=max_people, max_hyp=max_hyp, logger=logger, **settings)
        if device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device: must be 'cpu', 'cuda' or 'auto', got {device!r}")

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # errors only; ORT warnings about unused initialisers are noise
        self.threads = opts.intra_op_num_threads

        want_cuda = device in ("cuda", "auto")
        if want_cuda:
            ok, why = onnxruntime_cuda_available()
            if not ok:
                if device == "cuda":
                    raise BackendError(f"onnxruntime-cuda: {why}")
                self.log.info("onnxruntime: using CPU (%s)", why)
                want_cuda = False
        providers = [CUDA_EP, CPU_EP] if want_cuda else [CPU_EP]
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        except Exception as exc:
            raise BackendError(f"onnxruntime: cannot load {onnx_path}: {exc}") from exc
        active = self.session.get_providers()
        if want_cuda and (not active or active[0] != CUDA_EP):
            why = (f"{CUDA_EP} did not activate (session providers: {active}); "
                   "check the CUDA/cuDNN libraries onnxruntime-gpu needs")
            if device == "cuda":
                raise BackendError(f"onnxruntime-cuda: {why}")
            self.log.warning("onnxruntime: %s; running on CPU", why)
        self.device = "cuda" if active and active[0] == CUDA_EP else "cpu"
        self.onnx_path = onnx_path
        self.source = onnx_path.name
        names = [i.name for i in self.session.get_inputs()]
        if tuple(names) != INPUT_NAMES:
            raise BackendError(f"onnxruntime: {onnx_path} has inputs {names}, "
                               f"expected {list(INPUT_NAMES)}")

    def _run_chunk(self, keypoints, init_noise, kernel_u):
        feeds = dict(zip(INPUT_NAMES, (keypoints, init_noise, kernel_u)))
        return tuple(self.session.run(list(OUTPUT_NAMES), feeds))

    def describe(self) -> str:
        return super().describe() + f", {self.threads} threads, {self.onnx_path.name}"
