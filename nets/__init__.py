"""qmac's networks: the integer graph of a quantized model, its import, inference and lowering."""

from .errors import ModelError
from .execute import run
from .graph import ACTIVATIONS, DTYPES, Graph, Op, Quant, Tensor
from .tflite_import import SUPPORTED_OPS, load_tflite, read_tflite
from .tflite_write import save_tflite, tflite_bytes

__all__ = ["ACTIVATIONS", "DTYPES", "Graph", "ModelError", "Op", "Quant", "SUPPORTED_OPS",
           "Tensor", "load_tflite", "read_tflite", "run", "save_tflite", "tflite_bytes"]
