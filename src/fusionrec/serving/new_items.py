"""New items: catalogue items the loaded model does not know, recommendable from the moment they are put.

A model knows the items it was trained on; an item added since (``PUT /v1/items/{id}``, an items
file) has no index in it, so no model score, neighbour list or trending count. `NewItemIndex` holds
those items for one model version: their content vectors in a `ContentSpace` fitted on the whole
catalogue (TF-IDF over title and description words, and exact tokens for the category path, brand
and tags, as the ``content_tfidf`` model builds them), their category and their rule attributes.
Their first events are counted live (`serving.new_item_counters`: in memory, or in Redis so every worker sees
them), and at answer time `NewItemIndex.picks` proposes a bounded few of them for the visitor:

* **affinity** ``a``: how much the visitor likes the item's category (their history's share of it,
  the favourite category = 1; the same top level counts half; the category asked for or of the
  current page counts 1), or the content cosine with their recent items, whichever is larger;
* **prior** ``p = e / (e + m)``: ``e`` the item's live evidence (event-type weights: a purchase 8
  views), ``m`` the median popularity (users) of the known items of its category, a pseudo-count:
  an item with as much evidence as a typical item of its category counts one half;
* the item goes in at rank ``floor(n * (1 - a * p))`` of the page's ``n`` when ``a * p`` reaches
  ``min_score``; an item with no evidence yet goes in only as an exploration slot (the page's last
  position) for a seeded share of the visitors who like its category.

Insertion by rank, not by score, because the model's scores have no common scale with ``a * p``.
An item's precomputed vectors (the catalogue's ``vectors``: an image embedding ...) join the
TF-IDF blocks as one more block, so a new item known only by its image still has neighbours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from fusionrec.data import item_vectors
from fusionrec.data.item_vectors import VECTORS_COLUMN
from fusionrec.data.schema import CATEGORY_SEPARATOR
from fusionrec.models.content import item_texts, item_tokens

if TYPE_CHECKING:
    from fusionrec.serving.catalogue import Catalogue
    from fusionrec.serving.online import LiveEvents
    from fusionrec.serving.registry import LoadedVersion

SOURCE = "new_item"  # source label of the items this module proposes


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _top_level(category: str | None) -> str | None:
    return category.split(CATEGORY_SEPARATOR)[0].strip() if category else None


@dataclass(frozen=True)
class ContentSpace:
    """A TF-IDF space fitted on a catalogue, and the vectors of a model's items in it.

    ``known``: L2-normalised rows aligned with the model's item indices (zero where the catalogue
    has no row for the item). `transform` places any catalogue rows in the same space (words and
    tokens unseen at fitting are ignored).
    """

    vectorizers: tuple[tuple[str, TfidfVectorizer], ...]  # field -> fitted vectoriser
    known: sp.csr_matrix
    # The items' own precomputed vectors (``vectors`` column: an image embedding ...), one block
    # beside the TF-IDF ones: name -> its mean over the catalogue (`item_vectors.embed` centres).
    vector_means: tuple[tuple[str, np.ndarray], ...] = ()

    @classmethod
    def fit(cls, catalogue: pd.DataFrame, item_ids: np.ndarray) -> ContentSpace:
        """Fit on every catalogue row (``catalogue`` indexed by item id), vectorise ``item_ids``."""
        documents = _documents(catalogue)
        fitted: list[tuple[str, TfidfVectorizer]] = []
        for name, docs in documents.items():
            if name == "text":
                vectorizer = TfidfVectorizer(
                    strip_accents="unicode", sublinear_tf=True, max_features=50_000, dtype=np.float32
                )
            else:
                vectorizer = TfidfVectorizer(analyzer=_identity, dtype=np.float32)
            try:
                vectorizer.fit(docs)
            except ValueError:  # sklearn: "empty vocabulary" when no item has this field
                continue
            fitted.append((name, vectorizer))
        means = _vector_means(catalogue)
        space = cls(tuple(fitted), sp.csr_matrix((len(item_ids), 0), dtype=np.float32), means)
        rows = catalogue.reindex(pd.Index(np.asarray(item_ids).astype(str)))
        return cls(space.vectorizers, space.transform(rows), means)

    @property
    def n_features(self) -> int:
        words = sum(len(v.vocabulary_) for _, v in self.vectorizers)
        return int(words + sum(len(mean) for _, mean in self.vector_means))

    def transform(self, rows: pd.DataFrame) -> sp.csr_matrix:
        """L2-normalised vectors of catalogue ``rows``: each field's block normalised, then stacked."""
        if not (self.vectorizers or self.vector_means) or not len(rows):
            return sp.csr_matrix((len(rows), self.n_features), dtype=np.float32)
        documents = _documents(rows)
        blocks = [
            normalize(vectorizer.transform(documents[name]).astype(np.float32), norm="l2", axis=1)
            for name, vectorizer in self.vectorizers
        ]
        if self.vector_means:
            blocks.append(sp.csr_matrix(_vector_block(rows, self.vector_means)))
        return normalize(sp.hstack(blocks, format="csr"), norm="l2", axis=1).tocsr()


