"""Learning-to-rank models over candidate features, saved in their libraries' own safe formats.

LightGBM LambdaRank (default, text model), XGBoost ``rank:ndcg`` (JSON model), CatBoost
``YetiRank`` (``.cbm``, CatBoost's own flatbuffers format) and a linear stacking model
(logistic regression on standardised features, JSON). None is ever pickled.
"""

from __future__ import annotations

import json
import logging
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fusionrec.fusion.config import RankerConfig
from fusionrec.fusion.features import CATEGORICAL_PREFIXES


class RankerError(RuntimeError):
    """A ranker was used before fitting, its library is missing, or its file is invalid."""


class Ranker(ABC):
    """Scores candidate rows; trained on groups (one per user) of graded labels."""

    kind: ClassVar[str]

    def __init__(self, config: RankerConfig, seed: int = 42) -> None:
        self.config = config
        self.seed = seed
        self.feature_names: list[str] = []

    @abstractmethod
    def fit(
        self,
        X: np.ndarray,
        labels: np.ndarray,
        group_sizes: np.ndarray,
        feature_names: list[str],
        weights: np.ndarray | None = None,
    ) -> Ranker:
        """Learn from ``X`` rows grouped consecutively by ``group_sizes``."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """float64 score per row (higher is better)."""

    @abstractmethod
    def save(self, directory: Path) -> list[str]:
        """Write the model into ``directory``; returns the file names written."""

    @abstractmethod
    def load(self, directory: Path) -> None:
        """Read what `save` wrote."""

    def importance(self) -> dict[str, float]:
        """Feature importance (gain where the library has it), highest first."""
        return {}

    def contributions(self, X: np.ndarray) -> np.ndarray | None:
        """Per-feature contributions to each row's score (SHAP-style), where supported."""
        return None


def _sorted(names: list[str], values: np.ndarray) -> dict[str, float]:
    order = np.argsort(-values, kind="stable")
    return {names[i]: float(values[i]) for i in order}


class LightGBMRanker(Ranker):
    kind = "lightgbm"
    file_name = "ranker_lightgbm.txt"

    def fit(self, X, labels, group_sizes, feature_names, weights=None):  # type: ignore[no-untyped-def]
        import lightgbm as lgb

        params: dict[str, Any] = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "learning_rate": 0.05,
            "num_leaves": 63,
            "min_data_in_leaf": 50,
            "feature_fraction": 0.9,
            "lambdarank_truncation_level": 30,
            "verbose": -1,
        }
        params.update(self.config.params)
        rounds = int(params.pop("n_estimators", params.pop("num_boost_round", 300)))
        params.update(
            {
                "seed": self.seed,
                "deterministic": True,
                "num_threads": self.config.threads,
                "force_row_wise": True,
            }
        )
        self.feature_names = list(feature_names)
        # Attribute value codes are categories, not quantities (age band 3 is not "more" than 2).
        categorical = [n for n in self.feature_names if n.startswith(CATEGORICAL_PREFIXES)]
        data = lgb.Dataset(
            X,
            label=labels,
            group=group_sizes,
            weight=weights,
            feature_name=self.feature_names,
            categorical_feature=categorical or "auto",
            free_raw_data=True,
        )
        self.booster_ = lgb.train(params, data, num_boost_round=rounds)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._booster().predict(X, num_threads=self.config.threads)

    def _booster(self) -> Any:
        if not hasattr(self, "booster_"):
            raise RankerError("the LightGBM ranker is not fitted")
        return self.booster_

    def save(self, directory: Path) -> list[str]:
        (directory / self.file_name).write_text(self._booster().model_to_string())
        return [self.file_name]

    def load(self, directory: Path) -> None:
        import lightgbm as lgb

        self.booster_ = lgb.Booster(model_str=(directory / self.file_name).read_text())
        self.feature_names = list(self.booster_.feature_name())

    def importance(self) -> dict[str, float]:
        gain = self._booster().feature_importance(importance_type="gain")
        return _sorted(self.feature_names, np.asarray(gain, dtype=np.float64))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return self._booster().predict(X, pred_contrib=True, num_threads=self.config.threads)


