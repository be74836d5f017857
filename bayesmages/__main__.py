"""``python -m bayesmages`` runs the command line."""

import sys

from bayesmages.cli import main

sys.exit(main())
