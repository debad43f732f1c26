"""Graph collaborative filtering: the training-free GF-CF filter and LightGCN.

Both work on the symmetrically normalised user x item matrix
``R~ = D_u^-1/2 R D_i^-1/2`` (the bipartite half of LightGCN's normalised adjacency).

* `GFCF` (Shen et al. 2021, "How Powerful is Graph Convolution for Recommendation?"): scores
  ``r_u R~^T R~ + alpha * r_u D_i^-1/2 V V^T D_i^1/2`` where ``V`` holds the top right singular
  vectors of ``R~`` (the ideal low-pass part). No training, only a truncated SVD. With
  ``sharpen = T > 0`` the scores ``x`` then take one Euler step of BSPM's sharpening process
  (Choi et al. 2023, "Blurring-Sharpening Process Models"): ``x - T x R~^T R~``, which takes back
  the smoothest, most popularity-like part of the blurred signal.
* `LightGCN` (He et al. 2020): ID embeddings propagated ``n_layers`` times over the normalised
  graph, averaged over layers, trained with BPR on uniformly sampled negatives (PyTorch), from
  random embeddings or (``init="spectral"``) from the top singular vectors of ``R~``.
"""

from __future__ import annotations

import logging
import time
import warnings
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import Dataset
from fusionrec.models._sampling import NegativeSampler
from fusionrec.models._validation import ValidationFitMixin, run_epochs
from fusionrec.models.base import ModelConfig, ModelError, Recommender
from fusionrec.models.itemtools import request_history_matrix

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("fusionrec.models.graph")


