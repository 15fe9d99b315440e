"""``python -m hw.rtlsim`` and ``hw.rtlsim``: an alias of :mod:`hw.flow.rtlsim`."""

import sys

from hw.flow import rtlsim as _tool

if __name__ == "__main__":
    sys.exit(_tool.main())
# The documented name stays an alias of the tool module itself (not a copy of its names), so
# that ``hw.rtlsim.X`` and ``hw.flow.rtlsim.X`` are one object, monkeypatching included.
sys.modules[__name__] = _tool
