"""The zoneinfo database as the audience knows it: the IANA names a reader's timezone may take."""

from __future__ import annotations

import functools
import zoneinfo


@functools.cache
def known_zones() -> frozenset[str]:
    """Every IANA zone name this process can compute local times for (the system's tzdata, or the
    `tzdata` package), read once. `localtime` and the `posix/` and `right/` copies are not names."""
    return frozenset(
        z for z in zoneinfo.available_timezones() if z != "localtime" and not z.startswith(("posix/", "right/"))
    )


def zone_choices() -> list[str]:
    """The zones a reader may pick on the preferences page: Area/Place names first, sorted."""
    return sorted(known_zones(), key=lambda z: ("/" not in z, z))
