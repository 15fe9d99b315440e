"""qmac hardware: ArrayConfig, Amaranth components of the systolic GEMM engine, build CLI."""
