"""An issue's week: an ISO week such as 2026-W48, and its window (UTC span) in the newsletter's timezone.

`default_week` is the one answer to "which week, when none is given": the week of yesterday.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from digest.errors import UsageError

_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Week:
    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> Week:
        match = _WEEK.match(text.strip())
        if not match:
            raise UsageError(f"--week {text!r}: expected an ISO week such as 2026-W48")
        year, week = int(match[1]), int(match[2])
        try:
            date.fromisocalendar(year, week, 1)
        except ValueError:
            raise UsageError(f"--week {text!r}: {year} has no week {week}") from None
        return cls(year, week)

    @classmethod
    def containing(cls, moment: datetime, tz: tzinfo) -> Week:
        iso = moment.astimezone(tz).isocalendar()
        return cls(iso.year, iso.week)

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def slug(self) -> str:
        return f"{self.year}-w{self.week:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    def window(self, tz: tzinfo) -> tuple[datetime, datetime]:
        """Monday 00:00 to the next Monday 00:00, local time, as UTC instants (DST-safe)."""
        start = datetime.combine(self.monday, datetime.min.time(), tzinfo=tz)
        end = datetime.combine(self.monday + timedelta(days=7), datetime.min.time(), tzinfo=tz)
        return start.astimezone(UTC), end.astimezone(UTC)


def default_week(now: datetime, tz: tzinfo) -> Week:
    """The week of an issue built at `now` without --week: the ISO week of yesterday, local time.

    The weekly job runs on Monday morning, so Monday's issue is the week that just ended."""
    return Week.containing(now - timedelta(days=1), tz)
