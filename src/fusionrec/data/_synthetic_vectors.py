"""Planted image vectors for the synthetic shop: a noisy linear view of each item's hidden factors.

No vision model is run: an item's "image embedding" is ``factors @ projection + noise``, where
the factors are what drives behaviour in the simulator and what a photo could plausibly show:
its category (and department), its brand, its price tier, its appeal (the Zipf popularity weight
within the category) and whether it is trending. How much of that the vector still carries is set
by ``noise`` (the noise's standard deviation over the signal's, per dimension), so the value of
image vectors to a model can be measured against a known truth.
"""

from __future__ import annotations

import numpy as np

from fusionrec.data._synthetic_catalogue import Catalogue

# Dimensions of the hidden factors, per group (random codes per category, department, brand).
CATEGORY_DIMS = 8
DEPARTMENT_DIMS = 4
BRAND_DIMS = 4
FACTOR_NAMES = ("category", "department", "brand", "tier", "appeal", "trending")


def hidden_factors(rng: np.random.Generator, catalogue: Catalogue) -> np.ndarray:
    """``float64[n_items, n_factors]``: standardised codes of each item's planted attributes."""
    tree = catalogue.tree
    n_depts = int(tree.cat_dept.max()) + 1
    category_code = rng.normal(size=(tree.n_cats, CATEGORY_DIMS))
    department_code = rng.normal(size=(n_depts, DEPARTMENT_DIMS))
    brand_code = rng.normal(size=(n_depts * tree.n_brands, BRAND_DIMS))
    dept = tree.cat_dept[catalogue.cat]
    appeal = np.log(catalogue.base_weight)
    columns = [
        category_code[catalogue.cat],
        department_code[dept],
        brand_code[dept * tree.n_brands + catalogue.brand],
        (catalogue.tier.astype(np.float64) - 1.0)[:, None],
        ((appeal - appeal.mean()) / max(float(appeal.std()), 1e-9))[:, None],
        np.log(catalogue.growth)[:, None],
    ]
    return np.hstack(columns)


def image_vectors(rng: np.random.Generator, catalogue: Catalogue, dim: int, noise: float) -> np.ndarray:
    """``float32[n_items, dim]``: hidden factors through a random projection, plus Gaussian noise."""
    factors = hidden_factors(rng, catalogue)
    projection = rng.normal(size=(factors.shape[1], dim)) / np.sqrt(factors.shape[1])
    signal = factors @ projection
    scale = float(signal.std()) or 1.0
    vectors = signal + rng.normal(scale=noise * scale, size=signal.shape)
    return (vectors / scale).astype(np.float32)
