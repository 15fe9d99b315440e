"""cocotb smoke testbench of the simulator plumbing (``hw.rtlsim``)."""