def normalised_interactions(matrix: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(D_u^-1/2 R D_i^-1/2, item degrees)``; empty rows and columns stay zero."""
    user_degree = np.asarray(matrix.sum(axis=1)).ravel().astype(np.float64)
    item_degree = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float64)
    user_scale = np.divide(1.0, np.sqrt(user_degree), out=np.zeros_like(user_degree), where=user_degree > 0)
    item_scale = np.divide(1.0, np.sqrt(item_degree), out=np.zeros_like(item_degree), where=item_degree > 0)
    normalised = sp.diags(user_scale) @ matrix @ sp.diags(item_scale)
    normalised = sp.csr_matrix(normalised, dtype=np.float32)
    normalised.sort_indices()
    return normalised, item_degree


def top_right_singular_vectors(
    matrix: sp.csr_matrix, rank: int, solver: Literal["randomized", "arpack"], n_iter: int, seed: int
) -> np.ndarray:
    """``[rank, n_items]``: the top right singular vectors of ``matrix`` (ARPACK or randomized SVD).

    ``rank`` is capped below the matrix's smaller side; an empty matrix or a rank under 1 gives an
    empty ``[0, n_items]`` basis (no ideal low-pass part).
    """
    rank = min(rank, min(matrix.shape) - 1)
    if rank < 1 or not matrix.nnz:
        return np.zeros((0, matrix.shape[1]))
    if solver == "arpack":
        from scipy.sparse.linalg import svds

        v0 = np.random.default_rng(seed).standard_normal(min(matrix.shape)).astype(np.float32)
        _, _, vt = svds(matrix, k=rank, v0=v0)
    else:
        from sklearn.utils.extmath import randomized_svd

        _, _, vt = randomized_svd(matrix, rank, n_iter=n_iter, random_state=seed)
    return np.asarray(vt, dtype=np.float64)


# --- GF-CF -------------------------------------------------------------------------------------


class GFCFConfig(ModelConfig):
    alpha: float = Field(0.3, ge=0.0)  # weight of the ideal low-pass part (paper: 0.3)
    n_components: int = Field(256, ge=1)  # singular vectors of R~ (paper: 256 for Gowalla)
    svd_solver: Literal["randomized", "arpack"] = "randomized"
    n_iter: int = Field(4, ge=0)  # power iterations of the randomized SVD
    binary: bool = True  # graph of who-touched-what (True) or summed event weights (False)
    sharpen: float = Field(0.0, ge=0.0)  # BSPM sharpening time (one Euler step); 0 = plain GF-CF


class RowFilterRecommender(Recommender):
    """A filter that scores a user (or a live history) from its interaction row alone.

    So it also scores histories given at request time. Subclasses set ``interactions_`` in
    ``_fit`` and implement `_filter`.
    """

    supports_history = True
    item_to_item = True
    interactions_: sp.csr_matrix

    @abstractmethod
    def _filter(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores ``[b, n_items]`` of interaction rows ``[b, n_items]``."""

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._filter(self.interactions_[users])

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        return self._filter(request_history_matrix(histories, self.n_items_, binary=True))

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items by filtered score of a one-item history (the item itself excluded)."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        if ((items < 0) | (items >= self.n_items_)).any():
            raise ModelError(f"similar_items: item indices must lie in [0, {self.n_items_})")
        return self.recommend_from_history([np.array([i]) for i in items], k)


class GFCF(RowFilterRecommender):
    """Training-free graph filter: linear item-item filter plus an ideal low-pass part."""

    name = "gf_cf"
    Config = GFCFConfig
    config: GFCFConfig

    def _fit(self, dataset: Dataset) -> None:
        matrix = dataset.matrix(binary=self.config.binary)
        self.interactions_ = matrix
        self.normalised_, item_degree = normalised_interactions(matrix)
        cfg = self.config
        rank = cfg.n_components if cfg.alpha > 0 else 0
        vt = top_right_singular_vectors(self.normalised_, rank, cfg.svd_solver, cfg.n_iter, cfg.seed)
        sqrt_degree = np.sqrt(item_degree)
        inv_sqrt_degree = np.divide(1.0, sqrt_degree, out=np.zeros_like(sqrt_degree), where=sqrt_degree > 0)
        # r D^-1/2 V V^T D^1/2 = (r @ low_in_) @ low_out_
        self.low_in_ = (inv_sqrt_degree[:, None] * vt.T).astype(np.float32)
        self.low_out_ = (vt * sqrt_degree[None, :]).astype(np.float32)
        logger.info("gf_cf: %d users x %d items, %d singular vectors", *matrix.shape, self.low_in_.shape[1])

    def _filter(self, rows: sp.csr_matrix) -> np.ndarray:
        """Filtered scores of interaction rows ``[b, n_items]`` (sparse products, then dense)."""
        # (r R~^T) R~ keeps both products sparse; R~^T R~ itself is far denser than R~.
        linear = (rows @ self.normalised_.T) @ self.normalised_
        scores = np.asarray(linear.toarray(), dtype=np.float32)
        if self.low_in_.shape[1]:
            scores += self.config.alpha * ((rows @ self.low_in_) @ self.low_out_)
        if self.config.sharpen > 0:
            # x - T x R~^T R~, as (R~^T (R~ x^T))^T: two sparse x dense products, never R~^T R~.
            smooth = self.normalised_.T @ (self.normalised_ @ scores.T)
            scores -= self.config.sharpen * np.asarray(smooth.T, dtype=np.float32)
        return scores


# --- LightGCN ----------------------------------------------------------------------------------


class LightGCNConfig(ModelConfig):
    embedding_dim: int = Field(64, ge=1)
    n_layers: int = Field(3, ge=0)
    learning_rate: float = Field(1e-3, gt=0)
    l2: float = Field(1e-4, ge=0)  # weight of the L2 penalty on the batch's ego (layer-0) embeddings
    batch_size: int = Field(2048, ge=1)
    epochs: int = Field(1000, ge=1)  # upper bound; early stopping usually ends training sooner
    max_seconds: float | None = Field(None, gt=0)  # training time budget (evaluation time excluded)
    eval_every: int = Field(1, ge=1)  # epochs between validation evaluations
    patience: int = Field(5, ge=1)  # evaluations without improvement before stopping
    validation_k: int = Field(20, ge=1)
    validation_users: int | None = Field(10_000, ge=1)  # sample of validation users scored
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
    n_threads: int | None = Field(None, ge=1)  # torch intra-op threads during training
    # "normal": N(0, 0.1) as in the paper. "spectral": the top singular vectors of R~, which
    # propagation keeps (they are eigenvectors of the normalised graph), so BPR starts from a
    # low-pass filter's ranking instead of noise and needs far fewer steps on CPU.
    init: Literal["normal", "spectral"] = "normal"


EpochCallback = Callable[["LightGCN", dict[str, Any]], None]


class LightGCN(ValidationFitMixin, Recommender):
    """LightGCN: layer-averaged propagation of ID embeddings over the user-item graph, BPR loss.

    ``fit(dataset, validation=...)`` evaluates Recall@k on the validation users every
    ``eval_every`` epochs, keeps the best embeddings and stops after ``patience`` evaluations
    without improvement. Without validation it trains ``epochs`` epochs (or ``max_seconds``).
    """

    name = "lightgcn"
    Config = LightGCNConfig
    config: LightGCNConfig
    stops_early = True

    def fit(
        self,
        dataset: Dataset,
        validation: Dataset | None = None,
        callback: EpochCallback | None = None,
    ) -> Self:
        """Train on ``dataset``; ``callback(model, record)`` runs after every evaluation."""
        self._callback = callback
        try:
            return super().fit(dataset, validation)
        finally:
            del self._callback

    def _fit(self, dataset: Dataset) -> None:
        from fusionrec.models._torch import torch_threads

        with torch_threads(self.config.n_threads):
            self._train(dataset.matrix(binary=True))

    def _train(self, matrix: sp.csr_matrix) -> None:
        from fusionrec.models._torch import require_torch, resolve_device, seeded_generator, to_numpy

        torch = require_torch()
        cfg = self.config
        setup_start, setup_cpu_start = time.perf_counter(), time.process_time()
        device = resolve_device(cfg.device)
        generator = seeded_generator(cfg.seed, device)
        rng = np.random.default_rng(cfg.seed)
        normalised, _ = normalised_interactions(matrix)
        forward_op = _csr_tensor(torch, normalised, device)
        backward_op = _csr_tensor(torch, normalised.T.tocsr(), device)
        n_users, n_items = matrix.shape
        user_ego = torch.nn.Parameter(torch.empty(n_users, cfg.embedding_dim, device=device))
        item_ego = torch.nn.Parameter(torch.empty(n_items, cfg.embedding_dim, device=device))
        if cfg.init == "spectral":
            user_init, item_init = spectral_embeddings(normalised, cfg.embedding_dim, seed=cfg.seed, std=0.1)
            with torch.no_grad():
                user_ego.copy_(torch.from_numpy(user_init))
                item_ego.copy_(torch.from_numpy(item_init))
        else:
            torch.nn.init.normal_(user_ego, std=0.1, generator=generator)
            torch.nn.init.normal_(item_ego, std=0.1, generator=generator)
        optimiser = torch.optim.Adam([user_ego, item_ego], lr=cfg.learning_rate)
        propagate = _make_propagation(torch, forward_op, backward_op, cfg.n_layers)

        users_all, items_all = matrix.nonzero()
        sampler = NegativeSampler(matrix)

        def train_epoch() -> float:
            order = rng.permutation(len(users_all))
            negatives = sampler.sample(rng, users_all[order])
            total_loss, n_batches = 0.0, 0
            for lo in range(0, len(order), cfg.batch_size):
                idx = order[lo : lo + cfg.batch_size]
                u = torch.from_numpy(users_all[idx].astype(np.int64)).to(device)
                p = torch.from_numpy(items_all[idx].astype(np.int64)).to(device)
                n = torch.from_numpy(negatives[lo : lo + cfg.batch_size]).to(device)
                users_final, items_final = propagate(user_ego, item_ego)
                eu, ep, en = users_final[u], items_final[p], items_final[n]
                bpr = torch.nn.functional.softplus((eu * en).sum(1) - (eu * ep).sum(1)).mean()
                ego = user_ego[u].pow(2).sum() + item_ego[p].pow(2).sum() + item_ego[n].pow(2).sum()
                loss = bpr + cfg.l2 * 0.5 * ego / len(idx)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total_loss += float(loss.detach())
                n_batches += 1
            return total_loss / max(n_batches, 1)

        def publish() -> dict[str, np.ndarray]:
            with torch.no_grad():
                users_final, items_final = propagate(user_ego, item_ego)
            self.user_embeddings_ = to_numpy(users_final)
            self.item_embeddings_ = to_numpy(items_final)
            return {"user_embeddings_": self.user_embeddings_, "item_embeddings_": self.item_embeddings_}

        callback = self._callback
        run_epochs(
            self,
            cfg,
            self._validation,
            train_epoch,
            publish,
            log=logger,
            callback=None if callback is None else lambda record: callback(self, record),
            setup_seconds=time.perf_counter() - setup_start,
            setup_cpu_seconds=time.process_time() - setup_cpu_start,
        )

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self.user_embeddings_[users] @ self.item_embeddings_.T


def spectral_embeddings(
    normalised: sp.csr_matrix, dim: int, *, seed: int, std: float
) -> tuple[np.ndarray, np.ndarray]:
    """User and item embeddings ``U sqrt(S)`` and ``V sqrt(S)`` from the top ``dim`` singular triplets
    of ``normalised``, rescaled to entries of standard deviation ``std``; columns past the matrix's
    rank stay zero."""
    from sklearn.utils.extmath import randomized_svd

    n_users, n_items = normalised.shape
    rank = max(0, min(dim, min(normalised.shape) - 1))
    users = np.zeros((n_users, dim), dtype=np.float32)
    items = np.zeros((n_items, dim), dtype=np.float32)
    if rank and normalised.nnz:
        u, s, vt = randomized_svd(normalised, rank, n_iter=4, random_state=seed)
        root = np.sqrt(s)[None, :]
        users[:, :rank] = u * root
        items[:, :rank] = vt.T * root
        scale = std / max(float(np.sqrt(np.mean(np.concatenate([users.ravel(), items.ravel()]) ** 2))), 1e-12)
        users *= scale
        items *= scale
    return users, items


def _csr_tensor(torch: Any, matrix: sp.csr_matrix, device: Any) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products with dense are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data.astype(np.float32)),
            size=matrix.shape,
            device=device,
            check_invariants=False,  # built from a canonical scipy CSR
        )


def _make_propagation(
    torch: Any, forward_op: torch.Tensor, backward_op: torch.Tensor, n_layers: int
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """LightGCN's layer-mean propagation over the bipartite graph.

    ``forward_op`` is ``R~`` and ``backward_op`` its transpose, both CSR, so each product and its
    gradient is a row-parallel CSR x dense product (no per-step transposes, deterministic).
    """

    class _SparseProduct(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, dense: torch.Tensor, transpose: bool) -> torch.Tensor:
            ctx.transpose = transpose
            return (backward_op if transpose else forward_op) @ dense

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
            return (forward_op if ctx.transpose else backward_op) @ grad, None

    def propagate(user_ego: torch.Tensor, item_ego: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = user_ego, item_ego
        user_sum, item_sum = user_ego, item_ego
        for _ in range(n_layers):
            users, items = _SparseProduct.apply(items, False), _SparseProduct.apply(users, True)
            user_sum, item_sum = user_sum + users, item_sum + items
        return user_sum / (n_layers + 1), item_sum / (n_layers + 1)

    return propagate
