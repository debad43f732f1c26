"""Neural collaborative filtering: NeuMF (He et al. 2017), GMF and MLP towers fused by one output layer.

Training (PyTorch) uses binary cross-entropy on each observed pair and ``negatives`` uniformly
sampled unobserved items per pair, redrawn every epoch, as in the paper (without its optional
GMF/MLP pre-training). Scoring is plain numpy, so a saved model loads and serves without torch;
the first MLP layer is split into a user part and an item part, so scoring all items of a user
costs one broadcast add instead of a concatenation per pair.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from fusionrec.data.dataset import Dataset
from fusionrec.models._sampling import NegativeSampler
from fusionrec.models._validation import ValidationFitMixin, run_epochs
from fusionrec.models.base import ModelConfig, Recommender

logger = logging.getLogger("fusionrec.models.neural")

_SCORE_CHUNK_VALUES = 1 << 24  # hidden activations held at once while scoring (64 MiB float32)


class NeuMFConfig(ModelConfig):
    embedding_dim: int = Field(8, ge=1)  # GMF factors (the paper's "predictive factors")
    # MLP tower widths; the first is the concatenated user+item embedding width (paper: 64,32,16,8)
    mlp_layers: list[int] = Field(default_factory=lambda: [64, 32, 16, 8])
    negatives: int = Field(4, ge=1)  # sampled negatives per observed pair
    learning_rate: float = Field(1e-3, gt=0)
    l2: float = Field(0.0, ge=0)  # Adam weight decay
    batch_size: int = Field(1024, ge=1)
    epochs: int = Field(50, ge=1)
    max_seconds: float | None = Field(None, gt=0)  # training time budget (evaluation excluded)
    eval_every: int = Field(1, ge=1)
    patience: int = Field(3, ge=1)
    validation_k: int = Field(20, ge=1)
    validation_users: int | None = Field(10_000, ge=1)
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
    n_threads: int | None = Field(None, ge=1)

    @field_validator("mlp_layers")
    @classmethod
    def _even_first_layer(cls, layers: list[int]) -> list[int]:
        if not layers or any(width < 1 for width in layers):
            raise ValueError("mlp_layers needs at least one positive width")
        if layers[0] % 2:
            raise ValueError(f"mlp_layers[0]={layers[0]} must be even: it is user + item embedding width")
        return layers


class NeuMF(ValidationFitMixin, Recommender):
    """NeuMF: sigmoid(h . [p_u * q_i ; MLP([p'_u ; q'_i])]); scores are the logits.

    ``fit(dataset, validation=...)`` stops early on the validation Recall@k (= HR@k for one item).
    """

    name = "neumf"
    Config = NeuMFConfig
    config: NeuMFConfig
    stops_early = True

    def _fit(self, dataset: Dataset) -> None:
        from fusionrec.models._torch import torch_threads

        with torch_threads(self.config.n_threads):
            self._train(dataset)

    def _train(self, dataset: Dataset) -> None:
        from fusionrec.models._torch import require_torch, resolve_device, seeded_generator

        torch = require_torch()
        cfg = self.config
        device = resolve_device(cfg.device)
        seeded_generator(cfg.seed, device)
        rng = np.random.default_rng(cfg.seed)
        matrix = dataset.matrix(binary=True)
        n_users, n_items = matrix.shape
        network = _build_network(torch, n_users, n_items, cfg).to(device)
        optimiser = torch.optim.Adam(network.parameters(), lr=cfg.learning_rate, weight_decay=cfg.l2)
        users_pos, items_pos = matrix.nonzero()
        sampler = NegativeSampler(matrix)

        def train_epoch() -> float:
            users = np.repeat(users_pos, 1 + cfg.negatives)
            items = np.repeat(items_pos, 1 + cfg.negatives).astype(np.int64)
            labels = np.zeros(len(users), dtype=np.float32)
            labels[:: 1 + cfg.negatives] = 1.0
            negative = labels == 0
            items[negative] = sampler.sample(rng, users[negative])
            order = rng.permutation(len(users))
            network.train()
            total, batches = 0.0, 0
            for lo in range(0, len(order), cfg.batch_size):
                idx = order[lo : lo + cfg.batch_size]
                u = torch.from_numpy(users[idx].astype(np.int64)).to(device)
                i = torch.from_numpy(items[idx]).to(device)
                y = torch.from_numpy(labels[idx]).to(device)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(network(u, i), y)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
                batches += 1
            return total / max(batches, 1)

        def publish() -> dict[str, np.ndarray]:
            self._publish(network)
            return self._weights()

        run_epochs(self, cfg, self._validation, train_epoch, publish, log=logger)

    def _weights(self) -> dict[str, np.ndarray]:
        return {key: value for key, value in vars(self).items() if key.startswith(("gmf_", "mlp_", "out_"))}

    def _publish(self, network: Any) -> None:
        """Copy the network's weights into numpy attributes (the saved, torch-free state)."""
        from fusionrec.models._torch import to_numpy

        half = self.config.mlp_layers[0] // 2
        self.gmf_user_ = to_numpy(network.gmf_user.weight)
        self.gmf_item_ = to_numpy(network.gmf_item.weight)
        self.mlp_user_ = to_numpy(network.mlp_user.weight)
        self.mlp_item_ = to_numpy(network.mlp_item.weight)
        for index, layer in enumerate(network.mlp):
            weight = to_numpy(layer.weight).T  # [in, out]
            if index == 0:  # split the concatenation: [p'_u ; q'_i] W = p'_u W_u + q'_i W_i
                self.mlp_first_user_, self.mlp_first_item_ = weight[:half], weight[half:]
            else:
                setattr(self, f"mlp_w{index}_", weight)
            setattr(self, f"mlp_b{index}_", to_numpy(layer.bias))
        output = to_numpy(network.output.weight).ravel()
        self.out_gmf_ = output[: self.config.embedding_dim]
        self.out_mlp_ = output[self.config.embedding_dim :]
        self.out_bias_ = to_numpy(network.output.bias)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        n_linear = max(len(self.config.mlp_layers) - 1, 1)
        gmf = (self.gmf_user_[users] * self.out_gmf_) @ self.gmf_item_.T  # h_g . (p_u * q_i)
        user_part = self.mlp_user_[users] @ self.mlp_first_user_ + self.mlp_b0_
        item_part = self.mlp_item_ @ self.mlp_first_item_
        scores = np.empty((len(users), self.n_items_), dtype=np.float32)
        width = item_part.shape[1]
        chunk = max(1, _SCORE_CHUNK_VALUES // max(self.n_items_ * width, 1))
        for lo in range(0, len(users), chunk):
            hidden = np.maximum(user_part[lo : lo + chunk, None, :] + item_part[None, :, :], 0.0)
            hidden = hidden.reshape(-1, width)
            for index in range(1, n_linear):
                weight, bias = getattr(self, f"mlp_w{index}_"), getattr(self, f"mlp_b{index}_")
                hidden = np.maximum(hidden @ weight + bias, 0.0)
            scores[lo : lo + chunk] = (hidden @ self.out_mlp_).reshape(-1, self.n_items_)
        return (scores + gmf + self.out_bias_[0]).astype(np.float32)


def _build_network(torch: Any, n_users: int, n_items: int, cfg: NeuMFConfig) -> Any:
    """The NeuMF torch module, initialised as in the paper (N(0, 0.01) embeddings)."""
    nn = torch.nn
    half = cfg.mlp_layers[0] // 2

    class _NeuMF(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gmf_user = nn.Embedding(n_users, cfg.embedding_dim)
            self.gmf_item = nn.Embedding(n_items, cfg.embedding_dim)
            self.mlp_user = nn.Embedding(n_users, half)
            self.mlp_item = nn.Embedding(n_items, half)
            widths = cfg.mlp_layers
            # the first layer maps the concatenation to widths[1] (or keeps its width if it is the only one)
            outs = widths[1:] or [widths[0]]
            ins = [widths[0], *outs[:-1]]
            self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(ins, outs, strict=True))
            self.output = nn.Linear(cfg.embedding_dim + outs[-1], 1)
            for embedding in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
                nn.init.normal_(embedding.weight, std=0.01)
            for layer in self.mlp:
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
            nn.init.kaiming_uniform_(self.output.weight, a=1, nonlinearity="sigmoid")
            nn.init.zeros_(self.output.bias)

        def forward(self, users: Any, items: Any) -> Any:
            gmf = self.gmf_user(users) * self.gmf_item(items)
            hidden = torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=1)
            for layer in self.mlp:
                hidden = torch.relu(layer(hidden))
            return self.output(torch.cat([gmf, hidden], dim=1)).squeeze(1)

    return _NeuMF()
