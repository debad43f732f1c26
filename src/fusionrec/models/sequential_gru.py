"""GRU4Rec (Hidasi et al., 2016): a GRU over item embeddings predicts the next item.

Shares training and scoring with SASRec (`TorchSequentialRecommender`): cross-entropy over all
items at every position by default, sampled softmax as an option. The GRU state is projected back
to the item-embedding space so output logits reuse the item embeddings.
"""

from __future__ import annotations

from pydantic import Field

from fusionrec.models.sequential import SequentialConfig, TorchSequentialRecommender, torch

nn = torch.nn


class GRU4RecConfig(SequentialConfig):
    hidden_dim: int = Field(128, ge=1)
    n_layers: int = Field(1, ge=1)


class GRU4RecNet(nn.Module):
    def __init__(self, n_items: int, config: GRU4RecConfig) -> None:
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, config.embedding_dim, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.embedding_dim, config.hidden_dim, config.n_layers, batch_first=True)
        self.project = nn.Linear(config.hidden_dim, config.embedding_dim)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        # Right padding: the GRU reads real items first, so padding never changes a real state.
        states, _ = self.gru(self.dropout(self.item_embedding(tokens)))
        return self.project(self.dropout(states))


class GRU4Rec(TorchSequentialRecommender):
    """Session-parallel GRU next-item model, trained with full (or sampled) softmax."""

    name = "gru4rec"
    Config = GRU4RecConfig
    config: GRU4RecConfig

    def _build_network(self, n_items: int) -> GRU4RecNet:
        return GRU4RecNet(n_items, self.config)
