"""Martinez et al. 2017 ("A simple yet effective baseline for 3d human pose estimation") residual
MLP: Linear(in, 1024) -> 2 residual blocks of [Linear 1024, BatchNorm, ReLU, Dropout] x 2 -> Linear
to 16 * 3 root-relative joints. Same inputs (encoder.normalise_2d features, flattened) and the
same noisy training data as DiffPose, so the comparison isolates the model.
Weights are stored in float16 (halves the file; the error change is far below 0.1 mm).
"""
import json
from pathlib import Path

import torch
from torch import nn

from ..skeleton import NUM_JOINTS
from .encoder import N_IN, normalise_2d
from .model_io import _atomic_write, save_json


class _ResBlock(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x):
        return x + self.net(x)


class MartinezBaseline(nn.Module):
    def __init__(self, hidden=1024, blocks=2, dropout=0.5):
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(NUM_JOINTS * N_IN, hidden), nn.BatchNorm1d(hidden),
                                 nn.ReLU(), nn.Dropout(dropout))
        self.blocks = nn.Sequential(*[_ResBlock(hidden, dropout) for _ in range(blocks)])
        self.out = nn.Linear(hidden, (NUM_JOINTS - 1) * 3)

    def forward(self, kp):  # (B, 17, 3) -> (B, 17, 3) root-relative metres
        feats, _ = normalise_2d(kp)
        y = self.out(self.blocks(self.inp(feats.reshape(kp.shape[0], -1))))
        y = y.reshape(-1, NUM_JOINTS - 1, 3)
        return torch.cat([torch.zeros_like(y[:, :1]), y], dim=1)


def save_baseline(model: MartinezBaseline, cfg: dict, out_dir):
    out = Path(out_dir)
    save_json({"format": "diffpose_ros-lifter", "version": 1, "model": "baseline", **cfg}, out / "config.json")
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    _atomic_write(out / "model.pt", lambda tmp: torch.save({"baseline": state}, tmp))


def load_baseline(weights_dir) -> MartinezBaseline:
    d = Path(weights_dir)
    cfg = json.loads((d / "config.json").read_text())
    if cfg.get("model") != "baseline":
        raise ValueError(f"{d} is not a baseline bundle (model = {cfg.get('model')!r})")
    m = MartinezBaseline(cfg.get("hidden", 1024), cfg.get("blocks", 2), cfg.get("dropout", 0.5))
    state = torch.load(d / "model.pt", map_location="cpu", weights_only=True)["baseline"]
    m.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return m.eval()
