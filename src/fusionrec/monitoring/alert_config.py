"""The thresholds of the alert rules (`fusionrec.monitoring.alerts`), the ``[serving] alerts`` settings.

A module of its own, with pydantic only, so reading the service settings imports no metrics code.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class EmailConfig(BaseModel):
    """``[serving.alerts.email]``: where alert e-mails go, through which SMTP server."""

    model_config = ConfigDict(extra="forbid")

    host: str
    port: int = Field(25, ge=1, le=65535)
    sender: str
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None  # or FUSIONREC_SERVING_ALERTS__EMAIL__PASSWORD


class AlertConfig(BaseModel):
    """Thresholds of the alert rules evaluated every ``interval_s`` over the last ``window_s``."""

    model_config = ConfigDict(extra="forbid")

    interval_s: float = Field(30.0, gt=0)
    window_s: float = Field(300.0, gt=0)
    p99_latency_ms: float = Field(50.0, gt=0)
    error_rate: float = Field(0.01, ge=0, le=1)
    ctr_drop: float = Field(0.3, gt=0, le=1)  # relative drop of CTR against the previous window
    min_requests: int = Field(100, ge=1)  # below this a window is too small to alert on
    # Who is told (`fusionrec.monitoring.notify`): once when a rule fires, once when it resolves.
    webhook_url: str | None = Field(None, pattern=r"^https?://")  # Slack-compatible JSON
    email: EmailConfig | None = None
    repeat_s: float | None = Field(3600.0, gt=0)  # told again while still firing; None = once
    service_name: str = "fusionrec"  # names the service in each notice
