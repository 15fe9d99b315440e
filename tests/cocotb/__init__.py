"""cocotb testbenches of the generated engine (run by ``hw.regress`` and ``hw.bench``)."""
