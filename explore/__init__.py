"""The trade-off explorer: candidate engines -> area, Fmax, cycles, accuracy -> Pareto plots.

``python -m explore SPEC.toml`` (see :mod:`explore.__main__`). It lives beside ``sim`` and
``nets``, not inside ``sim``: it drives the hardware tools (``hw.flow``: Amaranth, Yosys,
nextpnr), which DESIGN.md keeps out of ``sim``; it imports them only in the workers that
synthesize, so parsing a spec and drawing plots load no Amaranth.
"""

from .pareto import dominates, pareto_front
from .spec import Spec, SpecError, Target, Workload, load_spec, parse_spec

__all__ = ["Spec", "SpecError", "Target", "Workload", "dominates", "load_spec", "pareto_front",
           "parse_spec"]
