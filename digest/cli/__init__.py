"""The `digest` command line: thin commands over the use cases, one module per command group.

app.py holds the app, the one place errors become exit codes, and `main` (the console script
`digest.cli:main`); issues, sources, articles, subscribers, db, schedule and serve hold the commands;
output.py how results are printed; common.py the shared options and the command's core;
send_report.py what a send prints and its signals. The work itself is digest.jobs'.
"""

from digest.cli.app import app, main

__all__ = ["app", "main"]
