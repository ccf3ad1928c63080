"""Context encoder phi_ST: 2D keypoints (x_norm, y_norm, conf) -> per-joint context f_ST and a
first root-relative 3D estimate (camera frame, metres).

Input normalisation (why): normalised camera coordinates of a person shrink with distance, but the
root-relative 3D pose in metres does not. So each frame's 2D pose is centred on its 2D pelvis and
divided by its 2D size s2d (a confidence-weighted RMS distance to the pelvis); the pelvis ray
(x_root, y_root) is kept as an extra channel because the viewing direction changes how a pose
projects (perspective). This makes the lifter independent of the camera's focal length and of the
person's distance.
"""
import torch
from torch import nn

from ..skeleton import NUM_JOINTS, ROOT
from .graph import ChebConv, GraphBlock

N_IN = 5  # per joint: x_rel, y_rel, conf, x_root, y_root
CONF_EPS = 0.05  # every joint keeps a little weight in s2d so all-zero confidences stay finite


def normalise_2d(kp):
    """kp (..., J, 3) = (x_norm, y_norm, conf) -> features (..., J, 5), s2d (..., 1, 1).

    Only elementwise ops and reductions: exportable and batch-size agnostic.
    """
    xy, conf = kp[..., :2], kp[..., 2:3]
    root = xy[..., ROOT:ROOT + 1, :]
    rel = xy - root
    w = conf + CONF_EPS
    s2d = torch.sqrt((w * (rel * rel).sum(-1, keepdim=True)).sum(-2, keepdim=True)
                     / w.sum(-2, keepdim=True) + 1e-8)
    feats = torch.cat([rel / s2d, conf, root.expand_as(rel)], dim=-1)
    return feats, s2d


class _Trunk(nn.Module):
    """Graph/attention trunk + ChebConv head; output root forced to 0 (root-relative)."""

    def __init__(self, hidden, layers, heads, cheb_k, dropout):
        super().__init__()
        self.blocks = nn.ModuleList([GraphBlock(hidden, heads, cheb_k, 0, dropout)
                                     for _ in range(layers)])
        self.ln = nn.LayerNorm(hidden)
        self.head = ChebConv(hidden, 3, cheb_k)

    def forward(self, h):
        for blk in self.blocks:
            h = blk(h)
        feat = self.ln(h)
        pose = self.head(feat)
        pose = pose - pose[:, ROOT:ROOT + 1]
        return feat, pose


class FrameEncoder(nn.Module):
    """phi_ST for single frames: (B, 17, 3) -> f_ST (B, 17, H), pose (B, 17, 3)."""
    temporal = False

    def __init__(self, hidden=96, layers=3, heads=4, cheb_k=3, dropout=0.0, **_):
        super().__init__()
        self.hidden = hidden
        self.inp = ChebConv(N_IN, hidden, cheb_k)
        self.joint_emb = nn.Parameter(torch.zeros(1, NUM_JOINTS, hidden))
        self.trunk = _Trunk(hidden, layers, heads, cheb_k, dropout)

    def forward(self, kp):
        feats, _ = normalise_2d(kp)
        return self.trunk(self.inp(feats) + self.joint_emb)


class TemporalEncoder(nn.Module):
    """Causal phi_ST over the last T frames of one track: (B, T, 17, 3) -> outputs for frame T.

    Temporal part, per joint (weights shared by all joints): a temporal convolution whose kernel
    spans the whole window, evaluated only at the LAST frame, i.e. a linear map of the joint's
    T x 5 input features followed by an MLP. The window holds only past frames, so nothing from
    the future is used. (A dilated kernel-3 stack was 10x slower on CPU, being memory bound, for
    no gain on i.i.d. per-frame detector noise.) Its output is added to the last frame's spatial
    embedding and refined by the same graph/attention trunk as the frame model.
    """
    temporal = True

    def __init__(self, hidden=96, layers=3, heads=4, cheb_k=3, dropout=0.0, window=27,
                 temporal_hidden=64, **_):
        super().__init__()
        if window < 2:
            raise ValueError(f"temporal window must be >= 2, got {window}")
        self.hidden, self.window = hidden, window
        self.inp = ChebConv(N_IN, hidden, cheb_k)
        self.joint_emb = nn.Parameter(torch.zeros(1, NUM_JOINTS, hidden))
        self.t_net = nn.Sequential(
            nn.Linear(window * N_IN, temporal_hidden), nn.ReLU(),
            nn.Linear(temporal_hidden, temporal_hidden), nn.ReLU(),
            nn.Linear(temporal_hidden, hidden))
        self.trunk = _Trunk(hidden, layers, heads, cheb_k, dropout)

    def forward(self, kp):  # (B, T, J, 3)
        b, t, j, _ = kp.shape
        feats, _ = normalise_2d(kp)  # each frame in its own 2D frame of reference
        seq = feats.permute(0, 2, 1, 3).reshape(b, j, t * N_IN)  # (B, J, T*5), oldest first
        h0 = self.inp(feats[:, -1]) + self.joint_emb + self.t_net(seq)
        return self.trunk(h0)


def build_encoder(cfg: dict, temporal: bool, window: int):
    return TemporalEncoder(window=window, **cfg) if temporal else FrameEncoder(**cfg)
