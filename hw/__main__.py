"""``python -m hw`` is ``python -m hw.build``."""

import sys

from .flow.build import main

sys.exit(main())
