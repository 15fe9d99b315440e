"""qmac's networks: the integer graph of a quantized model, its import, inference and lowering."""

from .graph import ACTIVATIONS, DTYPES, Graph, Op, Quant, Tensor

__all__ = ["ACTIVATIONS", "DTYPES", "Graph", "Op", "Quant", "Tensor"]
