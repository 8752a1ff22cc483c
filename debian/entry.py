"""What the frozen binary runs: leftover's command line, nothing else."""

import sys

from leftover.cli import main

sys.exit(main())
