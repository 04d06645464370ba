"""``python -m alignrec_lite`` = the ``alignrec-lite`` command."""

import sys

from .cli import main

sys.exit(main())