class XGBoostRanker(Ranker):
    kind = "xgboost"
    file_name = "ranker_xgboost.json"

    def fit(self, X, labels, group_sizes, feature_names, weights=None):  # type: ignore[no-untyped-def]
        xgb = _optional("xgboost")
        params: dict[str, Any] = {
            "objective": "rank:ndcg",
            "eta": 0.05,
            "max_depth": 8,
            "tree_method": "hist",
            "lambdarank_pair_method": "topk",
            "lambdarank_num_pair_per_sample": 30,
        }
        params.update(self.config.params)
        rounds = int(params.pop("n_estimators", params.pop("num_boost_round", 300)))
        params.update({"seed": self.seed, "nthread": self.config.threads})
        self.feature_names = list(feature_names)
        data = xgb.DMatrix(X, label=labels, feature_names=self.feature_names)
        data.set_group(group_sizes)
        if weights is not None:  # XGBoost ranking weights are per group
            starts = np.concatenate([[0], np.cumsum(group_sizes)[:-1]])
            data.set_weight(weights[starts])
        self.booster_ = xgb.train(params, data, num_boost_round=rounds)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        xgb = _optional("xgboost")
        if not hasattr(self, "booster_"):
            raise RankerError("the XGBoost ranker is not fitted")
        return self.booster_.predict(xgb.DMatrix(X, feature_names=self.feature_names))

    def save(self, directory: Path) -> list[str]:
        self.booster_.save_model(str(directory / self.file_name))
        return [self.file_name]

    def load(self, directory: Path) -> None:
        xgb = _optional("xgboost")
        self.booster_ = xgb.Booster(model_file=str(directory / self.file_name))
        self.booster_.set_param({"nthread": self.config.threads})
        self.feature_names = list(self.booster_.feature_names or [])

    def importance(self) -> dict[str, float]:
        scores = self.booster_.get_score(importance_type="total_gain")
        values = np.array([scores.get(name, 0.0) for name in self.feature_names], dtype=np.float64)
        return _sorted(self.feature_names, values)


class CatBoostRanker(Ranker):
    kind = "catboost"
    file_name = "ranker_catboost.cbm"

    def fit(self, X, labels, group_sizes, feature_names, weights=None):  # type: ignore[no-untyped-def]
        catboost = _optional("catboost")
        params: dict[str, Any] = {"loss_function": "YetiRank", "iterations": 300, "learning_rate": 0.1}
        params.update(self.config.params)
        if "n_estimators" in params:
            params["iterations"] = params.pop("n_estimators")
        params.update({"random_seed": self.seed, "thread_count": self.config.threads, "verbose": False})
        self.feature_names = list(feature_names)
        group_id = np.repeat(np.arange(len(group_sizes)), group_sizes)
        pool = catboost.Pool(X, label=labels, group_id=group_id, feature_names=self.feature_names)
        if weights is not None:
            starts = np.concatenate([[0], np.cumsum(group_sizes)[:-1]])
            pool.set_group_weight(np.repeat(weights[starts], group_sizes))
        self.model_ = catboost.CatBoost(params)
        self.model_.fit(pool)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise RankerError("the CatBoost ranker is not fitted")
        return np.asarray(self.model_.predict(X, thread_count=self.config.threads), dtype=np.float64)

    def save(self, directory: Path) -> list[str]:
        self.model_.save_model(str(directory / self.file_name), format="cbm")
        return [self.file_name]

    def load(self, directory: Path) -> None:
        catboost = _optional("catboost")
        self.model_ = catboost.CatBoost()
        self.model_.load_model(str(directory / self.file_name), format="cbm")
        self.feature_names = list(self.model_.feature_names_)

    def importance(self) -> dict[str, float]:
        # Ranking losses default to LossFunctionChange, which needs the training data again.
        values = np.asarray(
            self.model_.get_feature_importance(type="PredictionValuesChange"), dtype=np.float64
        )
        return _sorted(self.feature_names, values)


