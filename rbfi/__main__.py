"""``python -m rbfi``: the ``rbfi`` command."""

import sys

from rbfi.cli import main

sys.exit(main())
