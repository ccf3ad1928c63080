"""Build steps that run in a child process: the ONNX export and the TensorRT engine build.

Why a child process: an export takes seconds (a TensorRT engine build minutes on a Jetson)
inside native code (torch tracing, ONNX Runtime, TensorRT) with threads of its own. A stop that
arrives meanwhile cannot interrupt native code running in a thread, and an interpreter that
exits around such threads aborts ("terminate called without an active exception", exit -6). A
child process can be stopped at any moment: ``run_child`` kills (SIGKILL) and reaps it as soon as
the threading.Event ``cancel`` is set, and removes what it wrote.

Files: the child writes only to a temporary name the parent chose,
``<final>.<parent pid>-<random>.partial`` in the final file's folder; the parent renames it into
place only after the child exited with 0 and ``check`` accepted the file, so a killed or failed
build never leaves a half-written graph or engine under the final name. A ``.partial`` file
whose parent process is gone (a node killed with SIGKILL) is removed by the next build in that
folder (``sweep_partials``).

No child outlives its parent: it runs in a session of its own (a terminal Ctrl-C reaches the
node, which stops the child), asks the kernel for SIGKILL when the parent thread that started it
exits (Linux PR_SET_PDEATHSIG), and any child still running at interpreter exit is killed.

Child side: ``python -c _BOOTSTRAP onnx|tensorrt ... --out PARTIAL --parent-pid PID`` (the
bootstrap arranges the death with the parent before anything else, then runs ``main``).
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from .base import BackendError, Cancelled, default_logger

POLL_S = 0.05  # how often a waiting parent looks at its cancel event
PARTIAL_SUFFIX = ".partial"

_live: dict = {}  # pid -> (Popen, partial path) of every running child
_killed: set = set()  # pids killed by kill_children (their waiter raises Cancelled)
_lock = threading.Lock()


class BuildError(BackendError):
    """A build step in the child process failed (its stderr is in the message)."""


# --------------------------------------------------------------------------------------------
# parent side
# --------------------------------------------------------------------------------------------
def partial_path(final: Path) -> Path:
    return final.with_name(f"{final.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_partials(folder: Path, logger=None) -> int:
    """Remove ``*.partial`` files in ``folder`` whose writer's parent process is gone."""
    log = default_logger(logger)
    removed = 0
    with contextlib.suppress(OSError):
        for path in Path(folder).glob(f"*{PARTIAL_SUFFIX}"):
            try:
                pid = int(path.name[:-len(PARTIAL_SUFFIX)].rsplit(".", 1)[1].split("-")[0])
            except (IndexError, ValueError):
                continue
            if pid != os.getpid() and not _pid_alive(pid):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
                    log.info("removed %s left by a build whose process %d is gone", path.name, pid)
    return removed


def live_children() -> list:
    """pids of the build processes running now."""
    with _lock:
        return sorted(_live)


def kill_children(wait: float = 0.0) -> int:
    """Kill every running build process (from any thread), remove its partial file and wait up
    to ``wait`` s for each to be reaped; its waiting thread raises Cancelled. Does not depend on
    that thread: a process that stops without waiting for its threads leaves nothing behind
    either. Returns how many were killed."""
    with _lock:
        entries = list(_live.values())
        _killed.update(proc.pid for proc, _ in entries)
    for proc, partial in entries:
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(OSError):
            partial.unlink()  # a SIGKILLed process writes nothing more
    deadline = time.monotonic() + wait
    for proc, _ in entries:
        with contextlib.suppress(Exception):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    return len(entries)


atexit.register(kill_children, 1.0)


def run_child(args, final: Path, *, what: str, check: Optional[Callable] = None, cancel=None,
              niceness: int = 0, error=BuildError, logger=None) -> Path:
    """Run ``python -m diffpose_ros.backends.child <args> --out <partial>`` and move the partial
    file to ``final`` once the child succeeded and ``check(partial)`` returned None (else the
    problem, as text). Raises Cancelled (``cancel`` set or kill_children) or ``error``; either
    way the child is reaped and the partial file is gone."""
    log = default_logger(logger)
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_partials(final.parent, log)
    partial = partial_path(final)
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled before it started")
    cmd = [sys.executable, "-c", _BOOTSTRAP, *[str(a) for a in args],
           "--out", str(partial), "--parent-pid", str(os.getpid()), "--nice", str(int(niceness))]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errors, start_new_session=True)
        log.info("%s: running in child process %d", what, proc.pid)
        with _lock:
            _live[proc.pid] = (proc, partial)
        t0 = time.monotonic()
        try:
            while True:
                try:
                    code = proc.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"{what} cancelled after {time.monotonic() - t0:.1f} s")
            with _lock:
                killed = proc.pid in _killed
            if killed or (cancel is not None and cancel.is_set()):
                raise Cancelled(f"{what} cancelled after {time.monotonic() - t0:.1f} s")
            if code != 0:
                errors.seek(0)
                text = errors.read().decode(errors="replace").strip().splitlines()
                raise error(f"{what} failed in child process {proc.pid} (exit {code}): "
                                 + (" | ".join(text[-5:]) or "no message"))
            problem = check(partial) if check is not None else None
            if problem:
                raise error(f"{what}: the child's output does not check out: {problem}")
            os.replace(partial, final)
            return final
        finally:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
            with contextlib.suppress(Exception):
                proc.wait()
            with _lock:
                _live.pop(proc.pid, None)
                _killed.discard(proc.pid)
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()


