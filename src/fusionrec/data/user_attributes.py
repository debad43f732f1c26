"""User attributes (``users.parquet``'s JSON ``attributes``) as small categorical codes.

The segment models and the ranking features read attributes through one `AttributeEncoder`,
fitted once on the training users: which keys are usable (bounded cardinality, at least two
segments of a useful size), and each key's value vocabulary. Rare values are pooled into one
``"(other)"`` segment so that a value shared by a handful of users neither overfits the ranker
nor makes a segment of its own; a key whose values are nearly all distinct (a signup time, an
e-mail) is left out altogether. Codes are ``int32`` with ``-1`` for a missing or unknown value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

OTHER = "(other)"  # the pooled segment of values held by fewer than ``min_users`` users


class UserAttributeError(ValueError):
    """A user's attributes are not a JSON object."""


def parse_attributes(values: Iterable[object]) -> pd.DataFrame:
    """One row per value, one string column per attribute key (NA where absent).

    ``values`` are JSON object strings (``USER_SCHEMA.attributes``), dicts, or null. Nested values
    are kept as their JSON text; numbers as their text (``2`` and ``"2"`` are one segment).
    """
    rows: list[dict[str, str]] = []
    for position, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            rows.append({})
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as error:
                raise UserAttributeError(
                    f"users.attributes: row {position} is not JSON ({error.msg})"
                ) from None
        if not isinstance(value, dict):
            raise UserAttributeError(
                f"users.attributes: row {position} is a JSON {type(value).__name__}, not an object"
            )
        rows.append({str(k): _text(v) for k, v in value.items() if v is not None and _text(v) != ""})
    return pd.DataFrame.from_records(rows, index=pd.RangeIndex(len(rows))).astype("string")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class AttributeEncoder:
    """The usable attribute keys and each key's value vocabulary (code = position)."""

    names: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]

    @property
    def n_attributes(self) -> int:
        return len(self.names)

    def sizes(self) -> np.ndarray:
        """int64[n_attributes]: how many codes each key has."""
        return np.array([len(v) for v in self.values], dtype=np.int64)

    @classmethod
    def empty(cls) -> AttributeEncoder:
        return cls((), ())

    @classmethod
    def fit(
        cls,
        attributes: Iterable[object] | pd.DataFrame,
        *,
        min_users: int = 20,
        max_values: int = 32,
        max_attributes: int = 12,
        only: Sequence[str] | None = None,
    ) -> AttributeEncoder:
        """Keys with at least two segments of ``min_users`` users, their values by frequency.

        Values held by fewer than ``min_users`` users are pooled into `OTHER`; a key keeps at
        most ``max_values`` values (the rest pooled), and at most ``max_attributes`` keys are kept,
        the most widely filled first. ``only`` restricts the keys considered.
        """
        frame = attributes if isinstance(attributes, pd.DataFrame) else parse_attributes(attributes)
        chosen: list[tuple[int, str, tuple[str, ...]]] = []
        for key in frame.columns:
            if only is not None and key not in only:
                continue
            counts = frame[key].dropna().value_counts(sort=False)
            # Most frequent first; ties by value, so the vocabulary does not depend on row order.
            ordered = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
            kept = [str(v) for v, c in ordered if c >= min_users][: max_values - 1]
            pooled = int(counts.sum()) - int(sum(counts[v] for v in kept))
            vocabulary = (*kept, OTHER) if pooled > 0 else tuple(kept)
            if len(kept) < 1 or len(vocabulary) < 2:  # one segment holds (nearly) everybody
                continue
            chosen.append((int(counts.sum()), str(key), vocabulary))
        chosen.sort(key=lambda entry: (-entry[0], entry[1]))
        chosen = sorted(chosen[:max_attributes], key=lambda entry: entry[1])
        return cls(tuple(name for _, name, _ in chosen), tuple(vocab for _, _, vocab in chosen))

    def encode(self, attributes: Iterable[object] | pd.DataFrame) -> np.ndarray:
        """``int32[n, n_attributes]`` codes; values outside the vocabulary fall into `OTHER`
        when the key has it, else -1; a missing value is -1."""
        frame = attributes if isinstance(attributes, pd.DataFrame) else parse_attributes(attributes)
        codes = np.full((len(frame), self.n_attributes), -1, dtype=np.int32)
        for a, (name, vocabulary) in enumerate(zip(self.names, self.values, strict=True)):
            if name not in frame.columns:
                continue
            column = frame[name]
            lookup = {value: code for code, value in enumerate(vocabulary)}
            other = lookup.get(OTHER, -1)
            mapped = column.map(
                lambda v, lookup=lookup, other=other: lookup.get(v, other), na_action="ignore"
            )
            codes[:, a] = mapped.fillna(-1).to_numpy(dtype=np.int64).astype(np.int32)
        return codes

    def restrict(self, names: Sequence[str]) -> AttributeEncoder:
        """The same vocabularies for the keys in ``names`` only."""
        keep = [a for a, name in enumerate(self.names) if name in set(names)]
        return AttributeEncoder(tuple(self.names[a] for a in keep), tuple(self.values[a] for a in keep))

    # --- persistence (no pickle: plain unicode arrays) ---------------------------------------------

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        flat = [value for vocabulary in self.values for value in vocabulary]
        return {
            f"{prefix}names": np.asarray(self.names, dtype=str).reshape(-1),
            f"{prefix}sizes": self.sizes(),
            f"{prefix}values": np.asarray(flat, dtype=str).reshape(-1),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> AttributeEncoder:
        if f"{prefix}names" not in arrays:
            return cls.empty()
        names = tuple(str(x) for x in arrays[f"{prefix}names"])
        bounds = np.concatenate([[0], np.cumsum(arrays[f"{prefix}sizes"])]).astype(np.int64)
        flat = [str(x) for x in arrays[f"{prefix}values"]]
        values = tuple(tuple(flat[bounds[a] : bounds[a + 1]]) for a in range(len(names)))
        return cls(names, values)


def user_attribute_column(user_features: pd.DataFrame) -> pd.Series | None:
    """The ``attributes`` column of a Dataset's user features, or None when no user has any."""
    if "attributes" not in user_features.columns:
        return None
    column = user_features["attributes"]
    return column if column.notna().any() else None


def dataset_encoder(user_features: pd.DataFrame, **options: object) -> AttributeEncoder:
    """`AttributeEncoder.fit` on a Dataset's user features (empty when they carry no attributes)."""
    column = user_attribute_column(user_features)
    if column is None:
        return AttributeEncoder.empty()
    return AttributeEncoder.fit(column, **options)  # type: ignore[arg-type]


def informative_encoder(user_features: pd.DataFrame, matrix: sp.csr_matrix) -> AttributeEncoder:
    """`dataset_encoder` restricted to the keys whose segments differ in taste in ``matrix`` (the
    users x items training matrix) by more than chance (`estimate_shrinkage`): the others would
    only give a ranker noise to overfit."""
    encoder = dataset_encoder(user_features)
    if encoder.n_attributes == 0:
        return encoder
    segments = SegmentLift.build(dataset_codes(user_features, encoder), matrix, encoder.sizes())
    return encoder.restrict(
        [n for n, m in zip(encoder.names, segments.shrinkage, strict=True) if np.isfinite(m)]
    )


def dataset_codes(user_features: pd.DataFrame, encoder: AttributeEncoder) -> np.ndarray:
    """``int32[n_users, n_attributes]`` codes of a Dataset's users (-1 without attributes)."""
    column = user_attribute_column(user_features)
    if column is None or encoder.n_attributes == 0:
        return np.full((len(user_features), encoder.n_attributes), -1, dtype=np.int32)
    return encoder.encode(column)


# --- segment popularity ------------------------------------------------------------------------


@dataclass
class SegmentLift:
    """How much more (log scale) each item is taken up within each attribute segment than overall.

    Segment row ``r = offsets[a] + code`` is the users whose attribute ``a`` has that code. With
    ``g_i`` the item's smoothed share of the users who report attribute ``a`` and ``n_r`` the
    segment's users, the segment share is shrunk towards ``g_i`` with ``m_a`` pseudo-users, ``s_ri = (count_ri + m_a g_i) /
    (n_r + m_a)``, and ``log(s_ri / g_i) = base[r] + lift[r, i]``: ``base[r] = log(m_a / (n_r +
    m_a))`` for every item the segment never took, the sparse ``lift`` the rest. A small segment
    therefore says little, and a large one the truth.

    ``m_a`` is estimated per attribute unless given (`estimate_shrinkage`): an attribute whose
    segments differ no more than chance would make them gets ``m_a = inf``, a lift of 0, and
    leaves the ranking alone.
    """

    offsets: np.ndarray  # int64[n_attributes + 1]
    base: np.ndarray  # float32[n_rows]
    lift: sp.csr_matrix  # float32 n_rows x n_items
    log_share: np.ndarray  # float32[n_items]: log of the item's smoothed share of all users
    shrinkage: np.ndarray  # float64[n_attributes]: m_a (inf: the attribute is ignored)

    @classmethod
    def build(
        cls, codes: np.ndarray, matrix: sp.csr_matrix, sizes: np.ndarray, shrinkage: float | None = None
    ) -> SegmentLift:
        """From user codes (``int32[n_users, A]``) and the users x items matrix (any positive
        value counts the pair once). ``shrinkage``: one ``m`` for every attribute; None estimates
        each attribute's from the data."""
        binary = matrix.tocsr(copy=True)
        binary.data = (binary.data > 0).astype(np.float32)
        binary.eliminate_zeros()
        active = np.diff(binary.indptr) > 0  # users without items say nothing about item shares
        n_active = float(active.sum())
        popularity = np.asarray(binary.sum(axis=0)).ravel()
        share = (popularity + 0.5) / (n_active + 1.0)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        members = membership(codes, offsets, active)
        counts = (members.T @ binary).tocsr()  # rows x items: the segment's users who took the item
        counts.sort_indices()
        segment_users = np.asarray(members.sum(axis=0)).ravel()
        attribute_of_row = np.repeat(np.arange(len(sizes)), sizes)
        # Each attribute's segments are compared with the users who report it, not with everybody:
        # where only some users have attributes (dunnhumby: a third), those users may differ from
        # the rest as a group, and that would make every key look informative.
        reporting = sp.csr_matrix(((codes >= 0) & active[:, None]).astype(np.float32))
        population = np.asarray((reporting.T @ binary).todense(), dtype=np.float64)  # A x items
        population_users = np.asarray(reporting.sum(axis=0)).ravel().astype(np.float64)
        if shrinkage is None:
            m_attr = estimate_shrinkage(
                counts,
                segment_users,
                population / np.maximum(population_users, 1.0)[:, None],
                attribute_of_row,
            )
        else:
            m_attr = np.full(len(sizes), float(shrinkage))
        m = m_attr[attribute_of_row]
        informative = np.isfinite(m)
        m_safe = np.where(informative, m, 1.0)
        base = np.where(informative, np.log(m_safe / (segment_users + m_safe)), 0.0)
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        population_share = (population + 0.5) / (population_users + 1.0)[:, None]
        g = population_share[attribute_of_row[rows], counts.indices]
        mr = m_safe[rows]
        with np.errstate(divide="ignore"):
            value = np.log(counts.data + mr * g) - np.log(segment_users[rows] + mr) - np.log(g) - base[rows]
        value[~informative[rows]] = 0.0
        lift = sp.csr_matrix((value.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape)
        lift.eliminate_zeros()
        lift.sort_indices()
        return cls(offsets, base.astype(np.float32), lift, np.log(share).astype(np.float32), m_attr)

    @property
    def n_attributes(self) -> int:
        return len(self.offsets) - 1

    def scores(self, codes: np.ndarray) -> np.ndarray:
        """``float32[n, n_items]``: ``log g_i`` plus the mean log lift of the row's known segments
        of informative attributes. The mean, not the naive-Bayes sum: attributes are correlated
        (household size, composition, kids), and a sum counts the few households behind a rare
        item once per attribute they share, which ranks those rare items first. A row with no
        known informative attribute gets global popularity."""
        informative = np.isfinite(self.shrinkage)
        known = (codes >= 0) & informative[None, :]
        members = membership(np.where(known, codes, -1), self.offsets)
        dense = np.asarray((members @ self.lift).todense(), dtype=np.float32)
        dense += (members @ self.base)[:, None].astype(np.float32)
        dense /= np.maximum(known.sum(axis=1), 1)[:, None].astype(np.float32)
        dense += self.log_share[None, :]
        return dense

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}offsets": self.offsets,
            f"{prefix}base": self.base,
            f"{prefix}log_share": self.log_share,
            f"{prefix}shrinkage": self.shrinkage,
            f"{prefix}lift__data": self.lift.data,
            f"{prefix}lift__indices": self.lift.indices,
            f"{prefix}lift__indptr": self.lift.indptr,
            f"{prefix}lift__shape": np.asarray(self.lift.shape),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> SegmentLift:
        lift = sp.csr_matrix(
            (
                arrays[f"{prefix}lift__data"],
                arrays[f"{prefix}lift__indices"],
                arrays[f"{prefix}lift__indptr"],
            ),
            shape=tuple(int(x) for x in arrays[f"{prefix}lift__shape"]),
        )
        return cls(
            arrays[f"{prefix}offsets"],
            arrays[f"{prefix}base"],
            lift,
            arrays[f"{prefix}log_share"],
            arrays[f"{prefix}shrinkage"],
        )


def membership(codes: np.ndarray, offsets: np.ndarray, keep: np.ndarray | None = None) -> sp.csr_matrix:
    """users x segment rows, 1 where the user's attribute ``a`` has the row's code."""
    n = codes.shape[0]
    known = codes >= 0
    if keep is not None:
        known &= keep[:, None]
    user, attribute = np.nonzero(known)
    rows = offsets[attribute] + codes[user, attribute]
    return sp.csr_matrix((np.ones(len(user), dtype=np.float32), (user, rows)), shape=(n, int(offsets[-1])))


def estimate_shrinkage(
    counts: sp.csr_matrix, segment_users: np.ndarray, shares: np.ndarray, attribute_of_row: np.ndarray
) -> np.ndarray:
    """Per attribute the pseudo-users ``m`` of a beta-binomial model of the segments' item shares.

    ``shares``: ``[n_attributes, n_items]``, each item's share among the users who report the
    attribute. If a segment's true share of item i is drawn around that share ``g`` with variance
    ``rho g(1-g)`` (``rho = 1/(m+1)``), then ``E[n (p - g)^2 / (g(1-g))] = 1 + rho (n - 1)`` for a
    segment of ``n`` users with observed share ``p``. Solving over every (segment, item) pair of
    the attribute, each weighted by ``g`` (method of moments), gives ``rho``; ``rho <= 0``
    (segments differ no more than sampling does) gives ``m = inf``. ``g`` is estimated too, so a
    small positive ``rho`` is expected by chance; it gives a large ``m``, a small effect.
    """
    n_attributes = len(shares)
    out = np.full(n_attributes, np.inf)
    for a in range(n_attributes):
        on = np.flatnonzero(attribute_of_row == a)
        g = np.clip(shares[a], 0.0, 1.0)
        usable = (g > 0) & (g < 1)
        variance = np.where(usable, g * (1.0 - g), 1.0)
        # Pairs weighted by the item's share: the popular items are the ones a segment list ranks,
        # and a rare item's term (one buyer in a small segment) is mostly the buyer's own volume.
        w = np.where(usable, g, 0.0)
        # Every pair as if the segment never took the item, then the pairs it did take corrected.
        n = segment_users[on].astype(np.float64)
        zero_terms = n * float(np.sum(w * g * g / variance))
        part = counts[on]
        rows = np.repeat(np.arange(len(on)), np.diff(part.indptr))
        gi = g[part.indices]
        safe_n = np.maximum(n[rows], 1.0)
        correction = (
            w[part.indices] * ((part.data / safe_n - gi) ** 2 - gi * gi) * safe_n / variance[part.indices]
        )
        statistic = zero_terms + np.bincount(rows, weights=correction, minlength=len(on))
        total = float(w.sum())
        excess = statistic - total * (n > 0)  # minus E[...] under no difference, 1 per pair
        denominator = float((np.maximum(n - 1.0, 0.0) * total).sum())
        rho = float(excess.sum()) / denominator if denominator > 0 else 0.0
        if rho > 0:
            out[a] = max(1.0 / rho - 1.0, 1.0)
    return out
