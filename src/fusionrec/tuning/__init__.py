"""Choosing a pipeline on validation data: the automatic search (`auto.select_pipeline`, the model
``auto``), its data-driven plan and portfolio (`portfolio`), its folds (`folds`), and the
hyperparameter search over a given space (`search.tune`, Optuna TPE or a grid).

Importing the package registers the model ``auto`` with `fusionrec.models.registry`.
"""

from fusionrec.models.registry import register_models

register_models({"auto": "fusionrec.tuning.auto_model:AutoRecommender"})
