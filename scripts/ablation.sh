#!/usr/bin/env bash
# The training-time half of the DiffPose ablation (issue 13), on a trained leave-out-v1 frame
# bundle: denoiser variants that share its frozen encoder, each trained and calibrated the same
# way, then one diffpose-evaluate run with the sampling-time ablation (--ablation) and the
# variants side by side on the protocol rows. "control" retrains the shipped configuration's
# denoiser with the same schedule as the variants, so that they differ from it in one thing only.
#   bash scripts/ablation.sh FRAME_DIR BASELINE_DIR OUT_DIR [DENOISER_ITERS]
# ABLATION_HK=0 skips the H_K-from-training-residuals variant (it needs its own H_K, GMM and
# denoiser: the longest), ABLATION_HK=only runs that variant alone; ABLATION_EVAL_ARGS replaces the extra diffpose-evaluate arguments (default --ablation, the
# sampling-time rows; e.g. "--scales 1.0" for the variants alone on the unscaled rows).
set -euo pipefail
cd "$(dirname "$0")/.."
frame=$1; baseline=$2; out=$3; iters=${4:-1500}
py=.venv/bin/python
mkdir -p "$out"
variant() {  # name, config edit (python on dict c), extra train flags
  local name=$1 edit=$2; shift 2
  rm -rf "$out/$name"; cp -r "$frame" "$out/$name"
  $py - "$out/$name/config.json" "$edit" <<'PY'
import json, sys
from pathlib import Path
import torch
p, edit = Path(sys.argv[1]), sys.argv[2]
c = json.load(open(p)); exec(edit); json.dump(c, open(p, "w"), indent=2)
state = torch.load(p.parent / "model.pt", weights_only=True)
state.pop("denoiser", None)        # the variant trains its own denoiser from scratch
torch.save(state, p.parent / "model.pt")
PY
  for stage in "$@"; do
    $py -m diffpose_ros.tools.train --stage "$stage" --out "$out/$name" --denoiser-iters "$iters" \
      --calibrate-steps 5 --calibrate-n 5 --ckpt-dir "$out/ck_$name" --threads 1
  done
}
variants=()
if [ "${ABLATION_HK:-1}" != only ]; then
variant control 'pass' denoiser calibrate &
variant no_2d_input 'c["denoiser"]["keypoints_2d"] = False' denoiser calibrate &
variant no_kernel_input 'c["denoiser"]["kernel"] = False' denoiser calibrate &
wait
variants=("control (same schedule)=$out/control" "no 2D input=$out/no_2d_input" "no kernel input=$out/no_kernel_input")
fi
if [ "${ABLATION_HK:-1}" != 0 ]; then
# H_K and the GMM from the encoder's residuals on its own training clips (in-sample) instead of
# held-out clips; the denoiser is then trained on that H_K
rm -rf "$out/hk_on_train"; cp -r "$frame" "$out/hk_on_train"
$py -m diffpose_ros.tools.train --stage hk --hk-on-train --out "$out/hk_on_train" --threads 2
$py -m diffpose_ros.tools.train --stage denoiser --out "$out/hk_on_train" --denoiser-iters "$iters" \
  --ckpt-dir "$out/ck_hk_on_train" --threads 2
$py -m diffpose_ros.tools.train --stage calibrate --out "$out/hk_on_train" --calibrate-steps 5 --calibrate-n 5 --threads 2
variants+=("H_K from in-sample residuals=$out/hk_on_train")
fi
# shellcheck disable=SC2086
$py -m diffpose_ros.tools.evaluate --weights "$frame" --baseline "$baseline" --max-samples 2000 \
  --variant "${variants[@]}" ${ABLATION_EVAL_ARGS---ablation} \
  --out "$out/ablation.json" --table "$out/ablation.md" --plot none
