"""Business analytics over the event store: what a shop manager reads.

- `queries` / `kpis`: every KPI's SQL once (funnel, CTR, conversion, bounce, depth, AOV, CPA,
  retention), for DuckDB, PostgreSQL and, transpiled, Spark; `funnel`: the funnel by step and by category.
- `segments` (RFM, K-means, DBSCAN), `forecast` (statsmodels ETS), `experiments` (A/B analysis),
  `rules` (association rules for the report).
- `tables`: the `exposures` and `campaign_costs` tables; `report.build_report`: the offline HTML
  report; `dashboard`: the live dashboard `fusionrec serve` mounts at /dashboard.
- `promotions`: the promotions calendar; `campaigns`: CPA and ROAS per campaign and
  `campaign_analysis`; `effects` / `did`: what a promotion or campaign did (difference-in-differences);
  `campaign_section`: the report's section on them.
"""