def _cells(rows: pd.DataFrame) -> list[dict[str, Any] | None]:
    """Each row's precomputed vectors as a plain dict (None: none or unreadable)."""
    if VECTORS_COLUMN not in rows.columns:
        return [None] * len(rows)
    out: list[dict[str, Any] | None] = []
    for cell in rows[VECTORS_COLUMN].tolist():
        try:
            out.append(item_vectors.cell_mapping(cell))
        except ValueError:
            out.append(None)
    return out


def _vector_means(catalogue: pd.DataFrame) -> tuple[tuple[str, np.ndarray], ...]:
    """Each vector name's mean over the catalogue items that carry it with the usual length."""
    cells = [c for c in _cells(catalogue) if c]
    means = []
    for name, dim in sorted(item_vectors.dims_of(cells).items()):
        values = [np.asarray(c[name], dtype=np.float32).ravel() for c in cells if c.get(name) is not None]
        values = [v for v in values if v.shape == (dim,)]
        if values:
            means.append((name, np.mean(values, axis=0).astype(np.float32)))
    return tuple(means)


def _vector_block(rows: pd.DataFrame, means: tuple[tuple[str, np.ndarray], ...]) -> np.ndarray:
    """Rows' vectors centred and normalised as `item_vectors.embed` does (zeros where absent)."""
    names, by_name = [name for name, _ in means], dict(means)
    width = sum(len(mean) for _, mean in means)
    block = np.zeros((len(rows), width), dtype=np.float32)
    for i, cell in enumerate(_cells(rows)):
        if cell:
            try:
                block[i] = item_vectors.embed(cell, names, by_name)
            except ValueError:  # a length other than the catalogue's: left out, not mistaken
                continue
    return block


def _documents(rows: pd.DataFrame) -> dict[str, list[Any]]:
    frame = rows.reset_index(drop=True)
    tokens = item_tokens(frame)
    return {"text": item_texts(frame), **tokens}


@dataclass(frozen=True)
class Visitor:
    """What `NewItemIndex.picks` needs to know about the visitor of one request."""

    key: str  # "u:<id>" or "s:<id>": seeds the exploration draw
    history: np.ndarray  # model item indices: training and live items, newest last
    codes: np.ndarray  # the catalogue view's category code of each history item (-1: none)
    names: list[str]  # the view's category names (`CatalogueView.categories`)
    focus: str | None = None  # the category asked for, or of the current page
    blocked: frozenset[str] = frozenset()  # ids never to propose (seen, bought, excluded, the page)
    # The items whose content neighbours count (None: the last `Tuning.recent` of ``history``).
    recent: np.ndarray | None = None


