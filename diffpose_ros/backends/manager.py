"""SamplerManager: which sampler graph serves now, and the next one, built in the background.

A backend serves one step count K and every number of hypotheses N (N is a dynamic axis of the
graph and of the TensorRT profile), so a change of N needs nothing from here. A change of K
needs the graph of the new K: ``request(K)`` starts building it in a background thread (the ONNX
export or TensorRT engine build runs in a child process at a lower CPU priority, see
``child.py``) while the current backend keeps serving; the frame loop calls ``take_ready()``
between two frames and gets the new backend once it is ready. The last few backends stay in
memory, so switching back to a recent K is immediate.

``close()`` stops everything at any moment: the build in progress is killed (its child reaped,
its partial file removed) and the thread is joined.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Optional

import numpy as np

from .auto import make_backend
from .base import NUM_JOINTS, Cancelled, SamplerBackend, default_logger

BACKGROUND_NICENESS = 5  # a background build yields the CPU to the frames being served


def warm_up(backend: SamplerBackend) -> None:
    """One call on a neutral input: a fresh ONNX Runtime session / CUDA graph / TensorRT
    context does its lazy allocations on its first run, which would otherwise cost the first
    frame it serves a few hundred ms."""
    lead = (1, backend.window) if backend.temporal else (1,)
    keypoints = np.zeros(lead + (NUM_JOINTS, 3), np.float32)
    keypoints[..., 2] = 1.0
    n = min(5, backend.max_hyp)
    backend.run(keypoints, np.zeros((1, n, NUM_JOINTS, 3), np.float32),
                np.full((1, n), 0.5, np.float32))


class SamplerManager:
    def __init__(self, backend: str = "auto", weights_dir=None, *, max_people: int = 10,
                 threads: int = 2, fp16: bool = True, cache_dir=None, keep: int = 3,
                 cancel: Optional[threading.Event] = None, logger=None, make=make_backend):
        """``cancel``: an Event that stops every build when set (the node's stop); ``make``
        constructs a backend, ``make(name, weights_dir, steps, ..., cancel=, niceness=)``."""
        self.backend = backend
        self.weights_dir = weights_dir
        self.options = dict(max_people=max_people, threads=threads, fp16=fp16,
                            cache_dir=cache_dir)
        self.keep = max(1, int(keep))
        self.cancel = cancel if cancel is not None else threading.Event()
        self.log = default_logger(logger)
        self._make_backend = make
        self._cond = threading.Condition()
        self._pool: "OrderedDict[int, SamplerBackend]" = OrderedDict()
        self._serving: Optional[SamplerBackend] = None
        self._wanted: Optional[int] = None
        self._building: Optional[tuple] = None  # (steps, monotonic start)
        self._build_cancel: Optional[threading.Event] = None
        self._failed: dict = {}  # steps -> why its build failed (retried when asked again)
        self._thread: Optional[threading.Thread] = None

    def _make(self, steps: int, cancel, niceness: int) -> SamplerBackend:
        backend = self._make_backend(self.backend, self.weights_dir, steps, logger=self.log,
                                     cancel=cancel, niceness=niceness, **self.options)
        warm_up(backend)
        return backend

    # ---------------------------------------------------------------- start-up
    def load(self, steps: int) -> SamplerBackend:
        """Build (or take from the cache) the backend for ``steps`` now and serve it. Blocks;
        raises Cancelled when ``cancel`` is set meanwhile."""
        backend = self._make(int(steps), self.cancel, 0)
        with self._cond:
            self._pool[backend.steps] = backend
            self._serving = backend
            self._wanted = backend.steps
        return backend

    @property
    def serving(self) -> Optional[SamplerBackend]:
        return self._serving

    # ---------------------------------------------------------------- run time
    def request(self, steps: int) -> None:
        """Serve ``steps`` as soon as its backend is ready (thread-safe, returns at once)."""
        steps = int(steps)
        with self._cond:
            if steps == self._wanted:
                return
            self._wanted = steps
            self._failed.pop(steps, None)
            if self._building is not None and self._building[0] != steps:
                self._build_cancel.set()  # the newest setting wins; the old build is killed
            if self._thread is None and self._needs_build():
                self._thread = threading.Thread(target=self._builder, name="sampler_builder",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def take_ready(self) -> Optional[SamplerBackend]:
        """Between two frames: the backend of the requested steps if it is ready and not yet
        serving (it serves from now on), else None."""
        with self._cond:
            wanted = self._wanted
            if self._serving is None or wanted is None or wanted == self._serving.steps:
                return None
            backend = self._pool.get(wanted)
            if backend is None:
                return None
            self._pool.move_to_end(wanted)
            self._serving = backend
        self.log.info("sampler: now serving %s", backend.describe())
        return backend

    def _needs_build(self) -> bool:
        wanted = self._wanted
        return (wanted is not None and self._serving is not None
                and wanted != self._serving.steps and wanted not in self._pool
                and wanted not in self._failed)

    def _builder(self):
        while True:
            with self._cond:
                while not self.cancel.is_set() and not self._needs_build():
                    self._cond.wait(timeout=0.5)
                if self.cancel.is_set():
                    return
                steps = self._wanted
                self._build_cancel = threading.Event()
                self._building = (steps, time.monotonic())
                cancel = self._build_cancel
            self.log.info("sampler: building the graph for steps=%d in the background; "
                          "steps=%d keeps serving", steps, self._serving.steps)
            backend = None
            try:
                backend = self._make(steps, cancel, BACKGROUND_NICENESS)
            except Cancelled as exc:
                self.log.info("sampler: build for steps=%d stopped (%s)", steps, exc)
            except Exception as exc:  # a failed build must not stop the serving graph
                why = f"{type(exc).__name__}: {exc}"
                self.log.warning("sampler: build for steps=%d failed, steps=%d keeps serving: "
                                 "%s", steps, self._serving.steps, why)
                with self._cond:
                    self._failed[steps] = why
            with self._cond:
                self._building = None
                self._build_cancel = None
                if backend is not None and not self.cancel.is_set():  # done is done: keep it
                    self._pool[steps] = backend
                    self._trim()
                    self.log.info("sampler: graph for steps=%d ready; it serves from the next "
                                  "frame", steps)

    def _trim(self):
        while len(self._pool) > self.keep:
            for steps, backend in self._pool.items():
                if backend is not self._serving and steps != self._wanted:
                    del self._pool[steps]
                    break
            else:
                return

    # ---------------------------------------------------------------- diagnostics, stop
    def status(self) -> dict:
        """{"sampler_graph": what serves, "sampler_building": what is being built or "none",
        "sampler_build_error": why the requested steps could not be built (only then)}."""
        with self._cond:
            serving, building = self._serving, self._building
            failed = self._failed.get(self._wanted)
        out = {"sampler_graph": "loading" if serving is None else
               f"{serving.name} ({serving.device}) steps={serving.steps}: {serving.source}",
               "sampler_building": "none" if building is None else
               f"steps={building[0]} for {time.monotonic() - building[1]:.1f} s"}
        if failed:
            out["sampler_build_error"] = failed
        return out

    def close(self, timeout: float = 1.0) -> bool:
        """Stop the build in progress (its child is killed and reaped) and join the builder
        thread. True when nothing of this manager is running any more."""
        self.cancel.set()
        with self._cond:
            if self._build_cancel is not None:
                self._build_cancel.set()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=max(0.0, timeout))
            return not thread.is_alive()
        return True
