"""Run the sampler with PyTorch directly (CPU, or CUDA with the step loop in a CUDA graph).

On CUDA the sampler is a few hundred tiny kernels per frame (K steps x a small GCN); launching
them from Python costs more than running them. A CUDA graph records the whole launch sequence
once and replays it with one call. A graph has fixed shapes, so batches are padded up to a few
fixed sizes (1, 2, 4, 8, ..., max_people) and one graph is captured per (size, N) on first use.
Padding rows are copies of the last real row (always valid input), and are dropped after.
"""
from __future__ import annotations

import numpy as np

from .base import MAX_HYPOTHESES, BackendError, SamplerBackend


def _padded_sizes(max_people: int):
    sizes, s = [], 1
    while s < max_people:
        sizes.append(s)
        s *= 2
    sizes.append(max_people)
    return sizes


class _CapturedGraph:
    """One CUDA graph of sampler(keypoints, init_noise, kernel_u) for a fixed batch size."""

    def __init__(self, sampler, example_shapes, device):
        import torch

        self.inputs = [torch.zeros(shape, device=device) for shape in example_shapes]
        self.inputs[0][..., 2] = 1.0  # confidences of 1 and zero coords: a valid input
        self.inputs[2].fill_(0.5)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        # warm-up on a side stream, as the CUDA-graph docs require (lazy init, cuBLAS handles)
        with torch.cuda.stream(side):
            for _ in range(3):
                sampler(*self.inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = sampler(*self.inputs)

    def __call__(self, arrays):
        import torch

        for dst, src in zip(self.inputs, arrays):
            dst.copy_(torch.from_numpy(src), non_blocking=False)
        self.graph.replay()
        return self.outputs


class TorchBackend(SamplerBackend):
    """The reference backend: the PyTorch module itself.

    ``threads`` sets torch's intra-op thread count, which is process-wide in PyTorch.
    """

    name = "torch"

    def __init__(self, sampler, device: str = "cpu", max_people: int = 10, threads: int = 2,
                 cuda_graph: bool = True, max_hyp: int = MAX_HYPOTHESES, logger=None):
        import torch

        super().__init__(steps=sampler.steps, window=int(getattr(sampler, "window", 1)),
                         temporal=bool(getattr(sampler, "temporal", False)),
                         max_people=max_people, max_hyp=max_hyp, logger=logger)
        self.source = f"torch module (steps={sampler.steps})"
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError("torch: CUDA requested but torch.cuda.is_available() is False "
                               f"(torch {torch.__version__}, built with CUDA "
                               f"{torch.version.cuda})")
        if threads and int(threads) > 0:
            torch.set_num_threads(int(threads))
        self.threads = torch.get_num_threads()
        self.device = device
        self.sampler = sampler.eval().to(device)
        for p in self.sampler.parameters():
            p.requires_grad_(False)
        self.use_cuda_graph = bool(cuda_graph) and device == "cuda"
        self._sizes = _padded_sizes(self.max_people)
        self._graphs = {}

    def _run_chunk(self, keypoints, init_noise, kernel_u):
        import torch

        if self.use_cuda_graph:
            return self._run_graph(keypoints, init_noise, kernel_u)
        with torch.inference_mode():
            args = [torch.from_numpy(a).to(self.device) for a in (keypoints, init_noise, kernel_u)]
            out = self.sampler(*args)
            return tuple(o.float().cpu().numpy() for o in out)

    def _run_graph(self, keypoints, init_noise, kernel_u):
        import torch

        batch, n_hyp = init_noise.shape[:2]
        size = next(s for s in self._sizes if s >= batch)
        arrays = [self._pad(a, size) for a in (keypoints, init_noise, kernel_u)]
        with torch.inference_mode():
            graph = self._graphs.get((size, n_hyp))
            if graph is None:
                try:
                    self.log.info("torch: capturing CUDA graph for batch size %d, N=%d", size,
                                  n_hyp)
                    graph = _CapturedGraph(self.sampler, [a.shape for a in arrays], self.device)
                except Exception as exc:
                    # e.g. a host sync (.item()) inside the sampler: run eagerly from now on
                    self.log.warning("torch: CUDA graph capture failed (%s: %s); running "
                                     "the sampler eagerly on CUDA", type(exc).__name__, exc)
                    self.use_cuda_graph = False
                    return self._run_chunk(keypoints, init_noise, kernel_u)
                self._graphs[(size, n_hyp)] = graph
            out = graph(arrays)
            return tuple(o[:batch].float().cpu().numpy() for o in out)

    @staticmethod
    def _pad(array: np.ndarray, size: int) -> np.ndarray:
        if array.shape[0] == size:
            return array
        fill = np.repeat(array[-1:], size - array.shape[0], axis=0)
        return np.ascontiguousarray(np.concatenate([array, fill], axis=0))

    def describe(self) -> str:
        extra = ", CUDA graphs" if self.use_cuda_graph else f", {self.threads} threads"
        return super().describe() + extra
