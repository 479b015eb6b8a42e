"""`python -m convforge ...` runs the convforge command line (see convforge.cli)."""

import sys

from .cli import main

sys.exit(main())
