"""``python -m hw.regress`` and ``hw.regress``: an alias of :mod:`hw.flow.regress`."""

import sys

from hw.flow import regress as _tool

if __name__ == "__main__":
    sys.exit(_tool.main())
# The documented name stays an alias of the tool module itself (not a copy of its names), so
# that ``hw.regress.X`` and ``hw.flow.regress.X`` are one object, monkeypatching included.
sys.modules[__name__] = _tool
