"""`python -m digest.cli`: the same command line as the `digest` script."""

import sys

from digest.cli import main

sys.exit(main())
