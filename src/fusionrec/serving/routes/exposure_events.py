"""POST /v1/exposures/{exposure_id}/events: a page reports a view, click or add-to-cart of an item
it was shown in the answer ``exposure_id`` (what the widget of /sdk/fusionrec.js sends).

The event is stored like any other (the same validation and store path as ``POST /v1/events``,
stamped by the server's clock, so it never predates the exposure it answers) and its link to the
exposure is kept in ``exposure_events``. A web page's publishable ``events`` key may call it from
the ``cors_origins`` allow-list; a write key too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.concurrency import run_in_threadpool

from fusionrec.analytics.tables import log_exposure_events
from fusionrec.data.validate import IngestError
from fusionrec.serving.routes.recommendations import service
from fusionrec.serving.routes.schemas import ExposureEventAccepted, ExposureEventIn, FastJSON
from fusionrec.serving.security import require, require_json
from fusionrec.serving.service import Service

router = APIRouter(prefix="/v1", tags=["events"])
ExposureId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
# A click leads from the list to the item: the page it happened on is the recommendation itself.
PAGES = {"click": "recommendation"}


@router.post(
    "/exposures/{exposure_id}/events",
    status_code=202,
    response_model=ExposureEventAccepted,
    dependencies=[Depends(require("write", publishable=True)), Depends(require_json)],
)
async def post_exposure_event(
    exposure_id: ExposureId, body: ExposureEventIn, svc: Annotated[Service, Depends(service)]
) -> FastJSON:
    """Store a view, click or add-to-cart of an item shown in ``exposure_id``, linked to it."""
    try:
        answer = await run_in_threadpool(record_exposure_event, svc, exposure_id, body)
    except IngestError as error:
        raise HTTPException(422, detail=str(error)) from None
    return FastJSON(answer, status_code=202)


def record_exposure_event(svc: Service, exposure_id: str, body: ExposureEventIn) -> dict[str, Any]:
    """Store the event, then its link to the exposure (only when the event is in the store: a
    quarantined event, or one of an erased user, links nothing)."""
    event_id = body.event_id or uuid.uuid4().hex
    now = datetime.now(UTC)
    row = {
        "event_id": event_id,
        "user_id": body.user_id,
        "session_id": body.session_id,
        "item_id": body.item_id,
        "event_type": body.event_type,
        "timestamp": now.isoformat(),
        "quantity": body.quantity,
        "price": body.price,
        "page": PAGES.get(body.event_type),
    }
    report = svc.ingest([row], "widget")
    if report.stored or report.duplicates:
        link = {
            "event_id": event_id,
            "exposure_id": exposure_id,
            "event_type": body.event_type,
            "item_id": body.item_id,
            "timestamp": now,
        }
        svc.on_writer(lambda: log_exposure_events(svc.store, [link], create=False))  # ensured at start
    return {
        "event_id": event_id,
        "exposure_id": exposure_id,
        "stored": report.stored,
        "duplicates": report.duplicates,
        "quarantined": report.quarantined,
        "reasons": dict(report.to_dict()["reasons"]),
    }
