"""Next-item models trained on users' time-ordered item sequences (PyTorch, the ``deep`` extra).

`TorchSequentialRecommender` holds what SASRec and GRU4Rec share: turning the log into padded
windows, the training loop (full softmax cross-entropy over all items at every position, or
sampled softmax with logQ correction), validation HR/NDCG@10 with early stopping, scoring the
user's training sequence or a history given at request time, and weights saved as numpy arrays.
Two hooks let a network build its item vectors from more than an id (`_item_table`, the hybrid's
content tower) and read the user (`_encode`, the hybrid's user embedding); SASRec and GRU4Rec keep
the defaults, their tied item embedding and the item tokens alone.

Items are fed to the networks as tokens ``item + 1``; token 0 is padding. Windows are
left-aligned and right-padded, and every network is causal, so padding never reaches a real
position and a window's score does not depend on the batch it is in.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import Dataset
from fusionrec.models._sequences import (
    chunk_owners,
    histories_to_csr,
    last_windows,
    positive_sequences,
    training_chunks,
)
from fusionrec.models._torch import (
    STATE_PREFIX,
    load_module_arrays,
    module_arrays,
    require_torch,
    resolve_device,
    seeded,
)
from fusionrec.models._validation import EarlyStopping, ValidationFitMixin
from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.progress import step

torch = require_torch()
F = torch.nn.functional

logger = logging.getLogger(__name__)
METRICS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


class SequentialConfig(ModelConfig):
    """Hyperparameters shared by the torch sequence models."""

    embedding_dim: int = Field(64, ge=1)
    max_len: int = Field(50, ge=1)  # the last max_len items are the model's input
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(128, ge=1)
    epochs: int = Field(200, ge=1)
    # "softmax": cross-entropy over every item at every position; "sampled_softmax": the target
    # against n_negatives shared sampled items, logits corrected by log q (for large catalogues).
    loss: Literal["softmax", "sampled_softmax"] = "softmax"
    n_negatives: int = Field(1024, ge=1)
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    # Validation (when fit(..., validation=...) is given): every eval_every epochs; stop after
    # `patience` evaluations without improvement and keep the best weights.
    eval_every: int = Field(2, ge=1)
    patience: int = Field(5, ge=1)
    early_stopping_metric: Literal["ndcg@10", "hr@10", "ndcg@20", "hr@20"] = "ndcg@10"
    device: str = "cpu"
    threads: int | None = Field(1, ge=1)  # torch CPU threads while fitting (fixed for repeatability)
    score_batch_size: int = Field(1024, ge=1)


class TorchSequentialRecommender(ValidationFitMixin, Recommender):
    """Base of SASRec and GRU4Rec: data preparation, training loop, scoring, persistence.

    ``fit(dataset, validation=...)`` stops early on the validation part's next item.
    """

    supports_history = True
    needs_event_log = True  # each user's items in time order
    stops_early = True
    Config = SequentialConfig
    config: SequentialConfig

    # --- the network (subclasses) ------------------------------------------------------------

    @abstractmethod
    def _build_network(self, n_items: int) -> torch.nn.Module:
        """A module with ``encode(tokens [B, L]) -> hidden [B, L, d]`` and ``item_embedding``
        (an ``nn.Embedding`` of ``n_items + 1`` tokens whose weights also give the output logits)."""

    def _item_table(self, net: torch.nn.Module) -> torch.Tensor:
        """Vectors of every token ``[n_items + 1, d]`` (row 0: padding): the inputs and, without
        row 0, the output weights. Computed once per batch, so a content tower runs once."""
        return net.item_embedding.weight

    def _encode(
        self, net: torch.nn.Module, tokens: torch.Tensor, users: torch.Tensor, table: torch.Tensor
    ) -> torch.Tensor:
        """Hidden states ``[B, L, d]``; ``users`` are user tokens (index + 1, 0 = unknown)."""
        return net.encode(tokens)

    # --- fitting -----------------------------------------------------------------------------

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        self.seq_indptr_, self.seq_items_ = positive_sequences(dataset)
        chunks = training_chunks(self.seq_indptr_, self.seq_items_, cfg.max_len) + 1  # pad -1 -> token 0
        owners = chunk_owners(self.seq_indptr_, cfg.max_len) + 1  # user tokens; 0 = unknown user
        device = resolve_device(cfg.device, cpu_fallback=True)
        rng = np.random.default_rng(cfg.seed)
        with seeded(cfg.seed, cfg.threads):
            net = self._build_network(self.n_items_).to(device)
            self._net = net
            optimizer = torch.optim.Adam(
                net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
            )
            sampler = self._negative_distribution(device)
            validation = self._validation_task(self._validation)
            # seconds: wall clock; cpu_seconds: this process's CPU time (honest on a shared machine)
            curve: dict[str, list[float]] = {
                "epoch": [],
                "seconds": [],
                "cpu_seconds": [],
                "loss": [],
                **{m: [] for m in METRICS},
            }
            stopper = EarlyStopping(cfg.patience)
            best_state, started, cpu_started = None, time.perf_counter(), time.process_time()
            for epoch in range(1, cfg.epochs + 1):
                loss = self._train_epoch(net, optimizer, chunks, owners, rng, sampler, device)
                message = f"{self.name} epoch {epoch}/{cfg.epochs} loss {loss:.4f}"
                stop = False
                if validation is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                    metrics = self._validate(net, validation, device)
                    curve["epoch"].append(epoch)
                    curve["seconds"].append(round(time.perf_counter() - started, 2))
                    curve["cpu_seconds"].append(round(time.process_time() - cpu_started, 2))
                    curve["loss"].append(loss)
                    for name in METRICS:
                        curve[name].append(metrics[name])
                    message += " " + " ".join(f"val {m} {v:.4f}" for m, v in metrics.items())
                    improved, stop = stopper.step(epoch, metrics[cfg.early_stopping_metric])
                    if improved:
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                logger.info("%s (%.1fs)", message, time.perf_counter() - started)
                step(f"{self.name} epochs", epoch, cfg.epochs, f"loss {loss:.4f}")
                if stop:
                    logger.info(
                        "%s: early stop at epoch %d, best epoch %d", self.name, epoch, stopper.best_epoch
                    )
                    break
            if best_state is not None:
                net.load_state_dict(best_state)
                self.best_epoch_ = stopper.best_epoch
            else:  # no validation: the last epoch is the model
                self.best_epoch_ = epoch
            self.epochs_trained_ = epoch
            self.training_seconds_ = round(time.perf_counter() - started, 2)
            self.training_cpu_seconds_ = round(time.process_time() - cpu_started, 2)
            self.training_curve_ = curve
        net.to("cpu").eval()  # scoring runs on the CPU copy; weights are saved from it

    def _negative_distribution(self, device: torch.device) -> torch.Tensor | None:
        if self.config.loss != "sampled_softmax":
            return None
        if self.config.negative_sampling == "uniform":
            q = np.ones(self.n_items_, dtype=np.float64)
        else:  # popularity of items as training targets, smoothed so every item can be drawn
            q = np.bincount(self.seq_items_, minlength=self.n_items_).astype(np.float64) + 1.0
        return torch.as_tensor(q / q.sum(), dtype=torch.float32, device=device)

    def _train_epoch(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        chunks: np.ndarray,
        owners: np.ndarray,
        rng: np.random.Generator,
        sampler: torch.Tensor | None,
        device: torch.device,
    ) -> float:
        """One pass over the windows; batches hold windows of similar length to skip padding."""
        net.train()
        lengths = (chunks > 0).sum(axis=1)
        order = rng.permutation(len(chunks))
        order = order[np.argsort(lengths[order], kind="stable")]
        batches = [
            order[i : i + self.config.batch_size] for i in range(0, len(order), self.config.batch_size)
        ]
        total, count = 0.0, 0
        for b in rng.permutation(len(batches)):
            rows = batches[b]
            width = int(lengths[rows].max())
            tokens = torch.as_tensor(chunks[rows, :width], device=device)
            inputs, targets = tokens[:, :-1], tokens[:, 1:]
            valid = targets > 0
            table = self._item_table(net)
            users = torch.as_tensor(self._training_users(owners[rows], rng), device=device)
            hidden = self._encode(net, inputs, users, table)[valid]
            target = targets[valid] - 1
            loss = self._loss(table[1:], hidden, target, sampler)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(target)
            count += len(target)
        return total / max(count, 1)

    def _training_users(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The user tokens a training batch sees (the hybrid hides some: user-embedding dropout)."""
        return users

    def _loss(
        self, items: torch.Tensor, hidden: torch.Tensor, target: torch.Tensor, sampler: torch.Tensor | None
    ) -> torch.Tensor:
        if sampler is None:
            return F.cross_entropy(hidden @ items.T, target)
        negatives = torch.multinomial(sampler, self.config.n_negatives, replacement=True)
        log_q = torch.log(sampler)
        positive = (hidden * items[target]).sum(dim=1, keepdim=True) - log_q[target][:, None]
        negative = hidden @ items[negatives].T - log_q[negatives][None, :]
        negative = negative.masked_fill(
            negatives[None, :] == target[:, None], float("-inf")
        )  # accidental hits
        logits = torch.cat([positive, negative], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long, device=hidden.device))

    # --- validation --------------------------------------------------------------------------

    def _validation_task(self, validation: Dataset | None) -> dict[str, Any] | None:
        """The next-item validation task: input windows, target items and the items to mask.

        A validation user with a training sequence predicts their first validation item from it,
        training items masked (leave-one-out). A user new in validation (an anonymous session
        after a temporal split) predicts their last validation item from the ones before it,
        nothing masked (the session next-item protocol).
        """
        if validation is None:
            return None
        if validation.n_items != self.n_items_ or validation.n_users != self.n_users_:
            raise ValueError("validation must share the training Dataset's vocabularies (use a Split)")
        v_indptr, v_items = positive_sequences(validation)
        v_lengths = np.diff(v_indptr)
        has_history = np.diff(self.seq_indptr_) > 0
        returning = np.flatnonzero(has_history & (v_lengths > 0))
        new = np.flatnonzero(~has_history & (v_lengths >= 2))
        if len(returning) + len(new) == 0:
            logger.warning("%s: the validation part has no next-item case; no early stopping", self.name)
            return None
        width = self.config.max_len
        old_windows, old_lengths = last_windows(self.seq_indptr_, self.seq_items_, returning, width)
        new_windows, new_lengths = last_windows(v_indptr, v_items, new, width, drop_last=1)
        return {
            "windows": np.vstack([old_windows, new_windows]),
            "users": np.concatenate([returning + 1, np.zeros(len(new), dtype=np.int64)]),
            "lengths": np.concatenate([old_lengths, new_lengths]),
            "targets": np.concatenate([v_items[v_indptr[returning]], v_items[v_indptr[new + 1] - 1]]),
            "mask": sp.vstack([self.seen_[returning], sp.csr_matrix((len(new), self.n_items_))]).tocsr(),
        }

    def _validate(self, net: torch.nn.Module, task: dict[str, Any], device: torch.device) -> dict[str, float]:
        """Full-ranking HR and NDCG at 10 and 20 of the next item, training items masked."""
        net.eval()
        ranks = []
        step = self.config.score_batch_size
        with torch.no_grad():
            table = self._item_table(net)
            for start in range(0, len(task["targets"]), step):
                part = slice(start, start + step)
                logits = self._logits(
                    net, table, task["windows"][part], task["lengths"][part], task["users"][part], device
                )
                mask = task["mask"][part].tocoo()
                logits[
                    torch.as_tensor(mask.row, device=device), torch.as_tensor(mask.col, device=device)
                ] = -torch.inf
                target = torch.as_tensor(task["targets"][part], device=device)
                target_logit = logits.gather(1, target[:, None].long())
                # Rank = items scored strictly higher; a masked target ranks last.
                rank = (logits > target_logit).sum(dim=1).float()
                rank[torch.isinf(target_logit[:, 0])] = float(self.n_items_)
                ranks.append(rank.cpu().numpy())
        rank = np.concatenate(ranks)
        result = {}
        for k in (10, 20):
            hit = rank < k
            result[f"hr@{k}"] = float(hit.mean())
            result[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean())
        return result

    # --- scoring -----------------------------------------------------------------------------

    def _logits(
        self,
        net: torch.nn.Module,
        table: torch.Tensor,
        windows: np.ndarray,
        lengths: np.ndarray,
        users: np.ndarray,
        device: Any,
    ) -> torch.Tensor:
        """Logits over all items after the last item of each right-padded window (items, pad -1);
        ``users`` are user tokens (0 = unknown), ``table`` is `_item_table`."""
        return self._last_hidden(net, table, windows, lengths, users, device) @ table[1:].T

    def _last_hidden(
        self,
        net: torch.nn.Module,
        table: torch.Tensor,
        windows: np.ndarray,
        lengths: np.ndarray,
        users: np.ndarray,
        device: Any,
    ) -> torch.Tensor:
        """The network's state after the last item of each window (what `_logits` scores with)."""
        tokens = torch.as_tensor(windows + 1, device=device)
        hidden = self._encode(net, tokens, torch.as_tensor(users, device=device), table)
        return hidden[torch.arange(len(lengths), device=device), torch.as_tensor(lengths - 1, device=device)]

    def _score_windows(
        self, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray, users: np.ndarray
    ) -> np.ndarray:
        # Always the full max_len width, so a row's score does not depend on its batch.
        windows, lengths = last_windows(indptr, items, rows, self.config.max_len)
        out = np.empty((len(rows), self.n_items_), dtype=np.float32)
        step = self.config.score_batch_size
        self._net.eval()
        with torch.no_grad():
            table = self._item_table(self._net)
            for start in range(0, len(rows), step):
                part = slice(start, start + step)
                out[part] = self._logits(
                    self._net, table, windows[part], lengths[part], users[part], "cpu"
                ).numpy()
        return out

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        scores = self.fallback_scores(len(users))
        has = np.diff(self.seq_indptr_)[users] > 0  # users whose only events were negative
        if has.any():
            scores[has] = self._score_windows(self.seq_indptr_, self.seq_items_, users[has], users[has] + 1)
        return scores

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        indptr, items = histories_to_csr(histories, self.n_items_)
        scores = self.fallback_scores(len(histories))  # histories of unknown items only
        has = np.flatnonzero(np.diff(indptr) > 0)
        if len(has):
            # Request-time histories carry no user identity: the unknown-user token 0.
            scores[has] = self._score_windows(indptr, items, has, np.zeros(len(has), dtype=np.int64))
        return scores

    # --- persistence -------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), **module_arrays(self._net)}

    def _load_state(self, state: dict[str, Any]) -> None:
        weights = {k: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
        super()._load_state({k: v for k, v in state.items() if not k.startswith(STATE_PREFIX)})
        if isinstance(self.seen_, sp.spmatrix):
            self.seen_ = sp.csr_matrix(self.seen_)
        self._net = self._build_network(int(self.n_items_))
        load_module_arrays(self._net, weights)
        self._net.eval()
