"""Time one training iteration of the shipped frame model's encoder and denoiser with the
gradient in one pass per batch against chunks (training.fit's chunk), on real draws of the
bundle's training data, in alternating rounds on the same machine. Prints ms per iteration.

    .venv/bin/python scripts/bench_training_chunks.py [--iters 20] [--rounds 3] [--chunk 256]
"""
import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from diffpose_ros.lifter import training as T
from diffpose_ros.lifter.model_io import load_bundle
from diffpose_ros.paths import WEIGHTS_DIR
from diffpose_ros.tools import common


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=WEIGHTS_DIR / "frame")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=T.CHUNK)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    b = load_bundle(args.weights)
    cfg = common.bundle_data_config(b)
    bank = common.load_bank(cfg, progress=False)
    gen = common.generator(bank, common.splits_for(bank, cfg)["train"], b.window, cfg)
    times = {(stage, c): [] for stage in ("encoder", "denoiser") for c in (None, args.chunk)}
    quiet = dict(validate=None, eval_every=10 ** 9, log=lambda m: None)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for chunk in ((None, args.chunk) if r % 2 == 0 else (args.chunk, None)):
                t0 = time.time()
                T.fit(copy.deepcopy(b.encoder), T.regressor_loss, gen.sample, args.iters, args.batch, 2e-3,
                      Path(tmp) / "e.pt", False, 0, desc="encoder", chunk=chunk, **quiet)
                times["encoder", chunk].append((time.time() - t0) / args.iters)
                den = copy.copy(b)
                den.denoiser = copy.deepcopy(b.denoiser)
                t0 = time.time()
                T.fit(den.denoiser, T.DenoiserLoss(den), gen.sample, args.iters, args.batch, 2e-3,
                      Path(tmp) / "d.pt", False, 0, desc="denoiser", chunk=chunk, **quiet)
                times["denoiser", chunk].append((time.time() - t0) / args.iters)
    for stage in ("encoder", "denoiser"):
        whole, part = (np.array(times[stage, c]) * 1000 for c in (None, args.chunk))
        print(f"{stage}: one pass {np.median(whole):.0f} ms/iteration, chunks of {args.chunk} "
              f"{np.median(part):.0f} ms ({np.median(part) / np.median(whole):.2f}x); rounds "
              f"{whole.round().tolist()} vs {part.round().tolist()}")


if __name__ == "__main__":
    main()
