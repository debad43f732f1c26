"""SASRec (Kang & McAuley, 2018): causal self-attention over the last ``max_len`` items.

Trained, by default, with full softmax cross-entropy over all items at every position (far better
than the paper's one sampled negative on small catalogues); ``loss="sampled_softmax"`` for large
ones. Output logits reuse the item embeddings (weight tying), as in the paper.
"""

from __future__ import annotations

from pydantic import Field

from fusionrec.models.sequential import SequentialConfig, TorchSequentialRecommender, torch

nn = torch.nn
F = torch.nn.functional


class SASRecConfig(SequentialConfig):
    n_blocks: int = Field(2, ge=1)
    n_heads: int = Field(1, ge=1)
    attention_dropout: float = Field(0.2, ge=0.0, lt=1.0)


class _Block(nn.Module):
    """Pre-norm transformer block: causal multi-head self-attention, then a GELU feed-forward."""

    def __init__(self, dim: int, heads: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding_dim {dim} must be divisible by n_heads {heads}")
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, dim // self.heads).unbind(2)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            is_causal=True,  # right padding + causal mask: real positions never see padding
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        x = x + self.dropout(self.out(attended.transpose(1, 2).reshape(batch, length, dim)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        dim = config.embedding_dim
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_len, dim)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            _Block(dim, config.n_heads, config.dropout, config.attention_dropout)
            for _ in range(config.n_blocks)
        )
        self.norm = nn.LayerNorm(dim)
        self.apply(_init)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.dropout(self.item_embedding(tokens) + self.position_embedding(positions)[None])
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def _init(module: nn.Module) -> None:
    # Small normal init (as RecBole's SASRec): with tied output embeddings it keeps the first
    # logits near uniform, which the full-softmax loss needs to train stably.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


class SASRec(TorchSequentialRecommender):
    """Self-attentive sequential recommendation with full-softmax (or sampled-softmax) training."""

    name = "sasrec"
    Config = SASRecConfig
    config: SASRecConfig

    def _build_network(self, n_items: int) -> SASRecNet:
        return SASRecNet(n_items, self.config)
