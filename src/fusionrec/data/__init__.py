"""Collecting and preparing the data.

- `schema`: the canonical event, item and user columns and the configurable `EventTypes`.
- `formats`: one reader per public format; `sources.ingest_source` / `ingest.ingest_frame`:
  validate, quarantine, deduplicate and store (`validate`, `batches`).
- `store`: `EventStore` and `open_store(url)` for DuckDB and PostgreSQL.
- `dataset.Dataset`: vocabularies, the weighted user x item matrix, sequences, features;
  `split`: leave-last-out, temporal and fixed splits; `stats.store_stats`.
- `synthetic.generate_shop` / `generate_frames`: the seeded synthetic shop.
"""
