"""Offline evaluation: `metrics` (HR, Recall, NDCG, MAP, MRR, coverage, ... checked against ranx;
`evaluate_rankings`, `grouped_ndcg`), `protocol` (`evaluate_model`, full and sampled ranking),
`benchmarks` (the datasets `fusionrec evaluate --dataset` knows, with their published numbers) and
`leaderboard` (tables, Markdown and plots)."""
