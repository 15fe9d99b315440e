"""Write an integer :class:`~nets.graph.Graph` as a ``.tflite`` flatbuffer (schema 3).

:func:`tflite_bytes` turns a graph into the bytes of a model that TFLite's interpreter
runs and :func:`nets.load_tflite` reads back into the same graph. It uses the flatbuffer
builder functions that the ``tflite`` package ships (``ModelStart``, ``OperatorStart``...).
Any builtin op can be written; those qmac runs get their options table, every other one
is written without options (enough for a test of the importer's refusal). An op's
inputs are TFLite's, constants included: MEAN's second input is the int32 axis
tensor, PAD's the int32 paddings tensor, RESHAPE's optional second input the int32 shape;
a RESHAPE without it gets the output tensor's shape as ``new_shape`` option.
"""

from pathlib import Path

import flatbuffers
import numpy as np
import tflite
from tflite.BuiltinOptions import BuiltinOptions

from .errors import ModelError
from .tflite_schema import (
    ACTIVATION_CODES,
    DTYPE_TO_TENSOR_TYPE,
    OP_CODES,
    OP_VERSIONS,
    PADDING_CODES,
)

__all__ = ["tflite_bytes", "save_tflite"]

#: Schema version written in the model (TFLite's current schema).
SCHEMA_VERSION = 3
#: Constant buffers are aligned like TFLiteConverter aligns them.
BUFFER_ALIGNMENT = 16


def save_tflite(graph, path):
    """Write ``graph`` to ``path`` as a ``.tflite`` file (see :func:`tflite_bytes`)."""
    Path(path).write_bytes(tflite_bytes(graph))


def tflite_bytes(graph, description="qmac"):
    """The ``.tflite`` flatbuffer of ``graph``: one subgraph, one buffer per constant.

    Parameters
    ----------
    graph : nets.Graph
        Ops of the kinds :data:`nets.tflite_schema.OP_VERSIONS` names, with the normalized
        options of :mod:`nets.graph`.
    description : str
        The model's description string.

    Returns
    -------
    bytes

    Raises
    ------
    ModelError
        If an op kind is not a TFLite builtin, or an option cannot be written.
    """
    builder = flatbuffers.Builder(4096)
    kinds = sorted({op.kind for op in graph.ops})
    for op in graph.ops:
        if op.kind not in OP_CODES:
            raise ModelError(f"op {op.index} ({op.kind}) is not a TFLite builtin op; it cannot "
                             f"be written")
    opcode_index = {kind: i for i, kind in enumerate(kinds)}

    buffers = [_buffer(builder, None)]
    tensor_buffer = []
    for tensor in graph.tensors:
        if tensor.is_constant:
            tensor_buffer.append(len(buffers))
            buffers.append(_buffer(builder, tensor.data))
        else:
            tensor_buffer.append(0)
    tensors = [_tensor(builder, t, b) for t, b in zip(graph.tensors, tensor_buffer, strict=True)]
    operators = [_operator(builder, graph, op, opcode_index[op.kind]) for op in graph.ops]
    codes = [_operator_code(builder, kind) for kind in kinds]

    subgraph_name = builder.CreateString("main")
    tensors_vec = _offsets(builder, tflite.SubGraphStartTensorsVector, tensors)
    inputs_vec = builder.CreateNumpyVector(np.array(graph.inputs, dtype=np.int32))
    outputs_vec = builder.CreateNumpyVector(np.array(graph.outputs, dtype=np.int32))
    operators_vec = _offsets(builder, tflite.SubGraphStartOperatorsVector, operators)
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensors_vec)
    tflite.SubGraphAddInputs(builder, inputs_vec)
    tflite.SubGraphAddOutputs(builder, outputs_vec)
    tflite.SubGraphAddOperators(builder, operators_vec)
    tflite.SubGraphAddName(builder, subgraph_name)
    subgraph = tflite.SubGraphEnd(builder)

    description_str = builder.CreateString(description)
    codes_vec = _offsets(builder, tflite.ModelStartOperatorCodesVector, codes)
    subgraphs_vec = _offsets(builder, tflite.ModelStartSubgraphsVector, [subgraph])
    buffers_vec = _offsets(builder, tflite.ModelStartBuffersVector, buffers)
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(builder, codes_vec)
    tflite.ModelAddSubgraphs(builder, subgraphs_vec)
    tflite.ModelAddDescription(builder, description_str)
    tflite.ModelAddBuffers(builder, buffers_vec)
    model = tflite.ModelEnd(builder)
    builder.Finish(model, file_identifier=b"TFL3")
    return bytes(builder.Output())


