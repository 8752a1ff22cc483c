"""Entry point for `python3 -m leftover`; all work is in leftover.cli."""

import sys

from leftover.cli import main

sys.exit(main())
