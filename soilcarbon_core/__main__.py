"""``python -m soilcarbon_core`` is the ``soilcarbon`` command."""

import sys

from soilcarbon_core.cli import main

sys.exit(main())