@dataclass(frozen=True)
class Filters:
    """The request's and the rules' filters, as they apply to new items."""

    drop_hidden: bool = True
    drop_out_of_stock: bool = True
    category: str | None = None
    exclude_categories: Sequence[str] = ()
    min_price: float | None = None
    max_price: float | None = None


@dataclass(frozen=True)
class Pick:
    item_id: str
    position: int  # 0-based rank in the page's ranked list
    score: float  # a * p (0 for an exploration slot)


@dataclass(frozen=True)
class Tuning:
    """The ``new_item_*`` settings."""

    min_score: float = 0.15
    explore: float = 0.05
    per_page: int = 3
    similar_min: float = 0.3
    recent: int = 5  # history items whose content seeds the similarity


@dataclass
class NewItemIndex:
    """The new items of one model version (immutable: a change builds a new index)."""

    version: str
    space: ContentSpace
    ids: list[str]
    vectors: sp.csr_matrix  # len(ids) x features, L2-normalised rows
    category: np.ndarray  # object: category path or None
    hidden: np.ndarray  # bool
    in_stock: np.ndarray  # bool
    price: np.ndarray  # float64, NaN = unknown
    pseudo: np.ndarray  # float64: the prior's pseudo-count per item (its category's median popularity)
    rows: pd.DataFrame  # the new items' catalogue rows (indexed by item id): what a change rebuilds from
    tuning: Tuning = field(default_factory=Tuning)
    position: dict[str, int] = field(init=False)
    # Categories as codes into a few names: a request's work is per category, not per item.
    names: list[str] = field(init=False)
    code: np.ndarray = field(init=False)  # int64 per item, -1 = none
    top_names: list[str] = field(init=False)
    top_code: np.ndarray = field(init=False)
    # Model item x new item cosines (each new item's closest model items): a request reads the
    # rows of its recent items, a similar list the row of its item; no sparse algebra per request.
    near: sp.csr_matrix = field(init=False)
    _maps: tuple[list[str], np.ndarray, np.ndarray] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.position = {item: j for j, item in enumerate(self.ids)}
        codes, names = pd.factorize(pd.Series(self.category, dtype=object), use_na_sentinel=True)
        self.code, self.names = codes.astype(np.int64), [str(n) for n in names]
        tops = pd.Series([_top_level(c) for c in self.category], dtype=object)
        top_codes, top_names = pd.factorize(tops, use_na_sentinel=True)
        self.top_code, self.top_names = top_codes.astype(np.int64), [str(n) for n in top_names]
        self.near = _reverse_neighbours(self.space.known, self.vectors)

    def _name_maps(self, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """For each of a catalogue view's category names, its index in ``self.names`` and in
        ``self.top_names`` (-1: no new item there); computed once per view."""
        maps = self._maps
        if maps is not None and maps[0] is names:
            return maps[1], maps[2]
        exact_of = {name: i for i, name in enumerate(self.names)}
        top_of = {name: i for i, name in enumerate(self.top_names)}
        exact = np.array([exact_of.get(name, -1) for name in names], dtype=np.int64)
        top = np.array([top_of.get(_top_level(name) or "", -1) for name in names], dtype=np.int64)
        self._maps = (names, exact, top)
        return exact, top

    def _near_row(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """(new item positions, cosines) close in content to the model's item ``item``."""
        if not 0 <= item < self.near.shape[0]:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        start, end = self.near.indptr[item], self.near.indptr[item + 1]
        return self.near.indices[start:end], self.near.data[start:end]

    def _per_item(self, per_name: list[float] | np.ndarray, codes: np.ndarray) -> np.ndarray:
        """A value per category name spread onto the items (0 for items without a category)."""
        values = np.r_[np.asarray(per_name, dtype=np.float64), 0.0]
        return values[codes]  # code -1 picks the trailing 0

    def _under(self, prefix: str) -> np.ndarray:
        """Which items are in category ``prefix`` or below it."""
        below = prefix + CATEGORY_SEPARATOR
        return self._per_item([n == prefix or n.startswith(below) for n in self.names], self.code) > 0

    def __len__(self) -> int:
        return len(self.ids)

    # --- building ------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        version: str,
        catalogue: pd.DataFrame,
        item_ids: np.ndarray,
        item_index: Mapping[str, int],
        item_category: np.ndarray,
        popularity: np.ndarray,
        tuning: Tuning,
    ) -> NewItemIndex:
        """The catalogue's items that ``item_index`` lacks (``catalogue`` indexed by item id)."""
        space = ContentSpace.fit(catalogue, item_ids)
        new = [str(i) for i in catalogue.index if str(i) not in item_index]
        rows = catalogue.loc[new] if new else catalogue.iloc[:0]
        return cls._of(version, space, rows, item_category, popularity, tuning)

    @classmethod
    def _of(
        cls,
        version: str,
        space: ContentSpace,
        rows: pd.DataFrame,
        item_category: np.ndarray,
        popularity: np.ndarray,
        tuning: Tuning,
    ) -> NewItemIndex:
        category = _values(rows, "category")
        category = np.array([c if isinstance(c, str) and c else None for c in category], dtype=object)
        hidden = _values(rows, "hidden")
        in_stock = _values(rows, "in_stock")
        return cls(
            version=version,
            space=space,
            ids=[str(i) for i in rows.index],
            vectors=space.transform(rows),
            category=category,
            hidden=np.array([bool(v) if _known(v) else False for v in hidden], dtype=bool),
            in_stock=np.array([bool(v) if _known(v) else True for v in in_stock], dtype=bool),
            price=pd.to_numeric(pd.Series(_values(rows, "price")), errors="coerce").to_numpy(np.float64),
            pseudo=_pseudo_counts(category, item_category, popularity),
            rows=rows,
            tuning=tuning,
        )

    def with_item(
        self,
        item_id: str,
        row: pd.DataFrame,
        item_index: Mapping[str, int],
        item_category: np.ndarray,
        popularity: np.ndarray,
    ) -> NewItemIndex:
        """This index with ``item_id``'s catalogue ``row`` (one-row frame) put in or replaced;
        unchanged when the model knows the item (its index is the model's)."""
        if item_id in item_index:
            return self
        others = self.rows.drop(index=item_id, errors="ignore").astype(object)
        rows = pd.concat([others, row.astype(object)]) if len(others) else row.astype(object)
        return NewItemIndex._of(self.version, self.space, rows, item_category, popularity, self.tuning)

    # --- answering -------------------------------------------------------------------------------

    def eligible(self, filters: Filters, blocked: Iterable[str] = ()) -> np.ndarray:
        """Boolean mask of the new items the filters allow."""
        keep = np.ones(len(self.ids), dtype=bool)
        if filters.drop_hidden:
            keep &= ~self.hidden
        if filters.drop_out_of_stock:
            keep &= self.in_stock
        if filters.category:
            keep &= self._under(filters.category)
        for prefix in filters.exclude_categories:
            keep &= ~self._under(prefix)
        if filters.min_price is not None:
            keep &= ~np.isnan(self.price) & (self.price >= filters.min_price)
        if filters.max_price is not None:
            keep &= ~np.isnan(self.price) & (self.price <= filters.max_price)
        position = self.position
        for item in blocked:
            j = position.get(item)
            if j is not None:
                keep[j] = False
        return keep

    def prior(self, evidence: np.ndarray) -> np.ndarray:
        """``e / (e + m)``: 0 with no evidence, one half with as much as a typical item of the category."""
        e = np.maximum(np.asarray(evidence, dtype=np.float64), 0.0)
        return e / (e + self.pseudo)

    def affinity(self, visitor: Visitor) -> np.ndarray:
        """Per new item: the visitor's liking of its category, or its content cosine with the
        profile of their recent items, whichever is larger (0..1)."""
        out = np.zeros(len(self.ids))
        codes = visitor.codes[visitor.codes >= 0]
        if len(codes):
            counts = np.bincount(codes, minlength=len(visitor.names)).astype(np.float64)
            present = np.flatnonzero(counts)
            share = counts[present] / counts.max()
            exact_of, top_of = self._name_maps(visitor.names)
            per_name = np.zeros(len(self.names) + 1)  # the extra last cell: items without a category
            exact = exact_of[present]
            per_name[exact[exact >= 0]] = share[exact >= 0]
            per_top = np.zeros(len(self.top_names) + 1)
            top = top_of[present]
            np.maximum.at(per_top, top[top >= 0], share[top >= 0])
            out = np.maximum(per_name[self.code], 0.5 * per_top[self.top_code])
        if visitor.focus:
            out = np.maximum(out, self._under(visitor.focus).astype(np.float64))
        recent = visitor.recent if visitor.recent is not None else visitor.history[-self.tuning.recent :]
        return np.maximum(out, self._profile_cosine(np.asarray(recent, dtype=np.int64)))

    def _profile_cosine(self, items: np.ndarray) -> np.ndarray:
        """Per new item, its cosine with the sum of the model ``items``' content vectors.

        A profile rather than the closest single item: what the recent items share (a brand, a
        line) outweighs one item's near copy. On the amazon-beauty live check this lifted new-item
        HR@20 from 0.0426 to 0.0534 and left the warm lists less disturbed (docs/benchmarks.md).
        The numerator is read off ``near`` (cosines under its floor count as 0); the profile's
        norm comes from the items' own Gram matrix, a few items square."""
        out = np.zeros(len(self.ids))
        items = items[(items >= 0) & (items < self.near.shape[0])]
        if not len(items):
            return out
        vectors = self.space.known[items]
        norm = float(np.sqrt(max((vectors @ vectors.T).sum(), 0.0)))
        if norm == 0.0:
            return out
        near, cosine = self._near_rows(items)
        np.add.at(out, near, cosine)
        return np.minimum(out / norm, 1.0)

    def _near_rows(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``near`` of the model's ``items`` (valid indices), concatenated (a few numpy
        calls, however many items)."""
        starts, ends = self.near.indptr[items], self.near.indptr[items + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if not total:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        shift = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
        at = shift + np.arange(total)
        return self.near.indices[at], self.near.data[at]

    def picks(self, visitor: Visitor, evidence: np.ndarray, filters: Filters, n: int) -> list[Pick]:
        """At most ``tuning.per_page`` new items for a page of ``n`` ranked items, with their ranks."""
        if not self.ids or n <= 0:
            return []
        keep = self.eligible(filters, visitor.blocked)
        prior = self.prior(evidence)
        # Affinity is at most 1: without an item whose prior reaches min_score, and without an
        # exploration draw for this visitor, there is nothing to pick (the cheap common case).
        explores = self.tuning.explore > 0 and _draw(visitor.key, "explore") < self.tuning.explore
        if not (keep & (prior >= self.tuning.min_score)).any() and not explores:
            return []
        affinity = self.affinity(visitor)
        score = np.where(keep, affinity * prior, 0.0)
        chosen: list[Pick] = []
        for j in np.argsort(-score, kind="stable")[: self.tuning.per_page].tolist():
            if score[j] < self.tuning.min_score:
                break
            chosen.append(Pick(self.ids[j], int(n * (1.0 - score[j])), float(score[j])))
        if explores and len(chosen) < self.tuning.per_page:
            # Items with no evidence yet: a seeded share of the visitors (``explore``) get one of
            # those of a category they like at the page's end, so that first events can come at all.
            fresh = np.flatnonzero(keep & (np.asarray(evidence) <= 0) & (affinity >= 0.5))
            if len(fresh):
                j = int(fresh[int(_draw(visitor.key, "which") * len(fresh))])
                chosen.append(Pick(self.ids[j], n - 1, 0.0))
        return chosen

    def popular(self, evidence: np.ndarray, filters: Filters, k: int) -> list[Pick]:
        """New items for a popular list of ``k`` (within the filters' category): by their prior
        alone, at rank ``floor(k * (1 - p))`` once ``p`` reaches ``min_score``."""
        if not self.ids or k <= 0:
            return []
        score = np.where(self.eligible(filters), self.prior(evidence), 0.0)
        order = np.argsort(-score, kind="stable")[: self.tuning.per_page].tolist()
        return [
            Pick(self.ids[j], int(k * (1.0 - score[j])), float(score[j]))
            for j in order
            if score[j] >= self.tuning.min_score
        ]

    def similar_to_known(self, item: int, evidence: np.ndarray, filters: Filters, k: int) -> list[Pick]:
        """New items close in content to the model's item ``item``, ranked for a list of ``k``:
        score = cosine x (1 + prior) / 2, so they rise with their events."""
        if not self.ids or not 0 <= item < self.space.known.shape[0] or not self.vectors.shape[1]:
            return []
        cosine = np.zeros(len(self.ids))
        near, values = self._near_row(item)
        cosine[near] = values
        return self._similar(cosine, evidence, filters, k)

    def similar_to_new(self, item_id: str, evidence: np.ndarray, filters: Filters, k: int) -> list[Pick]:
        """The other new items close in content to the new item ``item_id`` (as `similar_to_known`)."""
        j = self.position.get(item_id)
        if j is None or not self.vectors.shape[1]:
            return []
        return self._similar(
            np.asarray((self.vectors @ self.vectors[j].T).todense()).ravel(), evidence, filters, k, j
        )

    def _similar(
        self, cosine: np.ndarray, evidence: np.ndarray, filters: Filters, k: int, itself: int = -1
    ) -> list[Pick]:
        score = cosine * (1.0 + self.prior(evidence)) / 2.0
        keep = self.eligible(filters) & (cosine >= self.tuning.similar_min)
        if itself >= 0:
            keep[itself] = False
        order = [j for j in np.argsort(-score, kind="stable").tolist() if keep[j]][: self.tuning.per_page]
        return [Pick(self.ids[j], int(k * (1.0 - score[j])), float(score[j])) for j in order]

    def content_neighbours(self, item_id: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The model's items closest in content to the new item ``item_id``: ``(indices, cosines)``,
        best first, cosine > 0 (one sparse product over the model's items: for one item's page)."""
        j = self.position.get(item_id)
        if j is None or not self.vectors.shape[1]:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        cosine = np.asarray((self.space.known @ self.vectors[j].T).todense()).ravel()
        best = np.argsort(-cosine, kind="stable")[:k]
        best = best[cosine[best] > 0]
        return best.astype(np.int64), cosine[best]


def _reverse_neighbours(
    known: sp.csr_matrix, vectors: sp.csr_matrix, per_item: int = 500, floor: float = 0.05
) -> sp.csr_matrix:
    """Model items x new items: each new item's ``per_item`` closest model items (cosine at least
    ``floor``), the rest left out."""
    shape = (known.shape[0], vectors.shape[0])
    if not shape[0] or not shape[1] or not known.shape[1]:
        return sp.csr_matrix(shape, dtype=np.float64)
    cosine = (known @ vectors.T).tocsc()
    rows, cols, values = [], [], []
    for j in range(shape[1]):
        start, end = cosine.indptr[j], cosine.indptr[j + 1]
        row, value = cosine.indices[start:end], cosine.data[start:end]
        keep = value >= floor
        row, value = row[keep], value[keep]
        if len(value) > per_item:
            best = np.argpartition(-value, per_item - 1)[:per_item]
            row, value = row[best], value[best]
        rows.append(row)
        cols.append(np.full(len(row), j))
        values.append(value)
    return sp.csr_matrix(
        (np.concatenate(values).astype(np.float64), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )


def _values(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name in rows.columns:
        return rows[name].to_numpy(dtype=object)
    return np.full(len(rows), None, dtype=object)


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def _pseudo_counts(category: np.ndarray, item_category: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Per new item, the median popularity of the known items of its category (of its top level
    when its own category has none; of every item when that has none either), at least 1."""
    popularity = np.asarray(popularity, dtype=np.float64)
    overall = float(np.median(popularity[popularity > 0])) if (popularity > 0).any() else 1.0
    frame = pd.DataFrame({"category": pd.Series(item_category, dtype=object), "pop": popularity})
    frame = frame[frame["pop"] > 0]
    exact = frame.groupby("category")["pop"].median().to_dict()
    tops = frame.assign(top=frame["category"].map(_top_level)).groupby("top")["pop"].median().to_dict()
    out = [exact.get(c, tops.get(_top_level(c), overall)) if c else overall for c in category]
    return np.maximum(np.asarray(out, dtype=np.float64), 1.0)


def _draw(visitor: str, item: str) -> float:
    """A uniform number in [0, 1) fixed per (visitor, item): stable answers, seeded exploration."""
    digest = hashlib.blake2b(f"{visitor}|{item}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


# --- a loaded version's index ----------------------------------------------------------------------

EXTRAS_KEY = "new_items"  # LoadedVersion.extras key of the version's NewItemIndex


def build_for(loaded: LoadedVersion, catalogue: Catalogue, tuning: Tuning) -> NewItemIndex:
    """The new items of ``loaded`` in ``catalogue``, attached to its extras (start-up, activation)."""
    view = catalogue.view(loaded.item_ids)
    index = NewItemIndex.build(
        loaded.version,
        catalogue.frame,
        loaded.item_ids,
        loaded.item_index,
        view.category,
        np.asarray(loaded.model.answering.popularity_, dtype=np.float64),
        tuning,
    )
    loaded.extras[EXTRAS_KEY] = index
    return index


def put_into(loaded: LoadedVersion, catalogue: Catalogue, item_id: str) -> None:
    """``item_id``'s row of ``catalogue`` put into ``loaded``'s index (after a PUT of the item)."""
    index: NewItemIndex | None = loaded.extras.get(EXTRAS_KEY)
    if index is None or item_id not in catalogue or item_id in loaded.item_index:
        return
    row = catalogue.frame.loc[[item_id]]
    view = catalogue.view(loaded.item_ids)
    popularity = np.asarray(loaded.model.answering.popularity_, dtype=np.float64)
    loaded.extras[EXTRAS_KEY] = index.with_item(item_id, row, loaded.item_index, view.category, popularity)


def refresh_index(loaded: LoadedVersion, catalogue: Catalogue) -> None:
    """``loaded``'s index rebuilt on a changed ``catalogue`` (its content space kept: fitting
    it again is the start-up's cost, placing the new items in it is cheap)."""
    index: NewItemIndex | None = loaded.extras.get(EXTRAS_KEY)
    if index is None:
        return
    frame = catalogue.frame
    new = [item for item in frame.index.astype(str) if item not in loaded.item_index]
    view = catalogue.view(loaded.item_ids)
    popularity = np.asarray(loaded.model.answering.popularity_, dtype=np.float64)
    rows = frame.loc[new] if new else frame.iloc[:0]
    loaded.extras[EXTRAS_KEY] = NewItemIndex._of(
        index.version, index.space, rows, view.category, popularity, index.tuning
    )


def evidence_of(events: LiveEvents, ids: Mapping[str, int], weights: Mapping[str, float]) -> dict[str, float]:
    """Weighted events per new item of ``ids`` in ``events``.

    A plain loop of dict lookups: a live batch is often one event."""
    out: dict[str, float] = {}
    for item, kind in zip(events.item_id, events.event_type, strict=True):
        key = str(item)
        if key in ids:
            out[key] = out.get(key, 0.0) + weights.get(kind, 0.0)
    return out
