"""The real-time HTTP service (`fusionrec serve`).

- `app.create_app(settings)`: the FastAPI app; `routes/`: its endpoints; `settings`: `ServingSettings`.
- `service.Service`: the store and its writer thread, online state, caches, online ingest, identity
  and erasure; `registry.VersionRegistry`: gate, swap, rollback; `preparation.VersionPreparation`:
  what serving derives per version; `retraining.Retrainer`: training on request and on a schedule.
- `recommend`: the request path (candidates, business rules in `business_rules`, fallbacks, A/B arms
  in `experiments`); `online` / `cache` / `redis_client`: state in process or in Redis; `security`:
  API keys and rate limits; `stream`: the Redis stream consumer.
"""
