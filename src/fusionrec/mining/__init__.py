"""Item-pair mining over events: association rules over baskets and time-windowed co-visitation.

Plain functions below the models, shared by the recommenders that wrap them
(`fusionrec.models.association`), the reports (`fusionrec.analytics.rules`) and the batch jobs
(`fusionrec.engine.jobs`). They depend on the data layer only.

* `fusionrec.mining.rules`: baskets, pairwise rules with support, confidence and lift;
* `fusionrec.mining.covisitation`: item x item weights of items used close together in time;
* `fusionrec.mining.neighbours`: `prune_rows`, each item's strongest neighbours.
"""
