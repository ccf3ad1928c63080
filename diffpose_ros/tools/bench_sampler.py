"""diffpose-bench-sampler: per-frame latency of the DiffPose sampler on every available backend.

For each backend, DDIM steps K, hypotheses N and people per frame P, one "frame" is one
backend.run() call on P people (input checks and host<->device copies included). One graph
(and one backend) per K serves every N: N is a dynamic axis. Reports the
median and 90th percentile over --runs timed calls after --warmup untimed ones, and writes the
table as JSON (--out). The frame model is benchmarked by default, --temporal for the temporal
one. Without --weights-dir a freshly initialised bundle is used (--init-weights): latency
depends on the architecture, not on the weight values.
"""
import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_BACKENDS = ("tensorrt", "onnxruntime-cuda", "torch-cuda", "onnxruntime-cpu", "torch-cpu")


def _ints(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_backend(backend, args_by_people, runs, warmup):
    """{people: (median_ms, p90_ms, mean_ms)} for one constructed backend."""
    out = {}
    for people, args in args_by_people.items():
        for _ in range(warmup):
            backend.run(*args)
        times = np.empty(runs)
        for i in range(runs):
            t0 = time.perf_counter()
            backend.run(*args)
            times[i] = time.perf_counter() - t0
        ms = times * 1e3
        out[people] = (float(np.median(ms)), float(np.percentile(ms, 90)), float(ms.mean()))
    return out


def make(name, sampler, onnx_path, args, threads):
    from diffpose_ros.backends.onnx_backend import OnnxRuntimeBackend
    from diffpose_ros.backends.tensorrt_backend import TensorRTBackend
    from diffpose_ros.backends.torch_backend import TorchBackend

    if name == "tensorrt":
        return TensorRTBackend(onnx_path, max_people=args.max_people, fp16=not args.fp32)
    if name.startswith("onnxruntime"):
        return OnnxRuntimeBackend(onnx_path, device=name.split("-")[1],
                                  max_people=args.max_people, threads=threads)
    return TorchBackend(sampler, device=name.split("-")[1], max_people=args.max_people,
                        threads=threads)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--weights-dir", type=Path, help="lifter bundle folder to benchmark")
    src.add_argument("--init-weights", action="store_true",
                     help="use a freshly initialised bundle (the default without --weights-dir)")
    parser.add_argument("--temporal", action="store_true",
                        help="temporal model (with --init-weights; a --weights-dir bundle "
                             "decides its own model type)")
    parser.add_argument("--window", type=int, default=27, help="temporal window for --init-weights")
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                        help="comma-separated; unavailable ones are skipped with the reason")
    parser.add_argument("--people", type=_ints, default=[1, 2, 5])
    parser.add_argument("--steps", type=_ints, default=[1, 2, 5, 10])
    parser.add_argument("--hyps", type=_ints, default=[1, 5, 20])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per cell (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs first (default 20)")
    parser.add_argument("--threads", type=_ints, default=[2],
                        help="CPU thread counts to try, comma-separated (default 2)")
    parser.add_argument("--max-people", type=int, default=10)
    parser.add_argument("--fp32", action="store_true", help="TensorRT: no FP16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import torch
    from tqdm import tqdm

    from diffpose_ros.backends import backend_available
    from diffpose_ros.backends.export import example_inputs, load_or_export, weights_sha256
    from diffpose_ros.lifter.sampler import build_sampler

    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    skipped = {}
    chosen = []
    for name in names:
        if name not in DEFAULT_BACKENDS:
            parser.error(f"--backends: {name!r} is not one of {', '.join(DEFAULT_BACKENDS)}")
        ok, why = backend_available(name)
        (chosen.append(name) if ok else skipped.__setitem__(name, why))
    for name, why in skipped.items():
        print(f"skipping {name}: {why}")
    if not chosen:
        parser.error("no requested backend is available")

    with tempfile.TemporaryDirectory(prefix="diffpose-bench-") as tmp:
        tmp = Path(tmp)
        if args.weights_dir is None:
            from diffpose_ros.lifter.model_io import init_bundle

            weights_dir = tmp / "bundle"
            init_bundle(weights_dir, model="temporal" if args.temporal else "frame",
                        window=args.window, seed=args.seed)
            weights_label = "freshly initialised bundle (timing only)"
        else:
            weights_dir = args.weights_dir
            weights_label = str(weights_dir)
        load1 = os.getloadavg()
        rows = []
        model_kind = None
        bar = tqdm(total=len(args.steps) * len(args.hyps) * len(chosen) * len(args.threads),
                   desc="bench", unit="cell")
        for steps in args.steps:
            sampler = build_sampler(weights_dir, steps=steps)
            model_kind = f"temporal (T={sampler.window})" if sampler.temporal else "frame"
            onnx_path = None
            if any(n.startswith(("onnxruntime", "tensorrt")) for n in chosen):
                # exports go to the temp folder: a grid of test bundles has no place in the cache
                onnx_path = load_or_export(weights_dir, steps, max_people=args.max_people,
                                           path=tmp / f"sampler_s{steps}.onnx")
            for name in chosen:
                for threads in args.threads:
                    backend = make(name, sampler, onnx_path, args, threads)
                    for n_hyp in args.hyps:
                        inputs = {p: example_inputs(sampler, p, seed=args.seed + p, n_hyp=n_hyp)
                                  for p in args.people}
                        for people, (med, p90, mean) in time_backend(backend, inputs, args.runs,
                                                                     args.warmup).items():
                            rows.append({"backend": name, "device": backend.device,
                                         "threads": threads, "steps": steps, "n_hyp": n_hyp,
                                         "people": people, "median_ms": round(med, 3),
                                         "p90_ms": round(p90, 3), "mean_ms": round(mean, 3),
                                         "runs": args.runs})
                        bar.update(1)
                    del backend
        bar.close()
        load2 = os.getloadavg()
        weights_hash = weights_sha256(weights_dir)

    import onnxruntime

    summary = {
        "tool": "diffpose-bench-sampler",
        "model": model_kind,
        "weights": weights_label,
        "weights_sha256": weights_hash,
        "threads": args.threads,
        "runs": args.runs,
        "warmup": args.warmup,
        "frame": "one backend.run() on all people of a frame (checks and copies included)",
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                    "load_avg_1min_start_end": [round(load1[0], 2), round(load2[0], 2)]},
        "skipped": skipped,
        "results": rows,
    }
    print(f"\n{args.runs} runs after {args.warmup} warm-up, "
          f"{model_kind} model, load average {load1[0]:.1f} -> {load2[0]:.1f}")
    print(f"{'backend':<22}{'threads':>8}{'K':>4}{'N':>4}{'P':>3}{'median ms':>11}{'p90 ms':>9}")
    for r in rows:
        print(f"{r['backend'] + '/' + r['device']:<22}{r['threads']:>8}{r['steps']:>4}"
              f"{r['n_hyp']:>4}{r['people']:>3}{r['median_ms']:>11.2f}{r['p90_ms']:>9.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=str(args.out.parent), prefix=args.out.name + ".",
                                        suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(summary, fh, indent=1)
            fh.write("\n")
        os.replace(tmp_name, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
