"""qmac's test suite: pytest modules, cocotb testbenches, and their shared support."""
