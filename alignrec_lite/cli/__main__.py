"""``python -m alignrec_lite.cli`` = the ``alignrec-lite`` command."""

import sys

from . import main

sys.exit(main())
