"""Denoiser g(s_k, f_ST, f_D^k) -> s_0 estimate (x0-prediction, normalised state units).

Per joint input channels:
  * s_k (3): the noisy normalised state;
  * mu_c (3): the mean of the mixture kernel this hypothesis was drawn from (the DDIM step moves
    the state relative to it, so g must know it);
  * mu_enc (3, metres) and log sigma (3): which geometry a state corresponds to;
  * the 2D evidence (5: the encoder's normalised keypoint features, encoder.normalise_2d): g can
    check a hypothesis against the very keypoints it must explain, instead of only seeing the
    encoder's summary of them.
The last two can be switched off (config "denoiser": {"keypoints_2d": false, "kernel": false}) for
the ablation; their channels are then not built at all.
Conditioning: at EVERY graph block, [f_ST (projected), step embedding f_D^k] modulates the features
(FiLM). The public code ignores f_ST; the paper conditions each step on it.
"""
import torch
from torch import nn

from .encoder import N_IN
from .graph import ChebConv, GraphBlock, sinusoidal_table



class Denoiser(nn.Module):
    def __init__(self, context_dim=96, hidden=96, layers=3, heads=4, cheb_k=3, dropout=0.0,
                 n_steps=50, step_dim=64, keypoints_2d=True, kernel=True, **_):
        super().__init__()
        self.use_2d, self.use_kernel = bool(keypoints_2d), bool(kernel)
        n_in = 9 + (N_IN if self.use_2d else 0) + (3 if self.use_kernel else 0)
        self.register_buffer("step_table", sinusoidal_table(n_steps, step_dim))
        self.step_mlp = nn.Sequential(nn.Linear(step_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.ctx = nn.Linear(context_dim, hidden)
        self.cond_act = nn.SiLU()
        self.inp = ChebConv(n_in, hidden, cheb_k)
        self.blocks = nn.ModuleList([GraphBlock(hidden, heads, cheb_k, hidden, dropout)
                                     for _ in range(layers)])
        self.ln = nn.LayerNorm(hidden)
        self.out = ChebConv(hidden, 3, cheb_k)

    def step_embedding(self, k):
        """k: python int (unrolled sampler: a constant) or LongTensor (B,) (training)."""
        return self.step_mlp(self.step_table[k])

    def forward(self, s_k, k, feat, mu, sigma, feats_2d, mu_c):
        """s_k, mu_c (B,17,3) normalised; k int or (B,); feat (B,17,C); mu, sigma (B,17,3);
        feats_2d (B,17,5)."""
        temb = self.step_embedding(k)
        if temb.dim() == 1:
            temb = temb.unsqueeze(0)
        cond = self.cond_act(self.ctx(feat) + temb.unsqueeze(1))  # (B, 17, H)
        parts = [s_k, mu, torch.log(sigma)]
        if self.use_kernel:
            parts.append(mu_c)
        if self.use_2d:
            parts.append(feats_2d)
        h = self.inp(torch.cat(parts, dim=-1))
        for blk in self.blocks:
            h = blk(h, cond)
        return self.out(self.ln(h))
