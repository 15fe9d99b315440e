"""Golden inference of an integer graph: every op through qmac's golden integer kernels.

:func:`run` walks the ops of a :class:`~nets.graph.Graph` in order; each op kind has one
small function in :data:`EXECUTORS` that calls the golden primitive computing it exactly
as TensorFlow Lite's reference kernel does (see each primitive's docstring and the
README's "Networks" section). The batch is the first axis of every activation and may
have any size, whatever batch the model file was written with.
"""

import numpy as np

import golden

from .errors import ModelError

__all__ = ["run", "EXECUTORS", "batch_free"]


def run(graph, x, *, keep_all=False):
    """Run ``graph`` on a batch with the golden model.

    Parameters
    ----------
    graph : nets.Graph
    x : numpy.ndarray, or a sequence of them for a graph with several inputs
        Batch first, each of its input tensor's dtype (int8 for a full-integer model,
        float32 in front of a QUANTIZE) and of its shape past the first axis. Any batch
        size works when every activation of the graph has the batch as its first axis
        (:func:`batch_free`); otherwise only the file's batch does.
    keep_all : bool
        Also return every activation tensor.

    Returns
    -------
    numpy.ndarray, or a tuple of them for a graph with several outputs
        The graph's outputs, batch first.
    dict of int to numpy.ndarray
        With ``keep_all`` only: every activation tensor (graph inputs included) by index.

    Raises
    ------
    ModelError
        If an input has the wrong dtype or shape, holds non-finite floats, or the batch
        cannot run (see above).
    """
    unknown = [f"{op.index} ({op.kind})" for op in graph.ops if op.kind not in EXECUTORS]
    if unknown:
        raise ModelError(f"{graph.name or 'graph'} has ops qmac does not run: "
                         f"{', '.join(unknown)}; supported: {', '.join(EXECUTORS)}")
    if not graph.inputs or any(not graph.tensors[i].shape for i in graph.inputs):
        raise ModelError(f"{graph.name or 'graph'} must have inputs with a batch axis, not "
                         f"shapes {[graph.tensors[i].shape for i in graph.inputs]}")
    arrays = _check_inputs(graph, x)
    file_batch = graph.tensors[graph.inputs[0]].shape[0]
    batch = file_batch
    if any(a.shape != graph.tensors[i].shape for a, i in zip(arrays, graph.inputs, strict=True)):
        batch = arrays[0].shape[0]
        for position, array in enumerate(arrays):
            if array.shape[0] != batch:
                raise ModelError(f"{graph.name or 'graph'} input {position} has batch "
                                 f"{array.shape[0]}; input 0 has {batch}")
        if not batch_free(graph):
            raise ModelError(f"{graph.name or 'graph'} runs only the inputs' shapes of the "
                             f"file (batch {file_batch}), not batch {batch}: an op or a tensor "
                             f"of it does not keep the batch as its first axis")
    values = dict(zip(graph.inputs, arrays, strict=True))
    for op in graph.ops:
        try:
            result = EXECUTORS[op.kind](graph, op, _Inputs(graph, values))
        except ModelError:
            raise
        except ValueError as exc:
            # A golden primitive refusing the op's parameters (a multiplier out of range...).
            raise ModelError(f"{graph.name or 'graph'}: op {op.index} ({op.kind}) cannot run: "
                             f"{exc}") from None
        for index, array in zip(op.outputs, _as_tuple(result), strict=True):
            values[index] = _check_result(graph, op, index, array, batch, file_batch)
    outputs = tuple(values[i] if i in values else graph.tensors[i].data for i in graph.outputs)
    outputs = outputs[0] if len(outputs) == 1 else outputs
    return (outputs, values) if keep_all else outputs


