"""``python -m hw.emit`` and ``hw.emit``: an alias of :mod:`hw.flow.emit`."""

import sys

from hw.flow import emit as _tool

if __name__ == "__main__":
    sys.exit(_tool.main())
# The documented name stays an alias of the tool module itself (not a copy of its names), so
# that ``hw.emit.X`` and ``hw.flow.emit.X`` are one object, monkeypatching included.
sys.modules[__name__] = _tool
