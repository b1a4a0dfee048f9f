"""``python -m spectral_theory ...``: the command line (:func:`spectral_theory.cli.main`)."""

import sys

from .cli import main

sys.exit(main())
