"""``python -m areacam``: the command line (see :mod:`areacam.app.cli`)."""

import sys

from areacam.app.cli import main

sys.exit(main())