def run_export(*, build: str, weights_dir, steps: int, max_people: int, opset: int,
               code_hash: str, path: Path, check=None, cancel=None, niceness: int = 0,
               logger=None) -> Path:
    """Export the sampler graph for (weights_dir, steps) to ``path`` in a child process
    (failures raise export.ExportError)."""
    from .export import ExportError

    args = ["onnx", "--build", build, "--weights-dir", str(weights_dir), "--steps", int(steps),
            "--max-people", int(max_people), "--opset", int(opset), "--code-hash", code_hash]
    return run_child(args, Path(path), what=f"ONNX export of the sampler (steps={int(steps)})",
                     check=check, cancel=cancel, niceness=niceness, error=ExportError,
                     logger=logger)


def run_engine_build(*, onnx_path, profile, fp16: bool, workspace_mb: int, path: Path,
                     cancel=None, niceness: int = 0, logger=None) -> Path:
    """Build a serialised TensorRT engine from ``onnx_path`` to ``path`` in a child process."""
    args = ["tensorrt", "--onnx", str(onnx_path), "--workspace-mb", int(workspace_mb),
            "--profile", json.dumps({k: [list(s) for s in v] for k, v in profile.items()})]
    if fp16:
        args.append("--fp16")
    return run_child(args, Path(path), what=f"TensorRT engine build of {Path(onnx_path).name}",
                     cancel=cancel, niceness=niceness, logger=logger)


# --------------------------------------------------------------------------------------------
# child side
# --------------------------------------------------------------------------------------------
# The child's first statements, before any import of this package (numpy, ...: seconds on a
# loaded CPU): die with the parent thread (PR_SET_PDEATHSIG = 1), or exit if it is gone already.
_BOOTSTRAP = (
    "import ctypes, os, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))\n"
    "if os.getppid() != int(sys.argv[sys.argv.index('--parent-pid') + 1]):\n"
    "    sys.exit(3)\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "from diffpose_ros.backends.child import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


def _import(name: str):
    import importlib

    module, _, qualname = name.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _write_new(path: Path, data: bytes) -> None:
    with open(path, "xb") as fh:  # the parent chose a fresh name: never overwrite anything
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _child_onnx(args) -> None:
    import torch

    from .export import export_onnx_bytes

    torch.set_num_threads(1)  # the node keeps its cores for the frames it is serving meanwhile
    build = _import(args.build)
    sampler = build(args.weights_dir, steps=args.steps)
    if int(sampler.steps) != args.steps:
        raise BuildError(f"{args.build} returned steps={sampler.steps}, asked for {args.steps}")
    data = export_onnx_bytes(sampler, args.max_people, args.opset, weights_dir=args.weights_dir,
                             code_hash=args.code_hash)
    _write_new(args.out, data)


def _child_tensorrt(args) -> None:
    import logging

    from .tensorrt_backend import _make_trt_logger, build_serialized_engine, import_tensorrt

    trt = import_tensorrt()
    profile = {k: tuple(tuple(s) for s in v) for k, v in json.loads(args.profile).items()}
    data = build_serialized_engine(trt, _make_trt_logger(trt, logging.getLogger("tensorrt")),
                                   Path(args.onnx).read_bytes(), profile, args.fp16,
                                   args.workspace_mb << 20)
    _write_new(args.out, data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="build step of diffpose_ros (run by the "
                                                 "backends in a child process)")
    sub = parser.add_subparsers(dest="what", required=True)
    onnx = sub.add_parser("onnx")
    onnx.add_argument("--build", required=True, help="module:function making the sampler")
    onnx.add_argument("--weights-dir", type=Path, required=True)
    onnx.add_argument("--steps", type=int, required=True)
    onnx.add_argument("--max-people", type=int, required=True)
    onnx.add_argument("--opset", type=int, required=True)
    onnx.add_argument("--code-hash", required=True)
    trt = sub.add_parser("tensorrt")
    trt.add_argument("--onnx", type=Path, required=True)
    trt.add_argument("--profile", required=True, help="JSON: input -> [min, opt, max] shapes")
    trt.add_argument("--fp16", action="store_true")
    trt.add_argument("--workspace-mb", type=int, required=True)
    for p in (onnx, trt):
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--parent-pid", type=int, required=True, help="checked by _BOOTSTRAP")
        p.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    if args.nice:
        with contextlib.suppress(OSError):
            os.nice(args.nice)
    try:
        {"onnx": _child_onnx, "tensorrt": _child_tensorrt}[args.what](args)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
