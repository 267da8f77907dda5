"""``python -m memcim`` runs the command-line interface."""

import sys

from memcim.cli import main

sys.exit(main())
