"""The `digest` command line: thin commands over the use cases, one module per command group.

app.py holds the app and `main` (the console script `digest.cli:main`); output.py how results are
printed; common.py the shared options; usecases.py the use cases the lower layers do not offer yet.
"""

from digest.cli.app import app, main

__all__ = ["app", "main"]
