"""Sparse item x item matrices cut down to each item's strongest neighbours."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def prune_rows(matrix: sp.csr_matrix, max_per_row: int | None) -> sp.csr_matrix:
    """Keep the ``max_per_row`` largest entries of each CSR row (ties: lower column first)."""
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    if max_per_row is None or matrix.nnz == 0:
        return matrix
    counts = np.diff(matrix.indptr)
    if counts.max() <= max_per_row:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], counts)
    keep = order[rank < max_per_row]
    pruned = sp.csr_matrix(
        (matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape, dtype=matrix.dtype
    )
    pruned.sort_indices()
    return pruned
