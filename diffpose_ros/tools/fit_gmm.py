"""diffpose-fit-gmm: (re)fit the pose-specific initial distribution H_K of a bundle (the residual
scale sigma(conf) and the residual Gaussian mixture) on the frozen encoder's residuals on the
bundle's validation clips: the `hk` stage of diffpose-train, alone. The denoiser was trained on
the old H_K's forward process: retrain it afterwards (diffpose-train --stage denoiser, then
--stage calibrate).

  diffpose-fit-gmm --weights DIR [--gmm-components 5]
"""
import argparse
import sys

from ..paths import lifter_bundle


def main(argv=None):
    p = argparse.ArgumentParser(prog="diffpose-fit-gmm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=lifter_bundle, default="",
                   help="DiffPose bundle: frame or temporal (the bundled ones) or a folder; default frame")
    p.add_argument("--gmm-components", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    from . import train
    return train.main(["--stage", "hk", "--out", str(args.weights), "--gmm-components", str(args.gmm_components),
                       "--seed", str(args.seed), "--threads", str(args.threads)])


if __name__ == "__main__":
    sys.exit(main())
