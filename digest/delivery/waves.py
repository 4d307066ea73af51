"""Local-time delivery: when each reader's issue goes, as waves of one UTC instant each.

Readers get the issue at the same local time (`[schedule] local_time`) on the same local date (the weekly
run's day) in their own zone, or the newsletter's when they gave none. Readers whose zones reach that local
time at one UTC instant form one wave. The instant is computed from the zone and the date with the
zoneinfo database, never from an offset stored earlier: a wave planned on Saturday for a Sunday on which
the clocks change goes at the Sunday's offset.

Pure functions: no store, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class LocalDelivery:
    """What a plan needs to put readers into waves: the local date and time, and the zone of readers who
    gave none (the newsletter's)."""

    day: date
    at: time
    default_zone: str

    @classmethod
    def of(cls, day: date, local_time: str, default_zone: str) -> LocalDelivery:
        hours, minutes = local_time.split(":")
        return cls(day, time(int(hours), int(minutes)), default_zone)


@dataclass
class Wave:
    """Readers whose zones reach the local time at one UTC instant."""

    number: int  # 1, 2, ... in the order they go
    send_at: datetime  # UTC
    zones: list[str]  # sorted
    local: str  # the local date and time they get it at, "2026-12-07 07:00"
    recipients: int = 0
    offset: str = field(default="")  # the zones' UTC offset on that day, "+05:45"

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "send_at": self.send_at.isoformat(),
            "zones": self.zones,
            "local": self.local,
            "offset": self.offset,
            "recipients": self.recipients,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Wave:
        return cls(
            int(data["number"]),
            datetime.fromisoformat(str(data["send_at"])).astimezone(UTC),
            list(data.get("zones") or []),
            str(data.get("local") or ""),
            int(data.get("recipients") or 0),
            str(data.get("offset") or ""),
        )


def local_instant(zone: str, day: date, at: time) -> datetime:
    """The UTC instant at which it is `at` on `day` in `zone`.

    A local time the clocks skip (a spring-forward gap) is taken at the offset before the change, so it
    falls just after the gap, never before; a time that happens twice (fall back) is its first one."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _offset(instant: datetime, zone: str) -> str:
    delta = instant.astimezone(ZoneInfo(zone)).utcoffset() or timedelta(0)
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def plan_waves(zones: Iterable[str | None], local: LocalDelivery) -> tuple[list[Wave], dict[str, int]]:
    """The waves for readers in these zones (None: the newsletter's), earliest first, and zone -> wave
    number (the default zone is always in it, for readers who gave none). A stored zone this process's
    zoneinfo database does not know (an older tzdata, a row written around the checks) goes with the
    newsletter's zone: one reader's zone never stops the plan."""
    named = {z or local.default_zone for z in zones} | {local.default_zone}
    by_instant: dict[datetime, list[str]] = {}
    unknown: list[str] = []
    for zone in named:
        try:
            instant = local_instant(zone, local.day, local.at)
        except (ZoneInfoNotFoundError, ValueError):
            unknown.append(zone)
            continue
        by_instant.setdefault(instant, []).append(zone)
    waves: list[Wave] = []
    wave_of: dict[str, int] = {}
    shown = f"{local.day.isoformat()} {local.at.strftime('%H:%M')}"
    for number, instant in enumerate(sorted(by_instant), 1):
        members = sorted(by_instant[instant])
        waves.append(Wave(number, instant, members, shown, offset=_offset(instant, members[0])))
        wave_of.update(dict.fromkeys(members, number))
    wave_of.update(dict.fromkeys(unknown, wave_of[local.default_zone]))
    return waves, wave_of


def earliest(zones: Iterable[str | None], local: LocalDelivery) -> datetime:
    """The first wave's instant: when the issue must be composed and planned."""
    waves, _ = plan_waves(zones, local)
    return waves[0].send_at
