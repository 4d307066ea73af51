"""The `digest` command line: thin commands over the use cases, one module per command group.

app.py holds the app, the one place errors become exit codes, and `main` (the console script
`digest.cli:main`); issues, sources, articles, subscribers, db, schedule and serve hold the commands;
output.py how results are printed; common.py the shared options and the command's core; usecases.py
the use cases the lower layers do not offer yet; send_report.py what a send prints and its signals.
"""

from digest.cli.app import app, main

__all__ = ["app", "main"]
