"""``python -m studies.reproduction``: the same as ``ertoolkit-study``."""

import sys

from studies.reproduction.cli import main

sys.exit(main())