def _offsets(builder, start, items):
    """A vector of table offsets (flatbuffers prepends, so the items go in reverse)."""
    start(builder, len(items))
    for item in reversed(items):
        builder.PrependUOffsetTRelative(item)
    return builder.EndVector()


def _buffer(builder, data):
    data_vec = None
    if data is not None:
        payload = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes()
        builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
        builder.head -= len(payload)
        builder.Bytes[builder.head:builder.head + len(payload)] = payload
        data_vec = builder.EndVector()
    tflite.BufferStart(builder)
    if data_vec is not None:
        tflite.BufferAddData(builder, data_vec)
    return tflite.BufferEnd(builder)


def _tensor(builder, tensor, buffer_index):
    name = builder.CreateString(tensor.name)
    shape = builder.CreateNumpyVector(np.array(tensor.shape, dtype=np.int32))
    quant = None
    if tensor.quant is not None:
        scale = builder.CreateNumpyVector(tensor.quant.scale.astype(np.float32))
        zero_point = builder.CreateNumpyVector(tensor.quant.zero_point.astype(np.int64))
        tflite.QuantizationParametersStart(builder)
        tflite.QuantizationParametersAddScale(builder, scale)
        tflite.QuantizationParametersAddZeroPoint(builder, zero_point)
        tflite.QuantizationParametersAddQuantizedDimension(
            builder, tensor.quant.axis)
        quant = tflite.QuantizationParametersEnd(builder)
    tflite.TensorStart(builder)
    tflite.TensorAddShape(builder, shape)
    tflite.TensorAddType(builder, DTYPE_TO_TENSOR_TYPE[tensor.dtype])
    tflite.TensorAddBuffer(builder, buffer_index)
    tflite.TensorAddName(builder, name)
    if quant is not None:
        tflite.TensorAddQuantization(builder, quant)
    return tflite.TensorEnd(builder)


def _operator_code(builder, kind):
    code = OP_CODES[kind]
    tflite.OperatorCodeStart(builder)
    # Codes past 127 live only in builtin_code; the deprecated int8 field holds 127 then
    # (PLACEHOLDER_FOR_GREATER_OP_CODES), as TFLite's schema says.
    tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, min(code, 127))
    tflite.OperatorCodeAddBuiltinCode(builder, code)
    tflite.OperatorCodeAddVersion(builder, OP_VERSIONS.get(kind, 1))
    return tflite.OperatorCodeEnd(builder)


def _operator(builder, graph, op, opcode_index):
    options_type, options = _options(builder, graph, op)
    inputs = builder.CreateNumpyVector(np.array(op.inputs, dtype=np.int32))
    outputs = builder.CreateNumpyVector(np.array(op.outputs, dtype=np.int32))
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, opcode_index)
    tflite.OperatorAddInputs(builder, inputs)
    tflite.OperatorAddOutputs(builder, outputs)
    if options is not None:
        tflite.OperatorAddBuiltinOptionsType(builder, options_type)
        tflite.OperatorAddBuiltinOptions(builder, options)
    return tflite.OperatorEnd(builder)


def _option(op, name):
    try:
        return op.options[name]
    except KeyError:
        raise ModelError(f"op {op.index} ({op.kind}) has no {name!r} option; it needs "
                         f"{name!r} to be written") from None


def _activation(op):
    activation = op.options.get("activation", "linear")
    if activation not in ACTIVATION_CODES:
        raise ModelError(f"op {op.index} ({op.kind}) has activation {activation!r}; allowed: "
                         f"{', '.join(ACTIVATION_CODES)}")
    return ACTIVATION_CODES[activation]


def _padding(op):
    padding = _option(op, "padding")
    if padding not in PADDING_CODES:
        raise ModelError(f"op {op.index} ({op.kind}) has padding {padding!r}; allowed: SAME, "
                         f"VALID")
    return PADDING_CODES[padding]


