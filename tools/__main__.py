"""``python -m segstore_tools`` runs the ``segstore`` command line."""

import sys

from segstore_tools.cli import main

sys.exit(main())
