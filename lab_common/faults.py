"""Fault injection for the lab: named faults that always expire, switched through an admin API.

Each fault declares a typed parameter model (strict: no coercion of strings or booleans into numbers, no
unknown keys, no NaN), so a bad parameter is a 422 naming the field instead of a 500 on every later request.
Injected sleeps end as soon as their fault ends: when it expires, is replaced or deleted, or the server
shuts down (`release`), so a fault never outlives itself or holds up a SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lab_common.settings import LabSettings

MAX_DELAY_MS = 60_000  # one minute: longer than any latency alert needs, short enough to never pile up


class FaultParams(BaseModel):
    """Base of every fault's parameters: strict JSON types, no unknown keys, finite numbers."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class NoParams(FaultParams):
    pass


class LatencyParams(FaultParams):
    delay_ms: float = Field(ge=0, le=MAX_DELAY_MS, description="Milliseconds each affected request waits.")


class RateParams(FaultParams):
    rate: float = Field(default=1.0, ge=0, le=1, description="Share (0-1) of calls the fault hits.")


@dataclass(frozen=True)
class Fault:
    """What a fault does (shown by GET /admin/faults) and the parameters it takes."""

    description: str
    params: type[FaultParams] = NoParams


@dataclass
class ActiveFault:
    name: str
    params: dict[str, Any]
    expires_at: float  # time.monotonic()
    # Set when the fault ends early (replaced, deleted, shutdown): wakes every sleep it injected.
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def remaining_seconds(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())


