"""fusionrec: a recommender system for online shops."""

__version__ = "0.1.0"
