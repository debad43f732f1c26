"""The hybrid deep model: an item tower over id + content, an LSTM user tower, a dot-product score.

*Item tower.* An item's vector is its id embedding plus an MLP over ``[id embedding, text CNN over
the item's content tokens, a projection of each named precomputed vector]``. The tokens are
`fusionrec.models.content.item_token_lists`: category path, brand, tags and JSON attributes, then
the title and description words, so the CNN (max-pooled convolutions of widths ``kernel_sizes``)
reads the same content as ``content_tfidf``. Named vectors (``image_embedding``, ...) come from
`fusionrec.data.item_vectors`; an item without one gets a zero projection there.

*User tower.* An LSTM reads the sequence of item vectors; at each position its state and a user
embedding go through a second MLP (plus a linear projection of the state) to the user vector.

*Content profile.* Beside the tower, each item has a unit-length content vector of width
``profile_dim``: the mean of learned embeddings of its tokens (a bag of tokens, as ``content_tfidf``'s
vector but with learned token vectors and weights). The user side scores it with a content query:
a learned multiple of the mean content vector of the history so far (``content_tfidf``'s profile),
a learned multiple of the last item's, and a linear map of the LSTM state (what tends to follow).
The query and the vector are extra columns of the user and item vectors, so this term is one more
part of the same dot product, trained with it; a new item has it in full (no id is needed), and it
is what lets the model place new items by "shares brand and category with this history".

*Fusion and score.* The fusion MLPs end in vectors of one width, and the score of an item is the
dot product of the user vector with the item vector (both with the content-profile columns). A
single MLP over the concatenated pair would have to run once per (user, item) pair; a dot product
scores all items with one matrix product, so training keeps the full-softmax cross-entropy of
SASRec and GRU4Rec (`TorchSequentialRecommender`: windows, early stopping, refit, progress per
epoch, live histories, persistence) and serving scores the whole catalogue at once.

*Cold start.* Items without a training interaction get no id embedding (only content), and they
are left out of the training softmax: they did not exist for the users of the log, so they are not
evidence of dislike, and their content tokens learn only from items people did use. In training
each item loses its id embedding with probability ``id_dropout`` per batch, so the tower learns to
score items from content alone. Scored beside warm items, whose logits carry their id part, a new
item is placed by rank (``new_item_scoring="rank"``): where its content-only logit falls among the
warm items' content-only logits, there it falls among their full logits; where it ties with warm
items of the same content (same tokens, so the same content-only vector), it takes the middle of
the tie (``new_item_ties``). That content-only ranking is trained as such: a second cross-entropy
(weight ``content_loss_weight``) scores the same targets with every item's id off. User token 0
is a learned "unknown user" row: request-time histories (serving, the evaluation protocols that
pass histories) use it, and training hides the user with probability ``user_dropout`` so that
path is trained too.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from fusionrec.data.dataset import Dataset
from fusionrec.data.item_vectors import vector_matrix, vector_names
from fusionrec.models.content import item_token_lists
from fusionrec.models.sequential import SequentialConfig, TorchSequentialRecommender, torch

nn = torch.nn
F = torch.nn.functional

PROFILE_SCALE = 5.0  # initial weight of the history-mean and last-item parts (cosines to logits)


class HybridConfig(SequentialConfig):
    # Larger batches than SASRec's: the item tower runs over the whole catalogue once per batch.
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(2e-3, gt=0.0)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    patience: int = Field(3, ge=1)  # evaluations (every eval_every epochs) without improvement
    hidden_dim: int = Field(128, ge=1)  # LSTM state
    n_layers: int = Field(1, ge=1)
    user_dim: int = Field(32, ge=1)
    token_dim: int = Field(32, ge=1)
    n_filters: int = Field(64, ge=1)  # per kernel size
    kernel_sizes: list[int] = Field(default_factory=lambda: [1, 3])
    max_tokens: int = Field(48, ge=1)  # an item's first tokens read by the CNN (structured ones first)
    min_token_items: int = Field(2, ge=1)  # a token must describe this many items
    max_vocabulary: int = Field(50_000, ge=1)
    item_vectors: list[str] | None = None  # named item vectors to read; None: every one present
    id_dropout: float = Field(0.25, ge=0.0, lt=1.0)
    user_dropout: float = Field(0.5, ge=0.0, le=1.0)
    # Width of the content-profile term (item bag-of-tokens vector against the history's profile,
    # see the module docstring); 0 turns it off (the tower's dot product alone).
    # 128: on amazon-beauty's new items HR@20 0.0730 against 0.0651 with 64 (every test user 0.1126
    # against 0.1065), for about 18 % more CPU a step.
    profile_dim: int = Field(128, ge=0)
    # Scoring of items without training interactions (see `_logits`): "rank" places each among the
    # warm items where its content-only score places it among theirs; "content" takes its
    # content-only logit as it is (beside warm logits that carry their id part).
    new_item_scoring: Literal["rank", "content"] = "rank"
    # "rank" is exact for new items within the warm items' top new_item_rank_depth by content;
    # below, their logits continue with slope 1 (a bound on the cost, the top of a list is read).
    new_item_rank_depth: int = Field(1000, ge=1)
    # A new item whose content-only logit ties with warm items' (same token list, so the same
    # content-only vector) takes the middle of the tie ("mid", the mid-rank of rank statistics) or
    # its bottom ("low", below every warm item of its content; the behaviour before "mid").
    new_item_ties: Literal["mid", "low"] = "mid"
    # Weight of a second cross-entropy in training (full softmax only): the same targets scored
    # with every item's content-only vector, the scores "rank" places new items by; 0: off.
    content_loss_weight: float = Field(1.0, ge=0.0)

    @field_validator("kernel_sizes")
    @classmethod
    def _odd_kernels(cls, sizes: list[int]) -> list[int]:
        if not sizes or any(k < 1 or k % 2 == 0 for k in sizes):
            raise ValueError(f"kernel_sizes must be odd positive widths, got {sizes}")
        return sizes


class HybridNet(nn.Module):
    def __init__(
        self,
        n_items: int,
        n_users: int,
        config: HybridConfig,
        tokens: np.ndarray,
        n_vocabulary: int,
        vectors: list[np.ndarray],
        present: np.ndarray,
        cold: np.ndarray,
    ) -> None:
        super().__init__()
        d = config.embedding_dim
        self.id_dropout = config.id_dropout
        self.item_embedding = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.token_embedding = nn.Embedding(n_vocabulary + 1, config.token_dim, padding_idx=0)
        # A convolution of width k is a Linear over k neighbouring token vectors; written as one
        # matrix product it runs several times faster on the CPU than Conv1d on [items, dim, tokens].
        self.kernel_sizes = list(config.kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Linear(config.token_dim * k, config.n_filters) for k in config.kernel_sizes
        )
        self.vector_projections = nn.ModuleList(nn.Linear(v.shape[1], d) for v in vectors)
        content = config.n_filters * len(config.kernel_sizes) + d * len(vectors)
        self.item_mlp = nn.Sequential(
            nn.Linear(d + content, 2 * d), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(2 * d, d)
        )
        self.user_embedding = nn.Embedding(n_users + 1, config.user_dim)  # row 0: unknown user
        self.lstm = nn.LSTM(d, config.hidden_dim, config.n_layers, batch_first=True)
        self.state_projection = nn.Linear(config.hidden_dim, d)
        self.user_mlp = nn.Sequential(
            nn.Linear(config.hidden_dim + config.user_dim, config.hidden_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_dim, d),
        )
        self.dropout = nn.Dropout(config.dropout)
        # Without any content token there is nothing to profile: the term is left out.
        self.profile_dim = config.profile_dim if n_vocabulary > 0 else 0
        if self.profile_dim:
            self.profile_embedding = nn.EmbeddingBag(
                n_vocabulary + 1, self.profile_dim, mode="mean", padding_idx=0
            )
            self.profile_state = nn.Linear(config.hidden_dim, self.profile_dim)
            # log-scales of the history-mean and last-item parts of the content query
            self.profile_log_scale = nn.Parameter(torch.full((2,), float(np.log(PROFILE_SCALE))))
        self.apply(_init)
        if self.profile_dim:
            # Unit-variance token vectors are nearly orthogonal at the start, so an item's
            # normalised mean starts close to a binary bag-of-tokens cosine (content_tfidf's
            # ranking) and training moves it from there; the 0.02 init would start it from noise
            # that Adam's steps dwarf.
            with torch.no_grad():
                nn.init.normal_(self.profile_embedding.weight, std=1.0)
                self.profile_embedding.weight[0].zero_()
        # Content and masks are inputs, not weights: rebuilt from the model's arrays on load.
        # The CNN runs once per distinct token list (amazon-beauty: 3,120 attribute sets for 12,101
        # items), and items gather their row: same result, a fraction of the work.
        pad = np.zeros((1, tokens.shape[1]), dtype=np.int64)
        distinct, row = np.unique(np.vstack([pad, tokens]), axis=0, return_inverse=True)
        self.register_buffer("tokens", torch.as_tensor(distinct, dtype=torch.long), False)
        self.register_buffer("token_row", torch.as_tensor(row.ravel(), dtype=torch.long), False)
        for i, matrix in enumerate(vectors):
            rows = np.vstack([np.zeros((1, matrix.shape[1]), dtype=np.float32), matrix])
            self.register_buffer(f"vectors_{i}", torch.as_tensor(rows), False)
        has = np.vstack([np.zeros((1, present.shape[1]), dtype=bool), present]).astype(np.float32)
        self.register_buffer("present", torch.as_tensor(has), False)
        keep = np.r_[0.0, (~cold).astype(np.float32)]  # no id for padding and items never used
        self.register_buffer("id_keep", torch.as_tensor(keep, dtype=torch.float32), False)
        real = np.r_[0.0, np.ones(n_items, dtype=np.float32)]
        self.register_buffer("real", torch.as_tensor(real, dtype=torch.float32), False)

    def _text_cnn(self) -> torch.Tensor:
        """Max-pooled convolutions over each distinct token list ``[lists, filters]`` (0 without
        tokens); ``token_row`` gives an item's row."""
        mask = self.tokens > 0
        x = self.token_embedding(self.tokens)  # [N, T, token_dim]; padding rows are zero
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            padded = F.pad(x, (0, 0, k // 2, k // 2))  # "same" width: a window per token
            windows = padded.unfold(1, k, 1).transpose(2, 3).reshape(x.shape[0], x.shape[1], -1)
            h = F.relu(conv(windows)).masked_fill(~mask[:, :, None], float("-inf"))
            pooled.append(h.max(dim=1).values)
        out = torch.cat(pooled, dim=1)
        return torch.where(mask.any(dim=1, keepdim=True), out, torch.zeros_like(out))

    def item_table(self, ids: bool = True) -> torch.Tensor:
        """Every item's vector ``[n_items + 1, d + profile_dim]`` (the tower, then the content-profile
        columns), row 0 (padding) zero; ``ids=False``: content only."""
        return self.item_tables(ids)[0]

    def item_tables(self, ids: bool = True, content_only: bool = False) -> tuple[torch.Tensor, ...]:
        """`item_table`, and with ``content_only`` also every item's content-only vector (no id,
        no id dropout), from the same text CNN pass."""
        keep = self.id_keep if ids else torch.zeros_like(self.id_keep)
        if self.training and self.id_dropout > 0:
            keep = keep * (torch.rand_like(keep) >= self.id_dropout)
        ids = self.item_embedding.weight * keep[:, None]
        # The MLP's first layer over [ids, text, vectors...] is a sum of one linear map per part;
        # the text part runs once per distinct token list and items gather it (the item MLP was
        # about a third of a training step on amazon-beauty's 12,101 items and 3,121 lists).
        first, d = self.item_mlp[0], ids.shape[1]
        text = self._text_cnn()
        at = d + text.shape[1]
        h = F.linear(text, first.weight[:, d:at], first.bias)[self.token_row]
        for i, projection in enumerate(self.vector_projections):
            part = projection(getattr(self, f"vectors_{i}")) * self.present[:, i : i + 1]
            h = h + F.linear(part, first.weight[:, at + i * d : at + (i + 1) * d])
        profile = self._content_profile()[self.token_row] if self.profile_dim else None
        towers = [ids + self.item_mlp[1:](h + F.linear(ids, first.weight[:, :d]))]
        if content_only:
            towers.append(self.item_mlp[1:](h))
        if profile is not None:
            towers = [torch.cat([tower, profile], dim=1) for tower in towers]
        return tuple(tower * self.real[:, None] for tower in towers)

    def _content_profile(self) -> torch.Tensor:
        """Unit-length mean token vector of each distinct token list ``[lists, profile_dim]``
        (0 without tokens): the item side of the content-profile term."""
        return F.normalize(self.profile_embedding(self.tokens), dim=1)

    def encode(self, tokens: torch.Tensor, users: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        d = self.item_embedding.embedding_dim
        # Right padding: the LSTM reads real items first, so padding never changes a real state.
        states, _ = self.lstm(self.dropout(F.embedding(tokens, table[:, :d])))
        states = self.dropout(states)
        user = self.user_embedding(users)[:, None, :].expand(-1, states.shape[1], -1)
        out = self.state_projection(states) + self.user_mlp(torch.cat([states, user], dim=2))
        if not self.profile_dim:
            return out
        # The content query at each position: the history's mean content vector so far (padding
        # rows are zero and not counted), the last item's, and what the state adds.
        content = F.embedding(tokens, table[:, d:])
        seen = (tokens > 0).cumsum(dim=1).clamp_min(1)[:, :, None]
        scale = self.profile_log_scale.exp()
        query = scale[0] * content.cumsum(dim=1) / seen + scale[1] * content + self.profile_state(states)
        return torch.cat([out, query], dim=2)


def _rank_map(
    known: torch.Tensor, known_full: torch.Tensor, query: torch.Tensor, depth: int, ties: str = "mid"
) -> torch.Tensor:
    """Per row, map ``query`` through the monotone map that sends the ``depth`` largest ``known``
    scores, in order, to the ``depth`` largest ``known_full`` scores (linear in between, slope 1
    past either end): ``[B, M]``. Only the top of a ranking is read, and a full sort per row cost
    several times the scoring itself (12,101 items).

    A query equal to several ``known`` scores (items with the same content have the same
    content-only score: amazon-beauty's new items share their token list with 7 warm items at the
    median) takes the mid-rank of that tie, as rank statistics do: its rank among them is unknown,
    and the bottom of the tie (``ties="low"``) places every such new item below all of its twins."""
    depth = min(depth, known.shape[1])
    x = known.topk(depth, dim=1).values.flip(1)  # ascending
    y = known_full.topk(depth, dim=1).values.flip(1)
    x = torch.cat([x[:, :1] - 1.0, x, x[:, -1:] + 1.0], dim=1).contiguous()
    y = torch.cat([y[:, :1] - 1.0, y, y[:, -1:] + 1.0], dim=1)
    query = query.contiguous()
    # The query's fractional position in x: from the first x >= query (left) and from the last
    # x <= query (right); they differ only where the query ties with x, and their mean is the tie's
    # middle. Past the ends the outer segments, of slope 1, extend the map.
    positions = []
    for right in (False, True) if ties == "mid" else (False,):
        hi = torch.searchsorted(x, query, right=right).clamp(1, x.shape[1] - 1)
        x0, x1 = x.gather(1, hi - 1), x.gather(1, hi)
        share = (query - x0) / (x1 - x0).clamp_min(1e-12)
        positions.append(hi - 1 + share)
    position = sum(positions) / len(positions)
    low = position.floor().long().clamp(0, x.shape[1] - 2)
    share = position - low
    y0, y1 = y.gather(1, low), y.gather(1, low + 1)
    return y0 + share * (y1 - y0)


def _init(module: nn.Module) -> None:
    # Small normal init of the embeddings (as SASRec and GRU4Rec): item vectors start near zero, so
    # the first logits are near uniform, which full-softmax training needs to start stably. The
    # Linear layers keep torch's default: with no LayerNorm after them, a 0.02 init there too would
    # make the user vector the product of two tiny factors and learning would stall.
    if isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()


class Hybrid(TorchSequentialRecommender):
    """LSTM over content-aware item vectors + user embedding, fused by MLPs into a dot-product score."""

    name = "hybrid"
    Config = HybridConfig
    config: HybridConfig

    def _fit(self, dataset: Dataset) -> None:
        self._read_content(dataset)
        used = np.bincount(dataset.item_idx[dataset.weight > 0], minlength=dataset.n_items) > 0
        self.cold_items_ = ~used
        super()._fit(dataset)

    def _read_content(self, dataset: Dataset) -> None:
        """Token ids per item (the vocabulary of this fit) and the named item vectors."""
        cfg = self.config
        features = dataset.item_features
        if len(features) != dataset.n_items:
            raise ValueError(f"item_features has {len(features)} rows for {dataset.n_items} items")
        lists = [tokens[: cfg.max_tokens] for tokens in item_token_lists(features)]
        counts = Counter(t for tokens in lists for t in set(tokens))
        kept = [t for t, n in counts.most_common(cfg.max_vocabulary) if n >= cfg.min_token_items]
        index = {t: i + 1 for i, t in enumerate(sorted(kept))}  # 0 = padding
        ids = [[index[t] for t in tokens if t in index] for tokens in lists]
        width = max((len(x) for x in ids), default=0) or 1
        matrix = np.zeros((dataset.n_items, width), dtype=np.int32)
        for row, x in enumerate(ids):
            matrix[row, : len(x)] = x
        self.content_tokens_ = matrix
        self.n_tokens_ = len(index)

        names = vector_names(dataset) if cfg.item_vectors is None else list(cfg.item_vectors)
        blocks, present = [], []
        for name in names:
            values, has = vector_matrix(dataset, name)  # ValueError names a vector no item carries
            # Standardised on the items that carry it, so every vector enters at one scale.
            mean, std = values[has].mean(axis=0), values[has].std(axis=0) + 1e-6
            blocks.append(np.where(has[:, None], (values - mean) / std, 0.0).astype(np.float32))
            present.append(has)
        self.vector_names_ = names
        self.vector_dims_ = [b.shape[1] for b in blocks]
        self.item_vector_matrix_ = (
            np.hstack(blocks) if blocks else np.zeros((dataset.n_items, 0), dtype=np.float32)
        )
        self.item_vector_present_ = (
            np.stack(present, axis=1) if present else np.zeros((dataset.n_items, 0), dtype=bool)
        )

    def _build_network(self, n_items: int) -> HybridNet:
        splits = np.cumsum([0, *self.vector_dims_])
        vectors = [self.item_vector_matrix_[:, a:b] for a, b in pairwise(splits)]
        return HybridNet(
            n_items,
            int(self.n_users_),
            self.config,
            np.asarray(self.content_tokens_, dtype=np.int64),
            int(self.n_tokens_),
            vectors,
            np.asarray(self.item_vector_present_, dtype=bool),
            np.asarray(self.cold_items_, dtype=bool),
        )

    def _item_table(self, net: torch.nn.Module) -> torch.Tensor:
        # In training, the content-only table is kept for `_loss`'s content-only term (full
        # softmax only: the sampled loss has no such term, so it is not built for it).
        self._content_table = None
        if net.training and self.config.content_loss_weight > 0 and self.config.loss == "softmax":
            table, self._content_table = net.item_tables(content_only=True)
            return table
        return net.item_table()

    def _encode(
        self, net: torch.nn.Module, tokens: torch.Tensor, users: torch.Tensor, table: torch.Tensor
    ) -> torch.Tensor:
        return net.encode(tokens, users, table)

    def _logits(
        self,
        net: torch.nn.Module,
        table: torch.Tensor,
        windows: np.ndarray,
        lengths: np.ndarray,
        users: np.ndarray,
        device: Any,
    ) -> torch.Tensor:
        """Dot products of the user vector with every item vector; new items placed by rank.

        A warm item's logit has a part its id embedding adds (popularity, what content misses);
        a new item has none, so its content-only logit sits on another scale and it would almost
        never surface (amazon-beauty: 0.5 % of the top 20 for 10 % of the catalogue). With
        ``new_item_scoring="rank"`` a new item whose content-only logit is above a share q of the
        warm items' content-only logits gets the logit above the share q of their full logits
        (a monotone piecewise-linear map, per user, exact over the top ``new_item_rank_depth``):
        it ranks among warm items as it would if no item had an id, and new items keep their
        content order among themselves.
        """
        last = self._last_hidden(net, table, windows, lengths, users, device)
        logits = last @ table[1:].T
        new = net.id_keep[1:] == 0
        if self.config.new_item_scoring == "rank" and bool(new.any()) and not bool(new.all()):
            content = last @ net.item_table(ids=False)[1:].T
            logits[:, new] = _rank_map(
                content[:, ~new],
                logits[:, ~new],
                content[:, new],
                self.config.new_item_rank_depth,
                self.config.new_item_ties,
            )
        return logits

    def _training_users(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hide = rng.random(len(users)) < self.config.user_dropout
        return np.where(hide, 0, users)

    def _loss(
        self, items: torch.Tensor, hidden: torch.Tensor, target: torch.Tensor, sampler: torch.Tensor | None
    ) -> torch.Tensor:
        if sampler is not None:
            return super()._loss(items, hidden, target, sampler)
        # Items never used in training are not negatives: the softmax runs over the warm items
        # only (a column selection, cheaper than masking a [positions, items] matrix with -inf).
        warm = self._net.id_keep[1:] > 0
        columns = slice(None) if bool(warm.all()) else warm
        position = torch.cumsum(warm, 0) - 1  # an item's column among the warm items
        loss = F.cross_entropy(hidden @ items[columns].T, position[target])
        content, self._content_table = getattr(self, "_content_table", None), None
        if content is not None:
            # New items are scored by where their content-only logit ranks among the warm items'
            # content-only logits ("rank"), so that ranking is trained as such: the same softmax
            # with every item's id off.
            only = hidden @ content[1:][columns].T
            loss = loss + self.config.content_loss_weight * F.cross_entropy(only, position[target])
        return loss

    def fit_report(self) -> dict[str, Any]:
        return {
            "content_tokens": int(self.n_tokens_),
            "item_vectors": list(self.vector_names_),
            "items_without_interactions": int(np.sum(self.cold_items_)),
        }
