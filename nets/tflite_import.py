"""Read a full-integer ``.tflite`` model into an integer :class:`~nets.graph.Graph`.

The flatbuffer is parsed with the pure-Python ``tflite`` package (no TensorFlow). Each
supported op kind has one small handler in :data:`HANDLERS` that checks the op's tensors
(types, quantization, constant weights) and returns its normalized options (see
:mod:`nets.graph`). All unsupported ops of a model are refused together, each named with
its index; a float model, a corrupt file or a tensor type qmac does not read is refused
with a one-line :class:`~nets.errors.ModelError`.
"""

import struct
from pathlib import Path

import numpy as np
import tflite
from tflite.BuiltinOptions import BuiltinOptions
from tflite.FullyConnectedOptionsWeightsFormat import FullyConnectedOptionsWeightsFormat

import golden

from .errors import ModelError
from .graph import Graph, Op, Quant, Tensor
from .tflite_schema import ACTIVATION_NAMES, OP_NAMES, PADDING_NAMES, TENSOR_TYPES, type_name

__all__ = ["load_tflite", "read_tflite", "HANDLERS", "SUPPORTED_OPS"]

_FLOAT_EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")


def load_tflite(path):
    """Read the ``.tflite`` file at ``path`` into a :class:`~nets.graph.Graph`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    nets.Graph
        Named after the file.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ModelError
        If the file is not a TFLite flatbuffer, is a float model, has ops or tensor types
        qmac does not run, or holds inconsistent tensors (see :func:`read_tflite`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    return read_tflite(path.read_bytes(), name=path.name)


def read_tflite(data, name="model"):
    """Read the bytes of a ``.tflite`` flatbuffer into a :class:`~nets.graph.Graph`.

    The model must be full-integer: int8 activations (float32 only at a graph's edge,
    into a QUANTIZE or out of a DEQUANTIZE), int8 weights per tensor or per channel,
    int32 biases, one subgraph, ops among :data:`SUPPORTED_OPS`.

    Parameters
    ----------
    data : bytes
    name : str
        Names the model in error messages and becomes the graph's name.

    Raises
    ------
    ModelError
        With one line naming the problem: not a TFLite flatbuffer, every unsupported op
        (index and kind) with the supported list, a float model, an unsupported tensor
        type, or an op whose tensors qmac's kernels do not accept.
    """
    data = bytes(data)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{name} is not a TFLite model: no 'TFL3' flatbuffer identifier in "
                         f"its first 8 bytes ({len(data)} bytes in all)")
    try:
        model = tflite.Model.GetRootAs(data, 0)
        subgraph_count = model.SubgraphsLength()
        if subgraph_count != 1:
            raise ModelError(f"{name} has {subgraph_count} subgraphs; qmac reads models with "
                             f"exactly one")
        subgraph = model.Subgraphs(0)
        kinds = [_op_kind(model, subgraph.Operators(i))
                 for i in range(subgraph.OperatorsLength())]
        unsupported = [f"{i} ({kind})" for i, kind in enumerate(kinds) if kind not in HANDLERS]
        if unsupported:
            raise ModelError(f"{name} has ops qmac does not run: {', '.join(unsupported)}; "
                             f"supported: {', '.join(SUPPORTED_OPS)}")
        tensors = tuple(_read_tensor(model, subgraph.Tensors(i), i, name)
                        for i in range(subgraph.TensorsLength()))
        raw_ops = [subgraph.Operators(i) for i in range(len(kinds))]
        _refuse_float_model(name, kinds, raw_ops, tensors)
        ops = []
        for index, (kind, raw) in enumerate(zip(kinds, raw_ops, strict=True)):
            op = Op(index, kind, _int_list(raw.InputsAsNumpy()), _int_list(raw.OutputsAsNumpy()))
            _check_indices(name, op, len(tensors))
            options = HANDLERS[kind](_Context(name, op, raw, tensors))
            ops.append(Op(index, kind, op.inputs, op.outputs, options))
        graph_inputs = _int_list(subgraph.InputsAsNumpy())
        graph_outputs = _int_list(subgraph.OutputsAsNumpy())
    except ModelError:
        raise
    except (struct.error, IndexError, TypeError, ValueError, OverflowError) as exc:
        # What the flatbuffer accessors raise on offsets and sizes that lead nowhere.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelError(f"{name} is not a valid TFLite flatbuffer (truncated or corrupt): "
                         f"{reason}") from None
    try:
        return Graph(tensors, tuple(ops), graph_inputs, graph_outputs, name=name)
    except ValueError as exc:
        raise ModelError(f"{name}: {exc}") from None


def _int_list(array):
    # The flatbuffer accessors return the int 0 (not an empty array) for an absent vector.
    return [] if isinstance(array, int) else [int(v) for v in array]


def _op_kind(model, raw):
    code = model.OperatorCodes(raw.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    kind = OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
    if kind == "CUSTOM":
        custom = code.CustomCode()
        kind = f"CUSTOM:{custom.decode(errors='replace')}" if custom else "CUSTOM"
    return kind


def _check_indices(name, op, count):
    for t in op.inputs + op.outputs:
        if not -1 <= t < count:
            raise ModelError(f"{name}: op {op.index} ({op.kind}) names tensor {t}; the model "
                             f"has {count} tensors")


def _read_tensor(model, raw, index, name):
    tensor_name = (raw.Name() or b"").decode(errors="replace")
    label = f"{name}: tensor {index} ({tensor_name!r})"
    code = raw.Type()
    if code not in TENSOR_TYPES:
        allowed = ", ".join(type_name(c) for c in TENSOR_TYPES)
        raise ModelError(f"{label} has type {type_name(code)}; qmac reads {allowed}")
    if raw.IsVariable():
        raise ModelError(f"{label} is a variable tensor; qmac reads stateless models only")
    if raw.Sparsity() is not None:
        raise ModelError(f"{label} is sparse; qmac reads dense tensors only")
    dtype = TENSOR_TYPES[code]
    shape = tuple(_int_list(raw.ShapeAsNumpy()))
    if any(d < 0 for d in shape):
        raise ModelError(f"{label} has shape {list(shape)}; dimensions must not be negative")
    quant = _read_quant(raw.Quantization(), label)
    data = _read_buffer(model, raw.Buffer(), dtype, shape, label)
    return Tensor(index, tensor_name, shape, dtype, quant, data)


def _read_quant(raw, label):
    if raw is None or raw.ScaleLength() == 0:
        return None
    if raw.DetailsType() != 0:
        raise ModelError(f"{label} has custom quantization details; qmac reads affine "
                         f"quantization only")
    scale = raw.ScaleAsNumpy()
    zero_point = raw.ZeroPointAsNumpy() if raw.ZeroPointLength() else np.zeros(1, np.int64)
    try:
        return Quant(scale, zero_point, raw.QuantizedDimension())
    except ValueError as exc:
        raise ModelError(f"{label}: {exc}") from None


def _read_buffer(model, index, dtype, shape, label):
    if index == 0 or index >= model.BuffersLength():
        return None
    buffer = model.Buffers(index)
    if buffer.Offset() > 1:
        raw = model._tab.Bytes[buffer.Offset():buffer.Offset() + buffer.Size()]
    elif buffer.DataLength():
        raw = buffer.DataAsNumpy().tobytes()
    else:
        return None
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise ModelError(f"{label} holds {len(raw)} bytes of data; its shape {list(shape)} of "
                         f"{dtype} needs {expected}")
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


def _refuse_float_model(name, kinds, raw_ops, tensors):
    for index, (kind, raw) in enumerate(zip(kinds, raw_ops, strict=True)):
        used = _int_list(raw.InputsAsNumpy()) + _int_list(raw.OutputsAsNumpy())
        floats = [t for t in used if 0 <= t < len(tensors) and tensors[t].dtype == "float32"]
        if floats and kind not in _FLOAT_EDGE_OPS:
            raise ModelError(f"{name} is a float model: op {index} ({kind}) computes in "
                             f"float32; qmac runs full-integer models (int8 activations and "
                             f"weights, as TFLiteConverter writes with a representative "
                             f"dataset and TFLITE_BUILTINS_INT8)")


class _Context:
    """One op being imported: its tensors, raw options and error messages."""

    def __init__(self, model_name, op, raw, tensors):
        self.op = op
        self.raw = raw
        self.tensors = tensors
        self.label = f"{model_name}: op {op.index} ({op.kind})"

    def error(self, message):
        return ModelError(f"{self.label} {message}")

    def input(self, position, *, optional=False):
        if position >= len(self.op.inputs) or self.op.inputs[position] < 0:
            if optional:
                return None
            raise self.error(f"has no input {position}")
        return self.tensors[self.op.inputs[position]]

    def output(self, position=0):
        if position >= len(self.op.outputs):
            raise self.error(f"has no output {position}")
        return self.tensors[self.op.outputs[position]]

    def count(self, inputs, outputs=1):
        if len(self.op.inputs) not in inputs or len(self.op.outputs) != outputs:
            want = " or ".join(str(n) for n in inputs)
            raise self.error(f"has {len(self.op.inputs)} inputs and {len(self.op.outputs)} "
                             f"outputs; it takes {want} inputs and {outputs} output")

    def options(self, kind, cls):
        if self.raw.BuiltinOptionsType() != kind:
            raise self.error(f"has no {cls.__name__}")
        table = self.raw.BuiltinOptions()
        options = cls()
        options.Init(table.Bytes, table.Pos)
        return options

    def activation(self, code):
        if code not in ACTIVATION_NAMES:
            raise self.error(f"has fused activation {code}; qmac fuses NONE, RELU, RELU6, "
                             f"RELU_N1_TO_1")
        return ACTIVATION_NAMES[code]

    def padding(self, code):
        if code not in PADDING_NAMES:
            raise self.error(f"has padding {code}; allowed: SAME, VALID")
        return PADDING_NAMES[code]

    def codes(self, tensor, role, dtypes=("int8",), ndim=None):
        """Check an activation: one of ``dtypes``, quantized per tensor, ``ndim`` dims."""
        if tensor.dtype not in dtypes:
            raise self.error(f"{role} (tensor {tensor.index}) is {tensor.dtype}; it must be "
                             f"{' or '.join(dtypes)}")
        if tensor.quant is None or tensor.quant.per_channel:
            kind = "unquantized" if tensor.quant is None else "quantized per channel"
            raise self.error(f"{role} (tensor {tensor.index}) is {kind}; it must be quantized "
                             f"per tensor")
        if ndim is not None and len(tensor.shape) != ndim:
            raise self.error(f"{role} (tensor {tensor.index}) has shape {list(tensor.shape)}; "
                             f"it must have {ndim} dimensions")
        info = np.iinfo(tensor.dtype)
        zero_point = int(tensor.quant.zero_point[0])
        if not info.min <= zero_point <= info.max:
            raise self.error(f"{role} (tensor {tensor.index}) has zero point {zero_point}; "
                             f"{tensor.dtype} allows {info.min}..{info.max}")
        return tensor

    def constant(self, tensor, role, dtypes):
        if not tensor.is_constant:
            raise self.error(f"{role} (tensor {tensor.index}) is not a constant")
        if tensor.dtype not in dtypes:
            raise self.error(f"{role} (tensor {tensor.index}) is {tensor.dtype}; it must be "
                             f"{' or '.join(dtypes)}")
        return tensor

    def weights(self, tensor, channels_axis, *, symmetric):
        """Check int8 constant weights quantized per tensor or per channel on ``axis``."""
        self.constant(tensor, "weights", ("int8",))
        quant = tensor.quant
        if quant is None:
            raise self.error(f"weights (tensor {tensor.index}) are not quantized")
        channels = tensor.shape[channels_axis]
        if quant.per_channel and (quant.axis != channels_axis or quant.scale.size != channels):
            raise self.error(f"weights (tensor {tensor.index}) have {quant.scale.size} scales "
                             f"along axis {quant.axis}; per-channel weights need one per output "
                             f"channel ({channels}) along axis {channels_axis}")
        if (symmetric or quant.per_channel) and np.any(quant.zero_point != 0):
            raise self.error(f"weights (tensor {tensor.index}) have zero point "
                             f"{int(quant.zero_point[quant.zero_point != 0][0])}; they must be "
                             f"symmetric (zero point 0)")
        return tensor

    def bias(self, position, channels, *, optional):
        bias = self.input(position, optional=optional)
        if bias is None:
            return None
        self.constant(bias, "bias", ("int32",))
        if bias.data.size != channels:
            raise self.error(f"bias (tensor {bias.index}) has {bias.data.size} entries; it "
                             f"needs one per output channel ({channels})")
        return bias


def _conv_options(ctx, options):
    return {
        "stride": (options.StrideH(), options.StrideW()),
        "padding": ctx.padding(options.Padding()),
        "dilation": (options.DilationHFactor(), options.DilationWFactor()),
        "activation": ctx.activation(options.FusedActivationFunction()),
    }


def _check_positive(ctx, options, names):
    for name in names:
        value = options[name]
        if any(v < 1 for v in value):
            raise ctx.error(f"has {name} {value}; it must be positive")


def _conv_2d(ctx):
    ctx.count((3,))
    x = ctx.codes(ctx.input(0), "input", ndim=4)
    w = ctx.weights(ctx.input(1), 0, symmetric=True)
    if len(w.shape) != 4 or w.shape[3] != x.shape[3]:
        raise ctx.error(f"weights (tensor {w.index}) have shape {list(w.shape)}; they must be "
                        f"OHWI with the input's {x.shape[3]} channels (grouped convolution is "
                        f"not supported)")
    ctx.bias(2, w.shape[0], optional=False)
    ctx.codes(ctx.output(), "output", ndim=4)
    options = _conv_options(ctx, ctx.options(BuiltinOptions.Conv2DOptions, tflite.Conv2DOptions))
    _check_positive(ctx, options, ("stride", "dilation"))
    return options


def _depthwise_conv_2d(ctx):
    ctx.count((3,))
    x = ctx.codes(ctx.input(0), "input", ndim=4)
    w = ctx.weights(ctx.input(1), 3, symmetric=True)
    channels = x.shape[3]
    if len(w.shape) != 4 or w.shape[0] != 1 or channels == 0 or w.shape[3] % channels:
        raise ctx.error(f"weights (tensor {w.index}) have shape {list(w.shape)}; they must be "
                        f"(1, KH, KW, {channels} * depth multiplier)")
    ctx.bias(2, w.shape[3], optional=False)
    ctx.codes(ctx.output(), "output", ndim=4)
    raw = ctx.options(BuiltinOptions.DepthwiseConv2DOptions, tflite.DepthwiseConv2DOptions)
    options = _conv_options(ctx, raw)
    _check_positive(ctx, options, ("stride", "dilation"))
    # TFLite's kernel takes the multiplier from the shapes, not from the option.
    options["depth_multiplier"] = w.shape[3] // channels
    return options


def _fully_connected(ctx):
    ctx.count((2, 3))
    x = ctx.codes(ctx.input(0), "input")
    w = ctx.weights(ctx.input(1), 0, symmetric=False)
    if len(w.shape) != 2:
        raise ctx.error(f"weights (tensor {w.index}) have shape {list(w.shape)}; they must be "
                        f"(out, in)")
    size = int(np.prod(x.shape))
    if w.shape[1] == 0 or size % w.shape[1]:
        raise ctx.error(f"input (tensor {x.index}) of shape {list(x.shape)} does not split into "
                        f"rows of the weights' {w.shape[1]} inputs")
    ctx.bias(2, w.shape[0], optional=True)
    ctx.codes(ctx.output(), "output")
    raw = ctx.options(BuiltinOptions.FullyConnectedOptions, tflite.FullyConnectedOptions)
    if raw.WeightsFormat() != FullyConnectedOptionsWeightsFormat.DEFAULT:
        raise ctx.error(f"has weights format {raw.WeightsFormat()}; qmac reads the DEFAULT "
                        f"format only")
    return {"keep_num_dims": bool(raw.KeepNumDims()),
            "activation": ctx.activation(raw.FusedActivationFunction())}


def _add(ctx):
    ctx.count((2,))
    a = ctx.codes(ctx.input(0), "input 0")
    b = ctx.codes(ctx.input(1), "input 1")
    y = ctx.codes(ctx.output(), "output")
    try:
        np.broadcast_shapes(a.shape, b.shape)
        golden.add_parameters(a.quant.scale[0], b.quant.scale[0], y.quant.scale[0])
    except ValueError as exc:
        raise ctx.error(f"cannot run: {exc}") from None
    raw = ctx.options(BuiltinOptions.AddOptions, tflite.AddOptions)
    return {"activation": ctx.activation(raw.FusedActivationFunction())}


def _pool(ctx):
    ctx.count((1,))
    ctx.codes(ctx.input(0), "input", ndim=4)
    ctx.codes(ctx.output(), "output", ndim=4)
    raw = ctx.options(BuiltinOptions.Pool2DOptions, tflite.Pool2DOptions)
    options = {"stride": (raw.StrideH(), raw.StrideW()),
               "filter": (raw.FilterHeight(), raw.FilterWidth()),
               "padding": ctx.padding(raw.Padding()),
               "activation": ctx.activation(raw.FusedActivationFunction())}
    _check_positive(ctx, options, ("stride", "filter"))
    return options


def _mean(ctx):
    ctx.count((2,))
    x = ctx.codes(ctx.input(0), "input")
    axis = ctx.constant(ctx.input(1), "axis", ("int32", "int64"))
    ctx.codes(ctx.output(), "output")
    values = [int(v) for v in axis.data.reshape(-1)]
    if not values or any(not -len(x.shape) <= v < len(x.shape) for v in values):
        raise ctx.error(f"has axis {values}; each must be in {-len(x.shape)}..{len(x.shape) - 1}")
    raw = ctx.options(BuiltinOptions.ReducerOptions, tflite.ReducerOptions)
    return {"axis": tuple(values), "keep_dims": bool(raw.KeepDims())}


def _reshape(ctx):
    ctx.count((1, 2))
    x = ctx.input(0)
    y = ctx.output()
    if x.dtype != y.dtype or np.prod(x.shape) != np.prod(y.shape):
        raise ctx.error(f"turns {x.dtype} {list(x.shape)} into {y.dtype} {list(y.shape)}; a "
                        f"reshape keeps the type and the number of elements")
    return {}


def _pad(ctx):
    ctx.count((2,))
    x = ctx.codes(ctx.input(0), "input")
    paddings = ctx.constant(ctx.input(1), "paddings", ("int32", "int64"))
    ctx.codes(ctx.output(), "output")
    if paddings.data.shape != (len(x.shape), 2) or np.any(paddings.data < 0):
        raise ctx.error(f"has paddings {paddings.data.tolist()}; it needs {len(x.shape)} "
                        f"non-negative (before, after) pairs")
    return {"paddings": tuple(tuple(int(v) for v in pair) for pair in paddings.data)}


def _concatenation(ctx):
    if len(ctx.op.outputs) != 1 or not ctx.op.inputs:
        raise ctx.error("must have inputs and one output")
    y = ctx.codes(ctx.output(), "output")
    for position in range(len(ctx.op.inputs)):
        x = ctx.codes(ctx.input(position), f"input {position}")
        if (x.quant.scale[0] != y.quant.scale[0]
                or x.quant.zero_point[0] != y.quant.zero_point[0]):
            raise ctx.error(f"input {position} (tensor {x.index}) has scale "
                            f"{float(x.quant.scale[0])!r} and zero point "
                            f"{int(x.quant.zero_point[0])}; TFLite's int8 kernel needs the "
                            f"output's ({float(y.quant.scale[0])!r}, {int(y.quant.zero_point[0])})")
    raw = ctx.options(BuiltinOptions.ConcatenationOptions, tflite.ConcatenationOptions)
    activation = ctx.activation(raw.FusedActivationFunction())
    if activation != "linear":
        raise ctx.error(f"fuses {activation}; TFLite's CONCATENATION takes no activation")
    axis = raw.Axis()
    if not -len(y.shape) <= axis < len(y.shape):
        raise ctx.error(f"has axis {axis}; it must be in {-len(y.shape)}..{len(y.shape) - 1}")
    return {"axis": axis % len(y.shape), "activation": activation}


def _softmax(ctx):
    ctx.count((1,))
    x = ctx.codes(ctx.input(0), "input")
    y = ctx.codes(ctx.output(), "output")
    scale, zero_point = float(y.quant.scale[0]), int(y.quant.zero_point[0])
    if zero_point != -128 or abs(scale - 1 / 256) > 0.001 / 256:
        raise ctx.error(f"has output scale {scale!r} and zero point {zero_point}; an int8 "
                        f"softmax needs 1/256 and -128")
    raw = ctx.options(BuiltinOptions.SoftmaxOptions, tflite.SoftmaxOptions)
    beta = float(raw.Beta())
    try:
        golden.softmax_parameters(beta, x.quant.scale[0])
    except ValueError as exc:
        raise ctx.error(f"cannot run: {exc}") from None
    return {"beta": beta}


def _quantize(ctx):
    ctx.count((1,))
    x = ctx.input(0)
    if x.dtype == "float32":
        ctx.codes(ctx.output(), "output", dtypes=("int8", "uint8"))
    elif x.dtype == "int16":
        ctx.codes(x, "input", dtypes=("int16",))
        ctx.codes(ctx.output(), "output", dtypes=("int8",))
    else:
        ctx.codes(x, "input", dtypes=("int8", "uint8"))
        ctx.codes(ctx.output(), "output", dtypes=("int8", "uint8"))
    return {}


def _dequantize(ctx):
    ctx.count((1,))
    ctx.codes(ctx.input(0), "input", dtypes=("int8", "uint8", "int16"))
    y = ctx.output()
    if y.dtype != "float32":
        raise ctx.error(f"output (tensor {y.index}) is {y.dtype}; it must be float32")
    return {}


#: One handler per supported op kind: checks the op and returns its normalized options.
HANDLERS = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _add,
    "MAX_POOL_2D": _pool,
    "AVERAGE_POOL_2D": _pool,
    "MEAN": _mean,
    "RESHAPE": _reshape,
    "PAD": _pad,
    "CONCATENATION": _concatenation,
    "SOFTMAX": _softmax,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
}
#: The op kinds qmac imports and runs.
SUPPORTED_OPS = tuple(HANDLERS)
