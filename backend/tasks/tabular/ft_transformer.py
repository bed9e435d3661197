"""The `ft-transformer` template (Gorishniy et al. 2021, "Revisiting Deep Learning Models for Tabular Data").

Every column becomes one token of width d: a number x_j as x_j * W_j + b_j, a category as its
embedding + b_j. A learned [CLS] token is appended; pre-norm Transformer layers mix the tokens; the
head reads the [CLS] token (LayerNorm, ReLU, Linear), as in the paper. As in the paper, the first
layer skips its attention LayerNorm (the tokenizer's output is already well scaled).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from backend.tasks.tabular.config import FtTransformerTemplate


class FeatureTokenizer(nn.Module):
    """[B, N] numbers and [B, C] codes -> [B, N + C, d] tokens."""

    def __init__(self, numeric_width: int, cardinalities: list[int], d: int):
        super().__init__()
        bound = 1 / math.sqrt(d)   # the paper's uniform initialisation
        self.numeric_weight = nn.Parameter(torch.empty(numeric_width, d).uniform_(-bound, bound))
        self.numeric_bias = nn.Parameter(torch.empty(numeric_width, d).uniform_(-bound, bound))
        # One table for all categorical columns; offsets shift each column's codes into its own rows.
        self.register_buffer("offsets", torch.tensor([0] + list(cardinalities[:-1]), dtype=torch.long).cumsum(0)
                             if cardinalities else torch.zeros(0, dtype=torch.long), persistent=False)
        self.category_embedding = nn.Embedding(max(1, sum(cardinalities)), d)
        nn.init.uniform_(self.category_embedding.weight, -bound, bound)
        self.category_bias = nn.Parameter(torch.empty(len(cardinalities), d).uniform_(-bound, bound))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        tokens = numeric.unsqueeze(-1) * self.numeric_weight + self.numeric_bias        # [B, N, d]
        if categorical.shape[1]:
            categories = self.category_embedding(categorical + self.offsets) + self.category_bias  # [B, C, d]
            tokens = torch.cat([tokens, categories], dim=1)
        return tokens


class ReGlu(nn.Module):
    """ReGLU feed-forward: Linear to 2h, relu(a) * b, Linear back to d."""

    def __init__(self, d: int, hidden: int, dropout: float):
        super().__init__()
        self.up = nn.Linear(d, 2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.down = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.up(x).chunk(2, dim=-1)
        return self.down(self.dropout(torch.relu(a) * b))


class Layer(nn.Module):
    """Pre-norm Transformer layer: x + attention(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, config: FtTransformerTemplate, first: bool):
        super().__init__()
        d = config.token_size
        self.attention_norm = nn.Identity() if first else nn.LayerNorm(d)
        self.attention = nn.MultiheadAttention(d, config.num_heads, dropout=config.attention_dropout, batch_first=True)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = ReGlu(d, max(1, round(config.ffn_factor * d)), config.ffn_dropout)
        self.residual_dropout = nn.Dropout(config.residual_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.attention_norm(x)
        x = x + self.residual_dropout(self.attention(h, h, h, need_weights=False)[0])
        return x + self.residual_dropout(self.ffn(self.ffn_norm(x)))


class FtTransformer(nn.Module):
    """Tokenizer -> [CLS] appended -> Transformer layers -> head on [CLS] -> [B, out_features]."""

    def __init__(self, config: FtTransformerTemplate, numeric_width: int, cardinalities: list[int],
                 out_features: int):
        super().__init__()
        d = config.token_size
        self.tokenizer = FeatureTokenizer(numeric_width, cardinalities, d)
        self.cls = nn.Parameter(torch.empty(d).uniform_(-1 / math.sqrt(d), 1 / math.sqrt(d)))
        self.layers = nn.ModuleList(Layer(config, first=i == 0) for i in range(config.num_layers))
        self.head = nn.Sequential(nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, out_features))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        tokens = self.tokenizer(numeric, categorical)                                   # [B, T, d]
        x = torch.cat([tokens, self.cls.expand(len(tokens), 1, -1)], dim=1)             # [B, T+1, d]
        for layer in self.layers:
            x = layer(x)
        return self.head(x[:, -1])
