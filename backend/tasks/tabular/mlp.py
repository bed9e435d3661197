"""The `mlp` template: category embeddings next to standardised numbers, then dense blocks and a head.

Inputs come from preprocessing.EncodedRows: `numeric` [B, N] (standardised values, then 0/1
missing indicators) and `categorical` [B, C] (codes, 0 = missing, 1 = unknown).
"""

from __future__ import annotations

import torch
from torch import nn

from backend.tasks.tabular.config import MlpTemplate


def embedding_size(cardinality: int, largest: int) -> int:
    """fastai's rule of thumb: round(1.6 * k^0.56) dimensions for k values, capped."""
    return max(1, min(largest, round(1.6 * cardinality ** 0.56)))


class TabularMlp(nn.Module):
    """Embeddings + [Linear, ReLU, Dropout] x num_layers + a linear head (logits or one value)."""

    def __init__(self, config: MlpTemplate, numeric_width: int, cardinalities: list[int], out_features: int):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(k, embedding_size(k, config.max_embedding_dim))
                                        for k in cardinalities)
        width = numeric_width + sum(e.embedding_dim for e in self.embeddings)
        layers: list[nn.Module] = []
        for _ in range(config.num_layers):
            layers += [nn.Linear(width, config.hidden_size), nn.ReLU(), nn.Dropout(config.dropout)]
            width = config.hidden_size
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """[B, N] floats and [B, C] codes -> [B, out_features]."""
        parts = [numeric] + [embed(categorical[:, i]) for i, embed in enumerate(self.embeddings)]
        return self.head(self.blocks(torch.cat(parts, dim=1)))
