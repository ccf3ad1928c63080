"""Graph building blocks shared by the context encoder phi_ST and the denoiser g.

GraFormer-style trunk: Chebyshev graph convolutions over the H36M skeleton (local, bone-wise
mixing) interleaved with multi-head self-attention over the 17 joints (global mixing).
Everything here uses only matmul / softmax / layer-norm / linear ops so that the sampler exports
to ONNX and TensorRT without custom operators.
"""
import math

import numpy as np
import torch
from torch import nn

from ..skeleton import NUM_JOINTS, h36m_adjacency


def scaled_laplacian(adjacency=None) -> np.ndarray:
    """L~ = 2 L / lambda_max - I with L = I - D^-1/2 (A + I) D^-1/2 (symmetric, with self-loops).

    Scaling puts the spectrum in [-1, 1], where Chebyshev polynomials are well conditioned.
    """
    a = np.asarray(h36m_adjacency() if adjacency is None else adjacency, dtype=np.float64)
    a_hat = a + np.eye(len(a))
    d = 1.0 / np.sqrt(a_hat.sum(1))
    lap = np.eye(len(a)) - d[:, None] * a_hat * d[None, :]
    lam_max = float(np.linalg.eigvalsh(lap).max())
    return 2.0 * lap / lam_max - np.eye(len(a))


def chebyshev_basis(k_terms: int, adjacency=None) -> np.ndarray:
    """(K, J, J) stack T_0(L~) = I, T_1 = L~, T_k = 2 L~ T_{k-1} - T_{k-2}."""
    if k_terms < 1:
        raise ValueError(f"cheb_k must be >= 1, got {k_terms}")
    lt = scaled_laplacian(adjacency)
    basis = [np.eye(len(lt)), lt]
    while len(basis) < k_terms:
        basis.append(2.0 * lt @ basis[-1] - basis[-2])
    return np.stack(basis[:k_terms]).astype(np.float32)


class ChebConv(nn.Module):
    """y_i = sum_k sum_j T_k[i, j] x_j W_k + b  over the skeleton graph."""

    def __init__(self, c_in: int, c_out: int, k_terms: int = 3):
        super().__init__()
        self.register_buffer("basis", torch.from_numpy(chebyshev_basis(k_terms)))
        self.k_terms = k_terms
        self.linear = nn.Linear(k_terms * c_in, c_out)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x):  # (B, J, C)
        tx = torch.matmul(self.basis.unsqueeze(0), x.unsqueeze(1))  # (B, K, J, C)
        tx = tx.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], -1)  # (B, J, K*C)
        return self.linear(tx)


class JointAttention(nn.Module):
    """Multi-head self-attention across the joints of one pose (pre-LN, residual outside)."""

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} not divisible by heads {heads}")
        self.heads, self.dk = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):  # (B, J, C)
        b, j, c = x.shape
        qkv = self.qkv(x).reshape(b, j, 3, self.heads, self.dk).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, h, J, dk)
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dk), dim=-1)
        y = torch.matmul(self.drop(att), v).permute(0, 2, 1, 3).reshape(b, j, c)
        return self.out(y)


class GraphBlock(nn.Module):
    """x <- x + Attn(LN x);  x <- x + ChebConv(FiLM(ReLU(ChebConv(LN x)), cond)).

    `cond` (B, J, Cc) or None: the denoiser passes [f_ST, step embedding] here at every layer
    (the public DiffPose code ignores its context; the paper conditions every step on it).
    """

    def __init__(self, dim: int, heads: int = 4, k_terms: int = 3, cond_dim: int = 0,
                 dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.att = JointAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.gc1 = ChebConv(dim, dim, k_terms)
        self.gc2 = ChebConv(dim, dim, k_terms)
        self.drop = nn.Dropout(dropout)
        self.film = nn.Linear(cond_dim, 2 * dim) if cond_dim else None
        if self.film is not None:  # start as identity modulation
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x, cond=None):
        x = x + self.drop(self.att(self.ln1(x)))
        h = torch.relu(self.gc1(self.ln2(x)))
        if self.film is not None:
            gamma, beta = self.film(cond).chunk(2, dim=-1)
            h = h * (1.0 + gamma) + beta
        h = self.gc2(self.drop(h))
        return x + h


def sinusoidal_table(n_steps: int, dim: int) -> torch.Tensor:
    """(n_steps + 1, dim) sinusoidal embeddings of the integer steps 0..n_steps (Transformer/DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / max(half - 1, 1))
    steps = torch.arange(n_steps + 1, dtype=torch.float64)[:, None] * freqs[None]
    return torch.cat([torch.sin(steps), torch.cos(steps)], dim=1).float()


__all__ = ["ChebConv", "JointAttention", "GraphBlock", "chebyshev_basis", "scaled_laplacian",
           "sinusoidal_table", "NUM_JOINTS"]
