"""diffpose-export-sampler: export the DiffPose sampler graph for K steps (every N) to the cache.

The graph goes to <cache>/samplers/sampler_s{K}_<key>.onnx (the user cache: $DIFFPOSE_CACHE,
$XDG_CACHE_HOME/diffpose_ros or ~/.cache/diffpose_ros), the file the node and diffpose-lift
use; --out writes elsewhere. Idempotent: an existing export is kept when its metadata matches
the current weights, code, steps, opset and versions (use --force to export anyway). The
number of hypotheses is a dynamic axis, so one export serves every N. Prints a JSON summary
(path, sha256, ops, metadata).
"""
import argparse
import hashlib
import json
import logging
from pathlib import Path

from diffpose_ros.backends.export import (DEFAULT_OPSET, TENSORRT_85_OPS, graph_op_types,
                                          load_or_export, read_metadata)
from diffpose_ros.paths import lifter_bundle


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-dir", type=lifter_bundle, default="",
                        help="lifter bundle: frame or temporal (the bundled ones) or a folder "
                             "(config.json, model.pt, gmm.npz, ...); default frame")
    parser.add_argument("--steps", type=int, default=5, help="DDIM steps K (default 5)")
    parser.add_argument("--max-people", type=int, default=10,
                        help="largest batch checked against PyTorch after export (default 10)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET}: TensorRT 8.5 reads <= 17)")
    parser.add_argument("--cache-dir", type=Path, help="cache folder (default: the user cache)")
    parser.add_argument("--out", type=Path, help="ONNX file (default: in the cache)")
    parser.add_argument("--force", action="store_true", help="export even if up to date")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    out = load_or_export(args.weights_dir, args.steps, max_people=args.max_people,
                         opset=args.opset, path=args.out, cache_dir=args.cache_dir,
                         force=args.force)
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