def _options(builder, graph, op):
    """``(BuiltinOptions type, offset)`` of ``op``'s options table."""
    kind = op.kind
    if kind not in OP_VERSIONS:
        return None, None
    if kind == "CONV_2D":
        (sh, sw), (dh, dw) = _option(op, "stride"), op.options.get("dilation", (1, 1))
        tflite.Conv2DOptionsStart(builder)
        tflite.Conv2DOptionsAddPadding(builder, _padding(op))
        tflite.Conv2DOptionsAddStrideH(builder, sh)
        tflite.Conv2DOptionsAddStrideW(builder, sw)
        tflite.Conv2DOptionsAddDilationHFactor(builder, dh)
        tflite.Conv2DOptionsAddDilationWFactor(builder, dw)
        tflite.Conv2DOptionsAddFusedActivationFunction(builder, _activation(op))
        return BuiltinOptions.Conv2DOptions, tflite.Conv2DOptionsEnd(builder)
    if kind == "DEPTHWISE_CONV_2D":
        (sh, sw), (dh, dw) = _option(op, "stride"), op.options.get("dilation", (1, 1))
        tflite.DepthwiseConv2DOptionsStart(builder)
        tflite.DepthwiseConv2DOptionsAddPadding(builder, _padding(op))
        tflite.DepthwiseConv2DOptionsAddStrideH(builder, sh)
        tflite.DepthwiseConv2DOptionsAddStrideW(builder, sw)
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(builder, dh)
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(builder, dw)
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(builder, _option(op, "depth_multiplier"))
        tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(builder, _activation(op))
        return BuiltinOptions.DepthwiseConv2DOptions, tflite.DepthwiseConv2DOptionsEnd(builder)
    if kind == "FULLY_CONNECTED":
        tflite.FullyConnectedOptionsStart(builder)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(builder, _activation(op))
        tflite.FullyConnectedOptionsAddKeepNumDims(builder, bool(op.options.get("keep_num_dims",
                                                                                False)))
        return BuiltinOptions.FullyConnectedOptions, tflite.FullyConnectedOptionsEnd(builder)
    if kind == "ADD":
        tflite.AddOptionsStart(builder)
        tflite.AddOptionsAddFusedActivationFunction(builder, _activation(op))
        return BuiltinOptions.AddOptions, tflite.AddOptionsEnd(builder)
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        (sh, sw), (fh, fw) = _option(op, "stride"), _option(op, "filter")
        tflite.Pool2DOptionsStart(builder)
        tflite.Pool2DOptionsAddPadding(builder, _padding(op))
        tflite.Pool2DOptionsAddStrideH(builder, sh)
        tflite.Pool2DOptionsAddStrideW(builder, sw)
        tflite.Pool2DOptionsAddFilterHeight(builder, fh)
        tflite.Pool2DOptionsAddFilterWidth(builder, fw)
        tflite.Pool2DOptionsAddFusedActivationFunction(builder, _activation(op))
        return BuiltinOptions.Pool2DOptions, tflite.Pool2DOptionsEnd(builder)
    if kind == "MEAN":
        tflite.ReducerOptionsStart(builder)
        tflite.ReducerOptionsAddKeepDims(builder, bool(op.options.get("keep_dims",
                                                                              False)))
        return BuiltinOptions.ReducerOptions, tflite.ReducerOptionsEnd(builder)
    if kind == "RESHAPE":
        if len(op.inputs) > 1:
            return None, None
        new_shape = builder.CreateNumpyVector(
            np.array(graph.tensors[op.outputs[0]].shape, dtype=np.int32))
        tflite.ReshapeOptionsStart(builder)
        tflite.ReshapeOptionsAddNewShape(builder, new_shape)
        return BuiltinOptions.ReshapeOptions, tflite.ReshapeOptionsEnd(builder)
    if kind == "PAD":
        tflite.PadOptionsStart(builder)
        return BuiltinOptions.PadOptions, tflite.PadOptionsEnd(builder)
    if kind == "CONCATENATION":
        tflite.ConcatenationOptionsStart(builder)
        tflite.ConcatenationOptionsAddAxis(builder, _option(op, "axis"))
        tflite.ConcatenationOptionsAddFusedActivationFunction(builder,
                                                                           _activation(op))
        return (BuiltinOptions.ConcatenationOptions,
                tflite.ConcatenationOptionsEnd(builder))
    if kind == "SOFTMAX":
        tflite.SoftmaxOptionsStart(builder)
        tflite.SoftmaxOptionsAddBeta(builder, float(op.options.get("beta", 1.0)))
        return BuiltinOptions.SoftmaxOptions, tflite.SoftmaxOptionsEnd(builder)
    if kind == "QUANTIZE":
        tflite.QuantizeOptionsStart(builder)
        return BuiltinOptions.QuantizeOptions, tflite.QuantizeOptionsEnd(builder)
    tflite.DequantizeOptionsStart(builder)
    return BuiltinOptions.DequantizeOptions, tflite.DequantizeOptionsEnd(builder)
