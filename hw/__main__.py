"""``python -m hw`` is ``python -m hw.build``."""

import sys

from .build import main

sys.exit(main())
