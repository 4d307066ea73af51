"""Issue weeks: ISO weeks and their windows in the newsletter's timezone."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from digest.content.weeks import Week
from digest.errors import UsageError


def test_a_week_parses_and_prints_the_same():
    assert str(Week.parse("2026-W48")) == "2026-W48"
    assert Week.parse("2026w05") == Week(2026, 5)


@pytest.mark.parametrize("text", ["2026-48", "W48", "2025-W53", "yesterday"])
def test_a_malformed_or_impossible_week_is_refused(text):
    with pytest.raises(UsageError):
        Week.parse(text)


def test_the_window_runs_monday_to_monday_local_time_across_a_dst_change():
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-W43 ends on Monday 26 October; clocks went back on Sunday 25 October.
    start, end = Week.parse("2026-W43").window(berlin)
    assert start == datetime(2026, 10, 18, 22, 0, tzinfo=UTC)
    assert end == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)


def test_the_current_week_depends_on_the_timezone():
    moment = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)  # Sunday in London, Monday in Berlin
    assert Week.containing(moment, ZoneInfo("Europe/London")) == Week(2026, 48)
    assert Week.containing(moment, ZoneInfo("Europe/Berlin")) == Week(2026, 49)
