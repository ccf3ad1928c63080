"""diffpose-train: train a lifter bundle on the shared mocap data (train split; val for monitoring).

  diffpose-train --model frame    --out diffpose_ros/weights/frame
  diffpose-train --model temporal --out diffpose_ros/weights/temporal --window 27
  diffpose-train --model baseline --out diffpose_ros/weights/baseline

frame/temporal run three stages (--stage all): encoder pre-training, prior + GMM fit
(same as diffpose-fit-gmm), denoiser training with the encoder frozen. Checkpoints go to
<cache>/checkpoints/<model>/ every epoch; --resume continues from them. Writes
<out>/train_summary.json.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..paths import WEIGHTS_DIR, cache_dir


def parse_args(argv):
    p = argparse.ArgumentParser(prog="diffpose-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["frame", "temporal", "baseline"], default="frame")
    p.add_argument("--stage", choices=["all", "encoder", "gmm", "denoiser"], default="all")
    p.add_argument("--out", type=Path, default=None, help="bundle directory (default diffpose_ros/weights/<model>)")
    p.add_argument("--epochs", type=int, default=8, help="encoder / baseline epochs")
    p.add_argument("--denoiser-epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--stride", type=int, default=3, help="mocap frame stride (3 -> 10 fps sequences)")
    p.add_argument("--window", type=int, default=27, help="temporal window T (past frames incl. current)")
    p.add_argument("--samples-per-epoch", type=int, default=None)
    p.add_argument("--limit-clips", type=int, default=None, help="use only the first N clips per split (tests)")
    p.add_argument("--gmm-components", type=int, default=5)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ckpt-dir", type=Path, default=None)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    from ..lifter import training as T
    out = args.out or WEIGHTS_DIR / args.model
    ckpt_dir = args.ckpt_dir or cache_dir() / "checkpoints" / out.resolve().name
    t_start = time.time()
    log_lines = []

    def log(msg):
        log_lines.append(msg)
        print(msg, flush=True)

    window = args.window if args.model == "temporal" else 1
    train = T.load_split("train", args.stride, args.limit_clips, args.seed)
    val = T.load_split("val", args.stride, args.limit_clips, args.seed)
    log(f"data: train {len(train['inputs'])} samples, val {len(val['inputs'])} samples (stride {args.stride})")
    tr_in, va_in = T.Inputs(train, window), T.Inputs(val, window)
    summary = {"command": "diffpose-train " + " ".join(sys.argv[1:] if argv is None else argv),
               "args": {k: str(v) for k, v in vars(args).items()},
               "n_train": int(len(tr_in)), "n_val": int(len(va_in))}

    if args.model == "baseline":
        from ..lifter.baseline import MartinezBaseline, save_baseline
        model = MartinezBaseline()
        hist = T.train_regressor(model, tr_in, train["pose3d"], va_in, val["pose3d"], args.epochs, args.batch,
                                 args.lr, ckpt_dir / "baseline.pt", args.resume, args.seed,
                                 args.samples_per_epoch, log=log, desc="baseline")
        save_baseline(model, {"hidden": 1024, "blocks": 2, "dropout": 0.5, "stride": args.stride}, out)
        summary["baseline_history"] = hist
    else:
        from ..lifter.model_io import build_modules, load_bundle, make_config, save_bundle, Bundle
        if args.stage in ("all", "encoder"):
            cfg = make_config(args.model, window, encoder={"hidden": args.hidden, "layers": args.layers},
                              denoiser={"hidden": args.hidden, "layers": args.layers})
            cfg["data"] = {"stride": args.stride, "fps": 30.0 / args.stride}
            enc, prior, den = build_modules(cfg)
            bundle = Bundle(cfg, enc, prior, den, None, {})
            summary["encoder_history"] = T.train_regressor(
                enc, tr_in, train["pose3d"], va_in, val["pose3d"], args.epochs, args.batch, args.lr,
                ckpt_dir / "encoder.pt", args.resume, args.seed, args.samples_per_epoch, log=log)
            bundle.denoiser = None  # not trained yet: a half-built bundle must not be sampled
            save_bundle(bundle, out)
            bundle.denoiser = den
        else:
            bundle = load_bundle(out)
            if bundle.denoiser is None:
                bundle.denoiser = build_modules(bundle.config)[2]
        feat, mu = T.encode(bundle.encoder, tr_in)
        if args.stage in ("all", "gmm"):
            bundle.gmm, rep = T.fit_prior_and_gmm(bundle.prior, train, mu.numpy(), args.gmm_components,
                                                  seed=args.seed, log=log)
            summary["prior"] = rep
            den = bundle.denoiser
            bundle.denoiser = None
            save_bundle(bundle, out)
            bundle.denoiser = den
        if args.stage in ("all", "denoiser"):
            if bundle.gmm is None:
                raise SystemExit("no GMM in the bundle: run the gmm stage (diffpose-fit-gmm) first")
            with torch.no_grad():
                sigma = bundle.prior(torch.from_numpy(train["inputs"]))
            summary["denoiser_history"] = T.train_denoiser(
                bundle, feat, mu, sigma, train["pose3d"], args.denoiser_epochs, args.batch, args.lr,
                ckpt_dir / "denoiser.pt", args.resume, args.seed, args.samples_per_epoch, log=log)
            bundle.calibration = {}  # a new denoiser invalidates any previous calibration
            save_bundle(bundle, out)
    summary["wall_time_s"] = time.time() - t_start
    summary["threads"] = args.threads
    prev = out / "train_summary.json"
    if prev.is_file() and args.stage != "all":  # keep the other stages' records
        old = json.loads(prev.read_text())
        old.update(summary)
        old.setdefault("stage_wall_time_s", {})[args.stage] = summary["wall_time_s"]
        summary = old
    T.write_json(summary, prev)
    log(f"done in {summary['wall_time_s']:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
