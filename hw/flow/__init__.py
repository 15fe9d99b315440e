"""The tool flow around the gateware: build, regress, bench, synth, toolchain, rtlsim, emit.

``hw`` holds the gateware and its configuration; this package holds the tools that
generate, simulate, measure and synthesize it. Each tool keeps its documented command
``python -m hw.<tool>`` (and import name ``hw.<tool>``) through a one-line alias module in
``hw/``, so the README, CI, scripts and other packages need not change.
"""

__all__ = []
