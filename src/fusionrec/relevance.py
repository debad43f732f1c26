"""Which recommended items are relevant: the lookup under every accuracy metric, and Recall@k.

`fusionrec.evaluation.metrics` builds all its accuracy metrics on `gains_at_ranks`; model
validation during training (`fusionrec.models._validation`) scores `recall_at_k` with it, so the
models need nothing from the evaluation package above them. Inputs follow the conventions of
`fusionrec.evaluation.metrics`: ``recs`` ``[n_users, K]`` item indices padded with -1, ``truth`` a
sparse ``[n_users, n_items]`` matrix of gains.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def canonical_truth(truth: sp.spmatrix | sp.sparray) -> sp.csr_array:
    """``truth`` as canonical float64 CSR (sorted indices, no duplicates, no stored zeros).

    Rejects a dense input, and non-finite or negative gains (naming the row).
    """
    if not sp.issparse(truth):
        raise TypeError(f"truth must be a scipy sparse matrix, got {type(truth).__name__}")
    t = sp.csr_array(truth, dtype=np.float64, copy=True)
    t.sum_duplicates()  # also sorts indices, which the key lookup needs
    t.eliminate_zeros()
    if t.nnz and not np.isfinite(t.data).all():
        row = int(np.searchsorted(t.indptr, np.flatnonzero(~np.isfinite(t.data))[0], side="right") - 1)
        raise ValueError(f"truth row {row} holds a non-finite relevance value")
    if t.nnz and (t.data < 0).any():
        row = int(np.searchsorted(t.indptr, np.flatnonzero(t.data < 0)[0], side="right") - 1)
        raise ValueError(f"truth row {row} holds a negative relevance value; gains must be >= 0")
    return t


def gains_at_ranks(recs: np.ndarray, truth: sp.csr_array) -> np.ndarray:
    """Relevance value of each recommended slot, float64 ``[n, K]`` (0 = not relevant or padding).

    ``truth`` must be canonical (sorted indices, no duplicates): one ``searchsorted`` over
    ``row * n_items + item`` keys finds every (user, item) pair at once.
    """
    n_users, n_items = truth.shape
    out = np.zeros(recs.shape, dtype=np.float64)
    if truth.nnz == 0 or recs.size == 0:
        return out
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(truth.indptr))
    keys = rows * n_items + truth.indices.astype(np.int64)
    valid = recs >= 0
    rec_keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + recs
    pos = np.searchsorted(keys, rec_keys)
    pos_c = np.minimum(pos, keys.size - 1)
    found = valid & (keys[pos_c] == rec_keys)
    out[found] = truth.data[pos_c[found]]
    return out


def recall_at_k(recs: np.ndarray, truth: sp.spmatrix | sp.sparray, k: int) -> float:
    """Mean ``Recall@k = hits / R`` over the users with a relevant item (NaN when there is none).

    The value `fusionrec.evaluation.metrics.evaluate_rankings` reports as ``Recall@k``, without its
    checks of ``recs`` (callers pass a model's own lists).
    """
    t = canonical_truth(truth)
    n_relevant = np.diff(t.indptr)
    rows = np.flatnonzero(n_relevant > 0)
    if rows.size == 0:
        return float("nan")
    recs = np.asarray(recs, dtype=np.int64)[rows, :k]
    hits = (gains_at_ranks(recs, t[rows]) > 0).sum(axis=1)
    return float((hits / n_relevant[rows]).mean())
