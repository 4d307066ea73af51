"""The public site's addresses (DIGEST_BASE_URL): what an issue, the archive and the mails link to.

Signed per-reader links (unsubscribe, preferences, confirm) add a token to these; the core makes
them (`digest.core.Digest`), since the tokens belong to the audience.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Links:
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def issue_url(self, slug: str) -> str:
        """An issue's page in the archive (the e-mail's "view in browser")."""
        return self.url(f"issues/{slug}")
