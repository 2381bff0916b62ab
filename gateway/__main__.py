"""``python -m gateway`` runs the jetgate command line."""

import sys

from gateway.cli import main

sys.exit(main())
