"""Fault injection for the lab: named faults that always expire, switched through an admin API."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import BaseModel, Field

from lab_common.settings import LabSettings


@dataclass
class ActiveFault:
    name: str
    params: dict[str, Any]
    expires_at: float  # time.monotonic()

    def remaining_seconds(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())


@dataclass
class FaultRegistry:
    """The faults a service knows (name -> description) and the ones switched on now."""

    known: dict[str, str]
    max_seconds: float = 900.0
    _active: dict[str, ActiveFault] = field(default_factory=dict)

    def activate(self, name: str, duration_seconds: float, params: dict[str, Any]) -> ActiveFault:
        if name not in self.known:
            raise KeyError(name)
        duration = min(duration_seconds, self.max_seconds)
        fault = ActiveFault(name, dict(params), time.monotonic() + duration)
        self._active[name] = fault
        return fault

    def clear(self, name: str | None = None) -> None:
        if name is None:
            self._active.clear()
        else:
            self._active.pop(name, None)

    def get(self, name: str) -> ActiveFault | None:
        fault = self._active.get(name)
        if fault is not None and fault.remaining_seconds() <= 0:
            del self._active[name]
            return None
        return fault

    def rate(self, name: str) -> float:
        """The `rate` param (0-1, default 1) of an active fault; 0 when it is not active."""
        fault = self.get(name)
        if fault is None:
            return 0.0
        try:
            return min(max(float(fault.params.get("rate", 1.0)), 0.0), 1.0)
        except (TypeError, ValueError):
            return 1.0

    def fires(self, name: str, rng: random.Random | None = None) -> bool:
        """Whether this call is one of the `rate` share that the active fault hits."""
        rate = self.rate(name)
        return rate > 0 and (rng or random).random() < rate

    def active(self) -> list[ActiveFault]:
        return [f for name in list(self._active) if (f := self.get(name)) is not None]

    async def maybe_delay(self, name: str = "latency") -> None:
        """Sleep for the `delay_ms` of an active latency fault (async: never blocks the loop)."""
        fault = self.get(name)
        if fault is not None:
            await asyncio.sleep(float(fault.params.get("delay_ms", 0)) / 1000.0)


class FaultRequest(BaseModel):
    duration_seconds: float = Field(default=60.0, gt=0, description="The fault expires after this long.")
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)


def require_admin(settings: LabSettings):
    """A dependency: admin endpoints need `X-Admin-Token` unless the lab profile is on with no token set."""

    def check(x_admin_token: str | None = Header(default=None)) -> None:
        if settings.admin_open:
            return
        if not settings.admin_token:
            raise HTTPException(403, "admin endpoints are disabled: set ADMIN_TOKEN or LAB_PROFILE=true")
        if not secrets.compare_digest(x_admin_token or "", settings.admin_token):
            raise HTTPException(401, "missing or wrong X-Admin-Token header")

    return check


def fault_router(registry: FaultRegistry, settings: LabSettings) -> APIRouter:
    router = APIRouter(
        prefix="/admin/faults", tags=["admin"], dependencies=[Depends(require_admin(settings))]
    )

    def describe(fault: ActiveFault) -> dict[str, Any]:
        return {
            "name": fault.name,
            "params": fault.params,
            "remaining_seconds": round(fault.remaining_seconds(), 1),
        }

    @router.get("")
    def list_faults() -> dict[str, Any]:
        return {
            "enabled": settings.faults_active,
            "known": registry.known,
            "active": [describe(f) for f in registry.active()],
        }

    @router.post("/{name}", responses={404: {"description": "Unknown fault"}})
    def activate(name: str, body: FaultRequest) -> dict[str, Any]:
        if not settings.faults_active:
            hint = (
                "FAULTS_ENABLED=false is set" if settings.faults_enabled is False else "set LAB_PROFILE=true"
            )
            raise HTTPException(403, f"fault injection is off: {hint} (or FAULTS_ENABLED=true)")
        if name not in registry.known:
            raise HTTPException(404, f"unknown fault {name!r}; known: {sorted(registry.known)}")
        return describe(registry.activate(name, body.duration_seconds, body.params))

    @router.delete("/{name}", responses={404: {"description": "Unknown fault"}})
    def clear(name: str) -> dict[str, Any]:
        if name != "all" and name not in registry.known:
            raise HTTPException(404, f"unknown fault {name!r}")
        registry.clear(None if name == "all" else name)
        return {"cleared": name}

    return router
