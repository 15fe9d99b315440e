"""``python -m hw.synth`` and ``hw.synth``: an alias of :mod:`hw.flow.synth`."""

import sys

from hw.flow import synth as _tool

if __name__ == "__main__":
    sys.exit(_tool.main())
# The documented name stays an alias of the tool module itself (not a copy of its names), so
# that ``hw.synth.X`` and ``hw.flow.synth.X`` are one object, monkeypatching included.
sys.modules[__name__] = _tool
