"""qmac's networks: the integer graph of a quantized model, its import, inference and lowering."""

from .errors import ModelError
from .execute import run as run_graph  # not ``run``: nets.run is the nets.run CLI module
from .graph import ACTIVATIONS, DTYPES, Graph, Op, Quant, Tensor
from .graph_file import load_graph, save_graph
from .lower import engines_for
from .tflite_import import SUPPORTED_OPS, load_tflite, read_tflite
from .tflite_write import save_tflite, tflite_bytes

__all__ = ["ACTIVATIONS", "DTYPES", "Graph", "ModelError", "Op", "Quant", "SUPPORTED_OPS",
           "Tensor", "engines_for", "load_graph", "load_tflite", "read_tflite", "run_graph",
           "save_graph", "save_tflite", "tflite_bytes"]
