"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from fusionrec.monitoring.metrics import CONTENT_TYPE_LATEST
from fusionrec.serving.preparation import PRECOMPUTING_GUESTS
from fusionrec.serving.routes.recommendations import service
from fusionrec.serving.routes.schemas import FastJSON
from fusionrec.serving.security import require
from fusionrec.serving.service import Service

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(svc: Annotated[Service, Depends(service)]) -> FastJSON:
    """Liveness: the process answers (with the state of its parts)."""
    redis = None if svc.redis is None else svc.redis.available
    alerts = (
        [a.rule for a in getattr(svc, "alert_loop", None).last] if getattr(svc, "alert_loop", None) else []
    )
    # "worker": the answering process, so several workers behind one port can be told apart.
    return FastJSON({"status": "ok", "redis": redis, "alerts": alerts, "worker": os.getpid()})


@router.get("/readyz")
async def readyz(svc: Annotated[Service, Depends(service)]) -> FastJSON:
    """Readiness: a model version is active (503 otherwise)."""
    active = svc.registry.active
    if active is None:
        return FastJSON({"ready": False, "model_version": None}, status_code=503)
    expected = svc.settings.precompute_users or svc.settings.batch_lists
    # The guests' lists come after the known users' (`VersionPreparation._precompute_guests`).
    precomputed = (
        "precomputed" in active.extras and PRECOMPUTING_GUESTS not in active.extras
    ) or not expected
    return FastJSON({"ready": True, "model_version": active.version, "precomputed": precomputed})


@router.get("/metrics", dependencies=[Depends(require("admin"))])
async def metrics(svc: Annotated[Service, Depends(service)]) -> Response:
    """Prometheus exposition."""
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)
