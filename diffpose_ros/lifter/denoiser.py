"""Denoiser g(s_k, f_ST, f_D^k) -> s_0 estimate (x0-prediction, normalised state units).

Per joint input: the noisy normalised state s_k (3), the encoder estimate mu_enc (3, metres) and
log of the normalisation scale sigma (3), so that g knows which geometry a state corresponds to.
Conditioning: at EVERY graph block, [f_ST (projected), step embedding f_D^k] modulates the features
(FiLM). The public code ignores f_ST; the paper conditions each step on it.
"""
import torch
from torch import nn

from .graph import ChebConv, GraphBlock, sinusoidal_table


class Denoiser(nn.Module):
    def __init__(self, context_dim=96, hidden=96, layers=3, heads=4, cheb_k=3, dropout=0.0,
                 n_steps=50, step_dim=64, **_):
        super().__init__()
        self.register_buffer("step_table", sinusoidal_table(n_steps, step_dim))
        self.step_mlp = nn.Sequential(nn.Linear(step_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.ctx = nn.Linear(context_dim, hidden)
        self.cond_act = nn.SiLU()
        self.inp = ChebConv(9, hidden, cheb_k)
        self.blocks = nn.ModuleList([GraphBlock(hidden, heads, cheb_k, hidden, dropout)
                                     for _ in range(layers)])
        self.ln = nn.LayerNorm(hidden)
        self.out = ChebConv(hidden, 3, cheb_k)

    def step_embedding(self, k):
        """k: python int (unrolled sampler: a constant) or LongTensor (B,) (training)."""
        return self.step_mlp(self.step_table[k])

    def forward(self, s_k, k, feat, mu, sigma):
        """s_k (B,17,3) normalised state; k int or (B,); feat (B,17,C); mu, sigma (B,17,3)."""
        temb = self.step_embedding(k)
        if temb.dim() == 1:
            temb = temb.unsqueeze(0)
        cond = self.cond_act(self.ctx(feat) + temb.unsqueeze(1))  # (B, 17, H)
        h = self.inp(torch.cat([s_k, mu, torch.log(sigma)], dim=-1))
        for blk in self.blocks:
            h = blk(h, cond)
        return self.out(self.ln(h))
