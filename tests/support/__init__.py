"""Shared test support: GEMM jobs from the golden model, stream handshakes, engine harness.

* :mod:`tests.support.gemm_jobs`: the GEMMs of a regression and their golden answers
  (no simulator, no Amaranth);
* :mod:`tests.support.streams`: seeded per-cycle stall patterns and the one stream
  handshake (a beat source for inputs, a beat sink for results) that every harness uses;
* :mod:`tests.support.cocotb_streams`: that handshake as cocotb driver and monitor tasks;
* :mod:`tests.support.engine_sim`: that handshake around a ``GemmEngine`` in Amaranth's
  simulator;
* :mod:`tests.support.nets`: a graph builder, seeded random single-op networks and
  LiteRT as the oracle of :mod:`nets`.

The package is imported as ``tests.support`` from pytest (the repository root is on
``sys.path`` because ``tests`` is a package) and from the cocotb testbenches
(:func:`hw.rtlsim.run_cocotb` puts the root of a testbench's package on the path).
"""

__all__ = []
