"""``python -m hw.toolchain`` and ``hw.toolchain``: an alias of :mod:`hw.flow.toolchain`."""

import sys

from hw.flow import toolchain as _tool

if __name__ == "__main__":
    sys.exit(_tool.main())
# The documented name stays an alias of the tool module itself (not a copy of its names), so
# that ``hw.toolchain.X`` and ``hw.flow.toolchain.X`` are one object, monkeypatching included.
sys.modules[__name__] = _tool
