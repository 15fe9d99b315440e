"""``python -m hw.bench`` and ``hw.bench``: an alias of :mod:`hw.flow.bench`."""

import sys

from hw.flow import bench as _tool

if __name__ == "__main__":
    sys.exit(_tool.main())
# The documented name stays an alias of the tool module itself (not a copy of its names), so
# that ``hw.bench.X`` and ``hw.flow.bench.X`` are one object, monkeypatching included.
sys.modules[__name__] = _tool
