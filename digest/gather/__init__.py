"""Gather: read every configured source, parse its articles and keep them in the store.

`fetch` reads bytes from a URL or a local path, `feeds` turns bytes into parsed articles,
`store` upserts them. One bad source is recorded on its row and never stops the others.
"""

from digest.gather.run import GatherReport, SourceReport, gather_sources

__all__ = ["GatherReport", "SourceReport", "gather_sources"]
