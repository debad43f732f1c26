"""Admin endpoints: catalogue updates, erasure, model versions (activate, rollback, retrain)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool

from fusionrec.serving.logs import without_paths
from fusionrec.serving.registry import RegistryError
from fusionrec.serving.retraining import TooSoonError
from fusionrec.serving.routes.recommendations import service
from fusionrec.serving.routes.schemas import FastJSON, ItemIn
from fusionrec.serving.security import require, require_json
from fusionrec.serving.service import ItemVectorError, Service

router = APIRouter(prefix="/v1", tags=["admin"], dependencies=[Depends(require("admin"))])
Id = Annotated[str, Path(min_length=1, max_length=256)]


@router.put("/items/{item_id}", dependencies=[Depends(require_json)])
async def put_item(item_id: Id, body: ItemIn, svc: Annotated[Service, Depends(service)]) -> FastJSON:
    """Change an item's price, stock, visibility, attributes or vectors (creates it when new)."""
    values = body.model_dump(exclude_unset=True)
    if "attributes" in values and values["attributes"] is not None:
        values["attributes"] = json.dumps(values["attributes"], sort_keys=True)
    try:
        return FastJSON(await run_in_threadpool(svc.put_item, item_id, values))
    except ItemVectorError as error:  # named like pydantic's own 422s: the field, then the problem
        raise HTTPException(
            422,
            detail=[{"loc": ["body", "vectors", error.name], "msg": error.problem, "type": "value_error"}],
        ) from None


@router.delete("/users/{user_id}")
async def delete_user(user_id: Id, svc: Annotated[Service, Depends(service)]) -> FastJSON:
    """Erase a user: events, exposures, online state and cached answers; the id is remembered."""
    return FastJSON(await run_in_threadpool(svc.erase_user, user_id))


@router.get("/models")
async def list_models(svc: Annotated[Service, Depends(service)]) -> FastJSON:
    """Versions in the model directory, the active one flagged."""
    active = svc.registry.active
    versions = without_paths(await run_in_threadpool(svc.registry.versions))  # unreadable ones' errors
    return FastJSON(
        {"active": active.version if active else None, "versions": versions, "training": svc.retrainer.state}
    )


@router.post("/models/{version}/activate")
async def activate(
    version: Annotated[str, Path(pattern=r"^v\d{4,}$")],
    svc: Annotated[Service, Depends(service)],
    force: Annotated[bool, Query(description="swap even if the gate fails")] = False,
) -> FastJSON:
    """Gate and atomically swap in ``version``; 409 with the failed checks when the gate says no."""
    try:
        report = await run_in_threadpool(svc.registry.activate, version, force=force)
    except RegistryError as error:
        raise HTTPException(404, detail=str(error)) from None
    if not report.passed and not force:
        raise HTTPException(409, detail=report.to_dict())
    return FastJSON(report.to_dict())


@router.post("/models/rollback")
async def rollback(svc: Annotated[Service, Depends(service)]) -> FastJSON:
    """Back to the previously active version."""
    try:
        return FastJSON((await run_in_threadpool(svc.registry.rollback)).to_dict())
    except RegistryError as error:
        raise HTTPException(409, detail=str(error)) from None


@router.post("/models/train", status_code=202)
async def train(
    svc: Annotated[Service, Depends(service)],
    model: Annotated[str | None, Query(description="a registered model name; default: the pipeline")] = None,
) -> FastJSON:
    """Retrain from the store in the background; the new version goes through the gate and swap."""
    try:
        return FastJSON(svc.retrainer.start(model, requested=True), status_code=202)
    except ValueError as error:
        raise HTTPException(422, detail=str(error)) from None
    except TooSoonError as error:
        raise HTTPException(
            429, detail=str(error), headers={"Retry-After": str(int(error.wait_s) + 1)}
        ) from None
    except RuntimeError as error:
        raise HTTPException(409, detail=str(error)) from None