def batch_free(graph):
    """Whether ``graph`` runs any batch size: True when every activation leads with the batch.

    That is, every non-constant tensor's first dimension is the file's batch (the first
    input's first dimension), and no MEAN, PAD or CONCATENATION works along that axis.
    """
    file_batch = graph.tensors[graph.inputs[0]].shape[0] if graph.inputs else 1
    for tensor in graph.tensors:
        if not tensor.is_constant and (not tensor.shape or tensor.shape[0] != file_batch):
            return False
    for op in graph.ops:
        rank = len(graph.tensors[op.inputs[0]].shape) if op.inputs else 0
        if op.kind == "MEAN" and any(a % rank == 0 for a in op.options["axis"]):
            return False
        if op.kind == "PAD" and tuple(op.options["paddings"][0]) != (0, 0):
            return False
        if op.kind == "CONCATENATION" and op.options["axis"] == 0:
            return False
    return True


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def _check_inputs(graph, x):
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    name = graph.name or "graph"
    if len(arrays) != len(graph.inputs):
        raise ModelError(f"{name} takes {len(graph.inputs)} inputs, not {len(arrays)}")
    checked = []
    for position, (array, index) in enumerate(zip(arrays, graph.inputs, strict=True)):
        tensor = graph.tensors[index]
        array = np.asarray(array)
        want = f"({'B, ' + ', '.join(map(str, tensor.shape[1:])) if tensor.shape else ''})"
        label = f"{name} input {position} ({tensor.name!r})"
        if array.dtype != np.dtype(tensor.dtype):
            raise ModelError(f"{label} must be {tensor.dtype} of shape {want}, not "
                             f"{array.dtype}")
        if array.ndim != len(tensor.shape) or array.shape[1:] != tensor.shape[1:] \
                or array.shape[0] == 0:
            raise ModelError(f"{label} must have shape {want} with B >= 1, not "
                             f"{array.shape}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ModelError(f"{label} holds {array[~np.isfinite(array)].flat[0]}; float inputs "
                             f"must be finite")
        checked.append(array)
    return checked


def _check_result(graph, op, index, array, batch, file_batch):
    tensor = graph.tensors[index]
    shape = tensor.shape if batch == file_batch else (batch,) + tensor.shape[1:]
    if array.shape != shape or array.dtype != np.dtype(tensor.dtype):
        raise ModelError(f"op {op.index} ({op.kind}) computes {array.dtype} {array.shape} for "
                         f"tensor {index} ({tensor.name!r}), which the graph declares "
                         f"{tensor.dtype} {shape}")
    return array


class _Inputs:
    """An op's input values and quantization, constants read from the graph."""

    def __init__(self, graph, values):
        self.graph = graph
        self.values = values

    def value(self, op, position):
        if position >= len(op.inputs) or op.inputs[position] < 0:
            return None
        index = op.inputs[position]
        tensor = self.graph.tensors[index]
        return tensor.data if tensor.is_constant else self.values[index]

    def quant(self, index):
        return self.graph.tensors[index].quant

    def scale(self, index):
        return float(self.graph.tensors[index].quant.scale[0])

    def zero_point(self, index):
        return int(self.graph.tensors[index].quant.zero_point[0])


def _weight_scale(quant):
    return quant.scale if quant.per_channel else float(quant.scale[0])


def _activation_range(values, op):
    out = op.outputs[0]
    tensor = values.graph.tensors[out]
    info = np.iinfo(tensor.dtype)
    return golden.activation_range(op.options.get("activation", "linear"), values.scale(out),
                                   values.zero_point(out), info.bits, info.min < 0)


def _conv_kwargs(values, op):
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    return dict(x_scale=values.scale(x), x_zero_point=values.zero_point(x),
                w_scale=_weight_scale(values.quant(w)), y_scale=values.scale(y),
                y_zero_point=values.zero_point(y), stride=op.options["stride"],
                padding=op.options["padding"], dilation=op.options["dilation"],
                activation=op.options["activation"])


def _conv_2d(graph, op, values):
    return golden.quantized_conv2d(values.value(op, 0), values.value(op, 1),
                                   values.value(op, 2), w_zero_point=0,
                                   **_conv_kwargs(values, op))


