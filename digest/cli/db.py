"""`digest db upgrade`: the store's migrations."""

from __future__ import annotations

import typer

from digest.cli.common import open_core
from digest.cli.output import out

app = typer.Typer(help="The store: apply migrations.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply the store's migrations (also done automatically on first use)."""
    from digest.jobs.maintenance import upgrade_store

    revision = upgrade_store(open_core(migrate=False))
    out.print(f"store at revision {revision}")
