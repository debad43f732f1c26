"""Fused recommenders: candidates from several models, ranking features, a learned ranker.

Importing the package registers its models (`fusion`, `stack`, `blend`, `rrf`) with
`fusionrec.models.registry`; the classes themselves are imported on first use.
"""

from fusionrec.models.registry import register_models

register_models(
    {
        "fusion": "fusionrec.fusion.pipeline:FusionRecommender",
        "stack": "fusionrec.fusion.pipeline:StackRecommender",
        "blend": "fusionrec.fusion.blend:BlendRecommender",
        "rrf": "fusionrec.fusion.blend:RRFRecommender",
    }
)
