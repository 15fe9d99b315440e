"""``python -m hw.build`` and ``hw.build``: an alias of :mod:`hw.flow.build`."""

import sys

from hw.flow import build as _tool

if __name__ == "__main__":
    sys.exit(_tool.main())
# The documented name stays an alias of the tool module itself (not a copy of its names), so
# that ``hw.build.X`` and ``hw.flow.build.X`` are one object, monkeypatching included.
sys.modules[__name__] = _tool
