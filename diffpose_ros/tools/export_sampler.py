"""diffpose-export-sampler: export the DiffPose sampler to <weights_dir>/sampler_s{K}_n{N}.onnx.

Idempotent: an existing export is kept when its metadata matches the current weights, code and
settings (use --force to export anyway). Prints a JSON summary (path, sha256, ops, metadata).
"""
import argparse
import hashlib
import json
import logging
from pathlib import Path

from diffpose_ros.backends.export import (DEFAULT_OPSET, TENSORRT_85_OPS, default_onnx_path,
                                          export_onnx, graph_op_types, load_or_export,
                                          read_metadata)
from diffpose_ros.paths import WEIGHTS_DIR


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR / "frame",
                        help="lifter bundle folder (config.json, model.pt, gmm.npz, ...); "
                             "default diffpose_ros/weights/frame")
    parser.add_argument("--steps", type=int, default=5, help="DDIM steps K (default 5)")
    parser.add_argument("--n-hyp", type=int, default=5, help="hypotheses N (default 5)")
    parser.add_argument("--max-people", type=int, default=10,
                        help="largest batch checked against PyTorch after export (default 10)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET}: TensorRT 8.5 reads <= 17)")
    parser.add_argument("--out", type=Path, help="ONNX file (default: next to the weights)")
    parser.add_argument("--force", action="store_true", help="export even if up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    out = args.out or default_onnx_path(args.weights_dir, args.steps, args.n_hyp)
    if args.force:
        from diffpose_ros.backends.export import code_sha256
        from diffpose_ros.lifter.sampler import build_sampler

        sampler = build_sampler(args.weights_dir, steps=args.steps, n_hyp=args.n_hyp)
        export_onnx(sampler, out, max_people=args.max_people, opset=args.opset,
                    weights_dir=args.weights_dir, code_hash=code_sha256(build_sampler))
    else:
        out = load_or_export(args.weights_dir, args.steps, args.n_hyp,
                             max_people=args.max_people, opset=args.opset, path=out)
    ops = graph_op_types(out)
    summary = {
        "onnx": str(out),
        "bytes": out.stat().st_size,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "ops": sorted(ops),
        "ops_not_in_tensorrt_8_5_set": sorted(ops - TENSORRT_85_OPS),
        "metadata": read_metadata(out),
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
