"""The TFLite schema facts shared by the importer and the writer: types, activations, ops."""

from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.BuiltinOperator import BuiltinOperator
from tflite.Padding import Padding
from tflite.TensorType import TensorType

__all__ = ["TENSOR_TYPES", "DTYPE_TO_TENSOR_TYPE", "ACTIVATION_NAMES", "ACTIVATION_CODES",
           "PADDING_NAMES", "PADDING_CODES", "OP_CODES", "OP_NAMES", "OP_VERSIONS",
           "type_name"]

#: TFLite tensor types qmac reads, and their numpy dtypes.
TENSOR_TYPES = {
    TensorType.INT8: "int8",
    TensorType.UINT8: "uint8",
    TensorType.INT16: "int16",
    TensorType.INT32: "int32",
    TensorType.INT64: "int64",
    TensorType.FLOAT32: "float32",
}
DTYPE_TO_TENSOR_TYPE = {dtype: code for code, dtype in TENSOR_TYPES.items()}

ACTIVATION_NAMES = {
    ActivationFunctionType.NONE: "linear",
    ActivationFunctionType.RELU: "relu",
    ActivationFunctionType.RELU6: "relu6",
    ActivationFunctionType.RELU_N1_TO_1: "relu_n1_to_1",
}
ACTIVATION_CODES = {name: code for code, name in ACTIVATION_NAMES.items()}

PADDING_NAMES = {Padding.SAME: "SAME", Padding.VALID: "VALID"}
PADDING_CODES = {name: code for code, name in PADDING_NAMES.items()}

#: Builtin operator names by code, and codes by name (every builtin the schema knows).
OP_NAMES = {code: name for name, code in vars(BuiltinOperator).items()
            if not name.startswith("_") and isinstance(code, int)}
OP_CODES = {name: code for code, name in OP_NAMES.items()}

#: The operator-code version the writer records for each op qmac runs (what TFLiteConverter
#: writes for int8 models; any version the interpreter registers would do).
OP_VERSIONS = {
    "CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "ADD": 2, "MAX_POOL_2D": 2,
    "AVERAGE_POOL_2D": 2, "MEAN": 2, "RESHAPE": 1, "PAD": 2, "CONCATENATION": 2,
    "SOFTMAX": 2, "QUANTIZE": 2, "DEQUANTIZE": 2,
}


def type_name(code):
    """TFLite's name of a tensor type code, e.g. ``"FLOAT16"`` (or the number if unknown)."""
    for name, value in vars(TensorType).items():
        if value == code and not name.startswith("_"):
            return name
    return str(code)