class LinearRanker(Ranker):
    """Stacking with a linear meta-model: logistic regression of "relevant" on standardised features.

    Missing values (a source that did not propose the item) become the feature's training mean
    plus a 0/1 missing indicator, so absence itself carries weight.
    """

    kind = "linear"
    file_name = "ranker_linear.json"

    def fit(self, X, labels, group_sizes, feature_names, weights=None):  # type: ignore[no-untyped-def]
        from sklearn.linear_model import LogisticRegression

        self.feature_names = list(feature_names)
        finite = np.where(np.isfinite(X), X, np.nan).astype(np.float64)
        with warnings.catch_warnings():  # an all-missing column (no prices) is fine: mean 0, std 1
            warnings.simplefilter("ignore", RuntimeWarning)
            self.mean_ = np.nan_to_num(np.nanmean(finite, axis=0), nan=0.0)
            self.std_ = np.nan_to_num(np.nanstd(finite, axis=0), nan=1.0)
        self.std_[self.std_ == 0] = 1.0
        params = {"C": 1.0, "max_iter": 500}
        params.update(self.config.params)
        model = LogisticRegression(random_state=self.seed, **params)
        model.fit(self._design(X), (labels > 0).astype(int), sample_weight=weights)
        self.coef_ = model.coef_.ravel().astype(np.float64)
        self.intercept_ = float(model.intercept_[0])
        return self

    def _design(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        missing = ~np.isfinite(X)
        filled = np.where(missing, self.mean_, X)
        return np.hstack([(filled - self.mean_) / self.std_, missing.astype(np.float64)])

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise RankerError("the linear ranker is not fitted")
        return self._design(X) @ self.coef_ + self.intercept_

    def save(self, directory: Path) -> list[str]:
        payload = {
            "feature_names": self.feature_names,
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }
        (directory / self.file_name).write_text(json.dumps(payload))
        return [self.file_name]

    def load(self, directory: Path) -> None:
        payload = json.loads((directory / self.file_name).read_text())
        self.feature_names = payload["feature_names"]
        self.mean_ = np.asarray(payload["mean"], dtype=np.float64)
        self.std_ = np.asarray(payload["std"], dtype=np.float64)
        self.coef_ = np.asarray(payload["coef"], dtype=np.float64)
        self.intercept_ = float(payload["intercept"])

    def importance(self) -> dict[str, float]:
        n = len(self.feature_names)
        return _sorted(self.feature_names, np.abs(self.coef_[:n]))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        n = len(self.feature_names)
        design = self._design(X)
        parts = design[:, :n] * self.coef_[:n] + design[:, n:] * self.coef_[n:]
        return np.hstack([parts, np.full((len(X), 1), self.intercept_)])


RANKERS: dict[str, type[Ranker]] = {
    cls.kind: cls for cls in (LightGBMRanker, XGBoostRanker, CatBoostRanker, LinearRanker)
}


class BaggedRanker(Ranker):
    """``bags`` rankers of one kind, trained with consecutive seeds; a row's score is their mean.

    Seed averaging lowers the variance a single boosted model has from its row and feature
    sampling. Each member is saved in its own folder (``bag0/``, ``bag1/``, ...).
    """

    kind = "bagged"

    def __init__(self, config: RankerConfig, seed: int = 42) -> None:
        super().__init__(config, seed)
        self.members = [RANKERS[config.kind](config, seed + i) for i in range(config.bags)]

    def fit(self, X, labels, group_sizes, feature_names, weights=None):  # type: ignore[no-untyped-def]
        for member in self.members:
            member.fit(X, labels, group_sizes, feature_names, weights)
        self.feature_names = list(feature_names)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.mean([member.predict(X) for member in self.members], axis=0)

    def save(self, directory: Path) -> list[str]:
        names = []
        for i, member in enumerate(self.members):
            folder = directory / f"bag{i}"
            folder.mkdir(parents=True, exist_ok=True)
            names += [f"bag{i}/{name}" for name in member.save(folder)]
        return names

    def load(self, directory: Path) -> None:
        for i, member in enumerate(self.members):
            member.load(directory / f"bag{i}")
        self.feature_names = list(self.members[0].feature_names)

    def importance(self) -> dict[str, float]:
        totals = dict.fromkeys(self.feature_names, 0.0)
        for member in self.members:
            for name, value in member.importance().items():
                totals[name] += value / len(self.members)
        return _sorted(list(totals), np.fromiter(totals.values(), dtype=np.float64))

    def contributions(self, X: np.ndarray) -> np.ndarray | None:
        parts = [member.contributions(X) for member in self.members]
        if any(part is None for part in parts):
            return None
        return np.mean(parts, axis=0)


def make_ranker(config: RankerConfig, seed: int = 42) -> Ranker:
    if config.bags > 1:
        return BaggedRanker(config, seed)
    return RANKERS[config.kind](config, seed)


def _optional(module: str) -> Any:
    from fusionrec.extras import require

    return require(module, f"the {module} ranker")


def unknown_lightgbm_params(params: dict[str, Any]) -> list[str]:
    """The keys of ``params`` that LightGBM does not know (its names and aliases), as LightGBM
    itself reports them while it builds a booster on two rows; ``n_estimators`` counts as known."""
    import lightgbm as lgb

    probe = _LightGBMMessages()
    lgb.register_logger(probe)
    try:
        data = lgb.Dataset(np.zeros((2, 1)), label=[0.0, 1.0], params={"verbose": -1})
        lgb.Booster(params={**params, "objective": "regression", "verbose": 0}, train_set=data)
    except lgb.basic.LightGBMError:
        pass  # a bad value is LightGBM's to report when it trains; names are what is checked here
    finally:
        lgb.register_logger(_LightGBMLog())  # afterwards LightGBM's messages go to Python's logging
    prefix = "Unknown parameter: "
    return [m.split(prefix, 1)[1].strip() for m in probe.messages if prefix in m]


class _LightGBMLog:
    """LightGBM's messages as debug records of the ``lightgbm`` logger."""

    def info(self, message: str) -> None:
        logging.getLogger("lightgbm").debug(message.strip())

    def warning(self, message: str) -> None:
        logging.getLogger("lightgbm").debug(message.strip())


class _LightGBMMessages:
    """A logger for `lightgbm.register_logger` that keeps LightGBM's messages instead of printing them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warning(self, message: str) -> None:
        self.messages.append(message)