def _depthwise_conv_2d(graph, op, values):
    return golden.quantized_depthwise_conv2d(values.value(op, 0), values.value(op, 1),
                                             values.value(op, 2), **_conv_kwargs(values, op))


def _fully_connected(graph, op, values):
    x, w = values.value(op, 0), values.value(op, 1)
    depth = w.shape[1]
    rows = x.reshape(-1, depth)
    wq = values.quant(op.inputs[1])
    y = op.outputs[0]
    out = golden.quantized_fully_connected(
        rows, w, values.value(op, 2), x_scale=values.scale(op.inputs[0]),
        x_zero_point=values.zero_point(op.inputs[0]), w_scale=_weight_scale(wq),
        w_zero_point=0 if wq.per_channel else int(wq.zero_point[0]), y_scale=values.scale(y),
        y_zero_point=values.zero_point(y), activation=op.options["activation"])
    if op.options.get("keep_num_dims"):
        return out.reshape(x.shape[:-1] + (w.shape[0],))
    return out


def _add(graph, op, values):
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    return golden.quantized_add(
        values.value(op, 0), values.value(op, 1), a_scale=values.scale(a),
        a_zero_point=values.zero_point(a), b_scale=values.scale(b),
        b_zero_point=values.zero_point(b), y_scale=values.scale(y),
        y_zero_point=values.zero_point(y), activation=op.options["activation"])


def _pool(primitive):
    def execute(graph, op, values):
        act_min, act_max = _activation_range(values, op)
        return primitive(values.value(op, 0), op.options["filter"], op.options["stride"],
                         op.options["padding"], act_min, act_max)
    return execute


def _mean(graph, op, values):
    x, y = op.inputs[0], op.outputs[0]
    return golden.quantized_mean(values.value(op, 0), op.options["axis"], op.options["keep_dims"],
                                 x_scale=values.scale(x), x_zero_point=values.zero_point(x),
                                 y_scale=values.scale(y), y_zero_point=values.zero_point(y))


def _reshape(graph, op, values):
    x = values.value(op, 0)
    shape = graph.tensors[op.outputs[0]].shape
    file_batch = graph.tensors[op.inputs[0]].shape[0]
    if x.shape[0] != file_batch:
        shape = (x.shape[0],) + shape[1:]
    return x.reshape(shape)


def _pad(graph, op, values):
    return golden.pad(values.value(op, 0), op.options["paddings"],
                      values.zero_point(op.outputs[0]))


def _concatenation(graph, op, values):
    return golden.concatenate([values.value(op, i) for i in range(len(op.inputs))],
                              op.options["axis"])


def _softmax(graph, op, values):
    return golden.quantized_softmax(values.value(op, 0), x_scale=values.scale(op.inputs[0]),
                                    beta=op.options["beta"])


def _quantize(graph, op, values):
    x, y = op.inputs[0], op.outputs[0]
    dtype = np.dtype(graph.tensors[y].dtype)
    if graph.tensors[x].dtype == "float32":
        return golden.quantize(values.value(op, 0), np.float32(values.scale(y)),
                               values.zero_point(y), bits=8, signed=dtype == np.int8)
    return golden.requantize_codes(values.value(op, 0), x_scale=values.scale(x),
                                   x_zero_point=values.zero_point(x), y_scale=values.scale(y),
                                   y_zero_point=values.zero_point(y), dtype=dtype)


def _dequantize(graph, op, values):
    x = op.inputs[0]
    # TFLite: float(double(scale) * (q - zero_point)), one double product rounded to float.
    return golden.dequantize(values.value(op, 0), values.scale(x),
                             values.zero_point(x)).astype(np.float32)


#: One function per op kind: ``(graph, op, inputs) -> output array``.
EXECUTORS = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _add,
    "MAX_POOL_2D": _pool(golden.max_pool2d),
    "AVERAGE_POOL_2D": _pool(golden.average_pool2d),
    "MEAN": _mean,
    "RESHAPE": _reshape,
    "PAD": _pad,
    "CONCATENATION": _concatenation,
    "SOFTMAX": _softmax,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
}
