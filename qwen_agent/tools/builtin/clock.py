"""The `current_time` tool: the current date and time, optionally in an IANA timezone (models do not know "now")."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Annotated

from pydantic import BaseModel, Field

from qwen_agent.tools.function import FunctionTool

__all__ = ["CurrentTime", "current_time", "make_current_time", "resolve_timezone"]

_UTC_ALIASES = {"utc", "z", "gmt", "zulu", "universal"}


class CurrentTime(BaseModel):
    """What `current_time` returns (JSON for the model, typed for Python callers)."""

    datetime: str
    timezone: str
    weekday: str
    unix_time: float


def resolve_timezone(name: str | None) -> dt.tzinfo | None:
    """A tzinfo for an IANA name ('Europe/Paris'), 'UTC' aliases, or None for the machine's local time."""
    if name is None or not name.strip() or name.strip().lower() in ("local", "localtime"):
        return None
    name = name.strip()
    if name.lower() in _UTC_ALIASES:
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}; use an IANA name such as 'Europe/Paris', 'America/New_York', "
            "'Asia/Shanghai' or 'UTC'"
        ) from None


def current_time(
    timezone: Annotated[
        str | None,
        Field(description="IANA timezone name such as 'Europe/Paris' or 'UTC'; omit for the local time"),
    ] = None,
) -> CurrentTime:
    """Get the current date, time and weekday."""
    tz = resolve_timezone(timezone)
    now = dt.datetime.now(tz).astimezone(tz)  # astimezone(None) attaches the local zone
    tz_name = getattr(tz, "key", None) or now.tzname() or "local"
    if tz is dt.UTC:
        tz_name = "UTC"
    return CurrentTime(
        datetime=now.isoformat(timespec="seconds"),
        timezone=tz_name,
        weekday=now.strftime("%A"),
        unix_time=round(now.timestamp(), 3),
    )


def make_current_time() -> FunctionTool:
    return FunctionTool(current_time, timeout=5.0)