@dataclass
class FaultRegistry:
    """The faults a service knows and the ones switched on now.

    Switching faults on and off happens on the event loop (the admin routes are async), which is also
    where the sleeps wait: `ActiveFault.ended` is only ever set from the loop.
    """

    faults: Mapping[str, Fault]
    max_seconds: float = 900.0
    _active: dict[str, ActiveFault] = field(default_factory=dict)
    _released: bool = False

    @property
    def known(self) -> dict[str, str]:
        return {name: fault.description for name, fault in self.faults.items()}

    def validate_params(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters of fault `name`, typed; raises pydantic's ValidationError."""
        return self.faults[name].params.model_validate(params).model_dump()

    def activate(self, name: str, duration_seconds: float, params: dict[str, Any]) -> ActiveFault:
        if name not in self.faults:
            raise KeyError(name)
        typed = self.validate_params(name, params)
        duration = min(duration_seconds, self.max_seconds)
        fault = ActiveFault(name, typed, time.monotonic() + duration)
        self._end(self._active.get(name))
        self._active[name] = fault
        self._released = False
        return fault

    def clear(self, name: str | None = None) -> None:
        names = list(self._active) if name is None else [name]
        for each in names:
            self._end(self._active.pop(each, None))

    def release(self) -> None:
        """Shutdown: end every fault and every sleep now; later sleeps return at once."""
        self._released = True
        self.clear()

    @staticmethod
    def _end(fault: ActiveFault | None) -> None:
        if fault is not None:
            fault.ended.set()

    def get(self, name: str) -> ActiveFault | None:
        fault = self._active.get(name)
        if fault is not None and fault.remaining_seconds() <= 0:
            # pop, not del: a worker thread (evaluation) may be expiring the same fault.
            self._active.pop(name, None)
            return None
        return fault

    def rate(self, name: str) -> float:
        """The `rate` param (0-1, default 1) of an active fault; 0 when it is not active."""
        fault = self.get(name)
        return 0.0 if fault is None else float(fault.params.get("rate", 1.0))

    def fires(self, name: str, rng: random.Random | None = None) -> bool:
        """Whether this call is one of the `rate` share that the active fault hits."""
        rate = self.rate(name)
        return rate > 0 and (rng or random).random() < rate

    def active(self) -> list[ActiveFault]:
        return [f for name in list(self._active) if (f := self.get(name)) is not None]

    async def maybe_delay(self, name: str = "latency") -> None:
        """Sleep for the `delay_ms` of an active latency fault, never past the fault's end (async: never
        blocks the loop)."""
        fault = self.get(name)
        if fault is None or self._released:
            return
        delay = min(fault.params.get("delay_ms", 0.0) / 1000.0, fault.remaining_seconds())
        if delay <= 0:
            return
        with contextlib.suppress(TimeoutError):  # the delay ran out: the usual end
            await asyncio.wait_for(fault.ended.wait(), timeout=delay)


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    duration_seconds: float = Field(
        default=60.0, gt=0, description="The fault expires after this long (at most MAX_FAULT_SECONDS)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="The fault's parameters: see `params` in GET /admin/faults."
    )


def tokens_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison of bytes: a header may hold any byte (Starlette decodes it as latin-1),
    and `secrets.compare_digest` refuses non-ASCII str."""
    return secrets.compare_digest((given or "").encode("latin-1"), expected.encode("utf-8"))


def require_admin(settings: LabSettings):
    """A dependency: admin endpoints need `X-Admin-Token` unless the lab profile is on with no token set."""

    def check(x_admin_token: str | None = Header(default=None)) -> None:
        if settings.admin_open:
            return
        if not settings.admin_token:
            raise HTTPException(403, "admin endpoints are disabled: set ADMIN_TOKEN or LAB_PROFILE=true")
        if not tokens_match(x_admin_token, settings.admin_token):
            raise HTTPException(401, "missing or wrong X-Admin-Token header")

    return check


def _invalid_params(exc: ValidationError) -> RequestValidationError:
    """Errors of a fault's parameter model, located under body.params like any other body field."""
    return RequestValidationError(
        [{**err, "loc": ("body", "params", *err["loc"])} for err in exc.errors(include_url=False)]
    )


def fault_router(registry: FaultRegistry, settings: LabSettings) -> APIRouter:
    router = APIRouter(
        prefix="/admin/faults", tags=["admin"], dependencies=[Depends(require_admin(settings))]
    )

    # The schema lists the fault names (clients and fuzzers see them); any other name is still a 404.
    fault_name = PathParam(
        description="A fault this service knows", json_schema_extra={"enum": sorted(registry.faults)}
    )
    fault_or_all = PathParam(
        description="A fault this service knows, or `all`",
        json_schema_extra={"enum": [*sorted(registry.faults), "all"]},
    )

    def describe(fault: ActiveFault) -> dict[str, Any]:
        return {
            "name": fault.name,
            "params": fault.params,
            "remaining_seconds": round(fault.remaining_seconds(), 1),
        }

    # async routes: they run on the event loop, where the injected sleeps wait (see FaultRegistry).
    @router.get("")
    async def list_faults() -> dict[str, Any]:
        return {
            "enabled": settings.faults_active,
            "known": registry.known,
            "params": {name: f.params.model_json_schema() for name, f in registry.faults.items()},
            "active": [describe(f) for f in registry.active()],
        }

    @router.post("/{name}", responses={404: {"description": "Unknown fault"}})
    async def activate(body: FaultRequest, name: str = fault_name) -> dict[str, Any]:
        if not settings.faults_active:
            hint = (
                "FAULTS_ENABLED=false is set" if settings.faults_enabled is False else "set LAB_PROFILE=true"
            )
            raise HTTPException(403, f"fault injection is off: {hint} (or FAULTS_ENABLED=true)")
        if name not in registry.faults:
            raise HTTPException(404, f"unknown fault {name!r}; known: {sorted(registry.faults)}")
        try:
            return describe(registry.activate(name, body.duration_seconds, body.params))
        except ValidationError as exc:
            raise _invalid_params(exc) from None

    @router.delete("/{name}", responses={404: {"description": "Unknown fault"}})
    async def clear(name: str = fault_or_all) -> dict[str, Any]:
        if name != "all" and name not in registry.faults:
            raise HTTPException(404, f"unknown fault {name!r}")
        registry.clear(None if name == "all" else name)
        return {"cleared": name}

    return router
