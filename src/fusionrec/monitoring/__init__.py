"""Monitoring of the running service: `metrics.ServiceMetrics` (Prometheus counters and histograms),
`alert_config.AlertConfig` (thresholds) and `alerts.AlertLoop` (the rules evaluated over a window)."""
