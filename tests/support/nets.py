"""Test support for nets: a graph builder, seeded random single-op cases, LiteRT as oracle.

Each ``random_*`` function adds one op of its kind to a :class:`GraphBuilder`, fed by new
graph inputs, with random shapes, options and quantization drawn from ``rng``; many cases
share one model so that one interpreter runs them all. :func:`litert_tensors` runs a model
with TensorFlow Lite's reference kernels (``BUILTIN_REF``) and returns every tensor.
"""

import numpy as np

import golden
from nets import Graph, Op, Quant, Tensor

__all__ = ["GraphBuilder", "CASES", "random_inputs", "litert_tensors", "assert_same_graph",
           "first_difference", "chain_case"]

ACTIVATIONS = ("linear", "relu", "relu6", "relu_n1_to_1")


class GraphBuilder:
    """Accumulates tensors and ops; :meth:`graph` returns the :class:`nets.Graph`."""

    def __init__(self, batch=1):
        self.batch = batch
        self.tensors = []
        self.ops = []
        self.inputs = []
        self.outputs = []

    def tensor(self, shape, dtype="int8", quant=None, data=None, name=None):
        index = len(self.tensors)
        self.tensors.append(Tensor(index, name or f"t{index}", tuple(shape), dtype, quant, data))
        return index

    def input(self, shape, dtype="int8", quant=None):
        index = self.tensor(shape, dtype, quant)
        self.inputs.append(index)
        return index

    def op(self, kind, inputs, outputs, **options):
        self.ops.append(Op(len(self.ops), kind, inputs, outputs, options))
        return outputs[0]

    def output(self, index):
        self.outputs.append(index)

    def graph(self, name="random"):
        return Graph(self.tensors, self.ops, self.inputs, self.outputs, name=name)

    def shape(self, index):
        return self.tensors[index].shape

    def quant(self, index):
        return self.tensors[index].quant


def act_quant(rng, dtype="int8"):
    """A random per-tensor activation quantization of ``dtype``."""
    scale = float(10 ** rng.uniform(-3, 0))
    if dtype == "int16":
        return Quant(scale, int(rng.integers(-300, 301)))
    lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
    return Quant(scale, int(rng.integers(lo, hi + 1)))


#: How a layer's scales are drawn: "wide" spreads int8 accumulators over the output range;
#: "fine" has small weights and multipliers near 1, so that requantization rounds with few
#: fraction bits and ties are frequent; "pow2" makes every scale a power of two, so that
#: the real multiplier is exact and exact ties happen (where the double-precision rounding
#: of FULLY_CONNECTED and gemmlowp's two-step rounding part ways).
SCALE_MODES = ("wide", "fine", "pow2")


def scale_mode(rng):
    return str(rng.choice(SCALE_MODES, p=[0.5, 0.3, 0.2]))


def _weights(rng, shape, axis, per_channel, mode="wide"):
    """Symmetric int8 weights and their Quant (per tensor or per channel on ``axis``)."""
    if mode == "wide":
        w = rng.integers(-127, 128, shape).astype(np.int8)
        if rng.random() < 0.1:
            w[...] = rng.choice([-127, 0, 127], shape)       # extremes
    else:
        w = rng.integers(-1, 2, shape).astype(np.int8)
    channels = shape[axis] if per_channel else 1
    if mode == "pow2":
        scale = 2.0 ** -(rng.integers(4, 10) + rng.integers(0, 3, channels))
    else:
        scale = 10 ** rng.uniform(-3.5, -1, channels)
    if per_channel:
        return w, Quant(scale, np.zeros(channels, np.int64), axis)
    return w, Quant(float(scale[0]), 0)


def _bias(rng, builder, x_quant, w_quant, channels, depth, mode="wide"):
    """An int32 bias tensor with TFLite's scale ``x_scale * w_scale[c]`` (float32 product).

    Its values are about as large as the accumulators of ``depth`` products.
    """
    w_scale = np.broadcast_to(w_quant.scale, (channels,))
    scale = np.float32(x_quant.scale[0]) * w_scale.astype(np.float32)
    limit = int((5000 if mode == "wide" else 300) * np.sqrt(depth))
    data = rng.integers(-limit, limit + 1, channels).astype(np.int32)
    quant = Quant(scale if w_quant.per_channel else scale[:1], np.zeros(scale.size if
                                                                           w_quant.per_channel
                                                                           else 1, np.int64))
    return builder.tensor((channels,), "int32", quant, data)


def _output_quant(rng, x_quant, w_quant, depth, mode="wide"):
    """An output quantization for the accumulators of ``depth`` products (see SCALE_MODES)."""
    zero_point = int(rng.integers(-128, 128))
    # Typical accumulators: ~5400 * sqrt(depth) for full int8 weights, ~120 * sqrt(depth)
    # for the small weights of the other modes; outputs of ~40 codes use the int8 range.
    if mode == "pow2":
        product = float(x_quant.scale[0]) * float(np.max(w_quant.scale))
        shift = int(np.clip(np.round(np.log2(120 * np.sqrt(depth) / 40)), 1, 12))
        return Quant(product * 2.0 ** (shift + rng.integers(-1, 2)), zero_point)
    mean_w = float(np.mean(w_quant.scale))
    if mode == "fine":
        multiplier = 40 / (120 * np.sqrt(depth)) * 2.0 ** rng.uniform(-1.5, 1.5)
    else:
        multiplier = 0.0074 / np.sqrt(depth) * 10 ** rng.uniform(-0.8, 0.8)
    return Quant(float(x_quant.scale[0]) * mean_w / multiplier, zero_point)


def _input_quant(rng, mode):
    if mode == "pow2":
        return Quant(2.0 ** -rng.integers(3, 9), int(rng.integers(-128, 128)))
    return act_quant(rng)


def _spatial(rng, kernel_max=4):
    h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    kh, kw = int(rng.integers(1, kernel_max + 1)), int(rng.integers(1, kernel_max + 1))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    dilation = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.3 \
        else (1, 1)
    padding = "SAME" if rng.random() < 0.5 else "VALID"
    if padding == "VALID" and ((kh - 1) * dilation[0] + 1 > h or (kw - 1) * dilation[1] + 1 > w):
        padding = "SAME"
    return h, w, (kh, kw), stride, dilation, padding


def _out_hw(h, w, kernel, stride, dilation, padding):
    oh, ow, _, _ = golden.conv_output_shape(h, w, kernel, stride, padding, dilation)
    return oh, ow


def random_conv_2d(rng, b):
    h, w, kernel, stride, dilation, padding = _spatial(rng)
    cin, cout = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    mode = scale_mode(rng)
    xq = _input_quant(rng, mode)
    x = b.input((b.batch, h, w, cin), quant=xq)
    wd, wq = _weights(rng, (cout,) + kernel + (cin,), 0, rng.random() < 0.7, mode)
    wt = b.tensor(wd.shape, "int8", wq, wd)
    depth = kernel[0] * kernel[1] * cin
    bt = _bias(rng, b, xq, wq, cout, depth, mode)
    oh, ow = _out_hw(h, w, kernel, stride, dilation, padding)
    y = b.tensor((b.batch, oh, ow, cout), quant=_output_quant(rng, xq, wq, depth, mode))
    return b.op("CONV_2D", (x, wt, bt), (y,), stride=stride, padding=padding,
                dilation=dilation, activation=str(rng.choice(ACTIVATIONS)))


def random_depthwise_conv_2d(rng, b):
    h, w, kernel, stride, dilation, padding = _spatial(rng)
    cin, mult = int(rng.integers(1, 7)), int(rng.integers(1, 4))
    mode = scale_mode(rng)
    xq = _input_quant(rng, mode)
    x = b.input((b.batch, h, w, cin), quant=xq)
    wd, wq = _weights(rng, (1,) + kernel + (cin * mult,), 3, rng.random() < 0.7, mode)
    wt = b.tensor(wd.shape, "int8", wq, wd)
    depth = kernel[0] * kernel[1]
    bt = _bias(rng, b, xq, wq, cin * mult, depth, mode)
    oh, ow = _out_hw(h, w, kernel, stride, dilation, padding)
    y = b.tensor((b.batch, oh, ow, cin * mult),
                 quant=_output_quant(rng, xq, wq, depth, mode))
    return b.op("DEPTHWISE_CONV_2D", (x, wt, bt), (y,), stride=stride, padding=padding,
                dilation=dilation, depth_multiplier=mult,
                activation=str(rng.choice(ACTIVATIONS)))


def random_fully_connected(rng, b):
    form = rng.integers(0, 3)
    mode = scale_mode(rng)
    # Short rows in the tie-prone modes keep the outputs off the clamp.
    depth = int(rng.integers(1, 65 if mode == "wide" else 7))
    if form == 0:                       # (batch, depth)
        x_shape = (b.batch, depth)
    elif form == 1:                     # (batch, rows, depth), rows kept or flattened
        x_shape = (b.batch, int(rng.integers(1, 5)), depth)
    else:                               # NHWC flattened into one row per image
        h, w, c = (int(v) for v in rng.integers(1, 5 if mode == "wide" else 3, 3))
        x_shape, depth = (b.batch, h, w, c), h * w * c
    keep = bool(form == 1 and rng.random() < 0.5)
    units = int(rng.integers(1, 17))
    xq = _input_quant(rng, mode)
    x = b.input(x_shape, quant=xq)
    per_channel = rng.random() < 0.5
    wd, wq = _weights(rng, (units, depth), 0, per_channel, mode)
    if not per_channel and rng.random() < 0.3:
        wq = Quant(wq.scale, int(rng.integers(-20, 21)))     # asymmetric per-tensor weights
    wt = b.tensor(wd.shape, "int8", wq, wd)
    inputs = (x, wt)
    if rng.random() < 0.8:
        inputs += (_bias(rng, b, xq, Quant(wq.scale, np.zeros(wq.scale.size, np.int64),
                                           wq.axis), units, depth, mode),)
    elif rng.random() < 0.5:
        inputs += (-1,)
    rows = int(np.prod(x_shape)) // depth
    y_shape = x_shape[:-1] + (units,) if keep else (rows, units)
    y = b.tensor(y_shape, quant=_output_quant(rng, xq, wq, depth, mode))
    return b.op("FULLY_CONNECTED", inputs, (y,), keep_num_dims=keep,
                activation=str(rng.choice(ACTIVATIONS)))


def _random_nhwc(rng, b, dims=4):
    shape = (b.batch,) + tuple(int(v) for v in rng.integers(1, 7, dims - 1))
    return shape


def random_add(rng, b):
    shape = _random_nhwc(rng, b, int(rng.integers(2, 5)))
    pow2 = rng.random() < 0.3           # exact multipliers: exact ties in every rescaling
    qa, qb = (_input_quant(rng, "pow2"), _input_quant(rng, "pow2")) if pow2 \
        else (act_quant(rng), act_quant(rng))
    a = b.input(shape, quant=qa)
    form = rng.integers(0, 3)
    if form == 0:
        other = b.input(shape, quant=qb)
    else:
        other_shape = tuple(1 if (i == 0 or rng.random() < 0.5) else d for i, d in
                            enumerate(shape))
        if form == 1:
            other = b.input(other_shape, quant=qb)
        else:
            data = rng.integers(-128, 128, other_shape).astype(np.int8)
            other = b.tensor(other_shape, "int8", qb, data)
    if rng.random() < 0.5:
        a, other = other, a
    scale = max(qa.scale[0], qb.scale[0])
    scale *= 2.0 ** rng.integers(-1, 3) if pow2 else 10 ** rng.uniform(-0.5, 0.8)
    y = b.tensor(shape, quant=Quant(scale, int(rng.integers(-128, 128))))
    return b.op("ADD", (a, other), (y,), activation=str(rng.choice(ACTIVATIONS)))


def _random_pool(kind):
    def case(rng, b):
        h, w, c = int(rng.integers(1, 10)), int(rng.integers(1, 10)), int(rng.integers(1, 6))
        fh, fw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = "SAME" if rng.random() < 0.5 or fh > h or fw > w else "VALID"
        quant = act_quant(rng)
        x = b.input((b.batch, h, w, c), quant=quant)
        oh, ow = _out_hw(h, w, (fh, fw), stride, (1, 1), padding)
        y = b.tensor((b.batch, oh, ow, c), quant=quant)
        return b.op(kind, (x,), (y,), stride=stride, filter=(fh, fw), padding=padding,
                    activation=str(rng.choice(ACTIVATIONS)))
    return case


def random_mean(rng, b):
    rank = int(rng.integers(2, 5))
    shape = (b.batch,) + tuple(int(v) for v in rng.integers(1, 7, rank - 1))
    xq = act_quant(rng)
    x = b.input(shape, quant=xq)
    if rank == 4 and rng.random() < 0.4:
        axes = [1, 2]                   # global average pooling, the common case
    else:
        count = int(rng.integers(1, rank + 1))
        axes = [int(a) for a in rng.choice(rank, count, replace=False)]
        if rng.random() < 0.3:
            axes = [a - rank for a in axes]
        if rng.random() < 0.1:
            axes.append(axes[0])        # a repeated axis counts once
    keep = bool(rng.random() < 0.5)
    resolved = {a % rank for a in axes}
    if keep:
        y_shape = tuple(1 if i in resolved else d for i, d in enumerate(shape))
    else:
        y_shape = tuple(d for i, d in enumerate(shape) if i not in resolved)
    axis = b.tensor((len(axes),), "int32", None, np.array(axes, dtype=np.int32))
    yq = xq if rng.random() < 0.3 else act_quant(rng)
    y = b.tensor(y_shape, quant=yq)
    return b.op("MEAN", (x, axis), (y,), axis=tuple(axes), keep_dims=keep)


def random_reshape(rng, b):
    shape = _random_nhwc(rng, b, int(rng.integers(2, 5)))
    quant = act_quant(rng)
    x = b.input(shape, quant=quant)
    size = int(np.prod(shape[1:]))
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    first = int(rng.choice(divisors))
    y_shape = (b.batch, first, size // first) if rng.random() < 0.5 else (b.batch, size)
    y = b.tensor(y_shape, quant=quant)
    inputs = (x,)
    if rng.random() < 0.6:
        inputs += (b.tensor((len(y_shape),), "int32", None, np.array(y_shape, np.int32)),)
    return b.op("RESHAPE", inputs, (y,))


def random_pad(rng, b):
    rank = int(rng.integers(2, 5))
    shape = (b.batch,) + tuple(int(v) for v in rng.integers(1, 6, rank - 1))
    quant = act_quant(rng)
    x = b.input(shape, quant=quant)
    pads = rng.integers(0, 4, (rank, 2))
    if rng.random() < 0.7:
        pads[0] = 0
    y_shape = tuple(int(d + p.sum()) for d, p in zip(shape, pads, strict=True))
    paddings = b.tensor((rank, 2), "int32", None, pads.astype(np.int32))
    y = b.tensor(y_shape, quant=quant)
    return b.op("PAD", (x, paddings), (y,), paddings=tuple(tuple(int(v) for v in p)
                                                            for p in pads))


def random_concatenation(rng, b):
    rank = int(rng.integers(2, 5))
    shape = [b.batch] + [int(v) for v in rng.integers(1, 5, rank - 1)]
    axis = int(rng.integers(0 if rng.random() < 0.1 else 1, rank))
    quant = act_quant(rng)
    inputs = []
    for _ in range(int(rng.integers(1, 5))):
        part = list(shape)
        part[axis] = int(rng.integers(1, 4))
        inputs.append(b.input(tuple(part), quant=quant))
    y_shape = list(shape)
    y_shape[axis] = sum(b.shape(i)[axis] for i in inputs)
    y = b.tensor(tuple(y_shape), quant=quant)
    return b.op("CONCATENATION", tuple(inputs), (y,), axis=axis, activation="linear")


def random_softmax(rng, b):
    shape = (b.batch, int(rng.integers(1, 40))) if rng.random() < 0.6 \
        else _random_nhwc(rng, b, 4)
    xq = Quant(float(10 ** rng.uniform(-3, 0.3)), int(rng.integers(-128, 128)))
    x = b.input(shape, quant=xq)
    y = b.tensor(shape, quant=Quant(1 / 256, -128))
    beta = float(np.float32(10 ** rng.uniform(-1, 1))) if rng.random() < 0.5 else 1.0
    return b.op("SOFTMAX", (x,), (y,), beta=beta)


def random_quantize(rng, b):
    shape = _random_nhwc(rng, b, int(rng.integers(2, 5)))
    source = str(rng.choice(["float32", "int8", "uint8", "int16"]))
    target = "int8" if source == "int16" else str(rng.choice(["int8", "uint8"]))
    xq = None if source == "float32" else act_quant(rng, source)
    x = b.input(shape, source, xq)
    yq = act_quant(rng, target)
    if source != "float32" and rng.random() < 0.3:
        yq = Quant(xq.scale, yq.zero_point)                    # a pure zero-point shift
    y = b.tensor(shape, target, yq)
    return b.op("QUANTIZE", (x,), (y,))


def random_dequantize(rng, b):
    shape = _random_nhwc(rng, b, int(rng.integers(2, 5)))
    source = str(rng.choice(["int8", "uint8", "int8"]))
    x = b.input(shape, source, act_quant(rng, source))
    y = b.tensor(shape, "float32")
    return b.op("DEQUANTIZE", (x,), (y,))


#: One random case generator per op kind.
CASES = {
    "CONV_2D": random_conv_2d,
    "DEPTHWISE_CONV_2D": random_depthwise_conv_2d,
    "FULLY_CONNECTED": random_fully_connected,
    "ADD": random_add,
    "MAX_POOL_2D": _random_pool("MAX_POOL_2D"),
    "AVERAGE_POOL_2D": _random_pool("AVERAGE_POOL_2D"),
    "MEAN": random_mean,
    "RESHAPE": random_reshape,
    "PAD": random_pad,
    "CONCATENATION": random_concatenation,
    "SOFTMAX": random_softmax,
    "QUANTIZE": random_quantize,
    "DEQUANTIZE": random_dequantize,
}


def chain_case(rng, b):
    """A small random network: QUANTIZE, conv, depthwise, ADD, pools, MEAN, FC, SOFTMAX."""
    h, w = int(rng.integers(4, 10)), int(rng.integers(4, 10))
    c = int(rng.integers(1, 5))
    xf = b.input((b.batch, h, w, c), "float32")
    q0 = act_quant(rng)
    x = b.tensor((b.batch, h, w, c), quant=q0)
    b.op("QUANTIZE", (xf,), (x,))
    wd, wq = _weights(rng, (int(rng.integers(2, 9)), 3, 3, c), 0, True)
    cout = wd.shape[0]
    q1 = _output_quant(rng, q0, wq, 9 * c)
    y1 = b.tensor((b.batch, h, w, cout), quant=q1)
    b.op("CONV_2D", (x, b.tensor(wd.shape, "int8", wq, wd), _bias(rng, b, q0, wq, cout, 9 * c)),
         (y1,), stride=(1, 1), padding="SAME", dilation=(1, 1), activation="relu")
    dd, dq = _weights(rng, (1, 3, 3, cout), 3, True)
    q2 = _output_quant(rng, q1, dq, 9)
    y2 = b.tensor((b.batch, h, w, cout), quant=q2)
    b.op("DEPTHWISE_CONV_2D", (y1, b.tensor(dd.shape, "int8", dq, dd),
                               _bias(rng, b, q1, dq, cout, 9)), (y2,),
         stride=(1, 1), padding="SAME", dilation=(1, 1), depth_multiplier=1,
         activation="relu6")
    q3 = Quant(max(q1.scale[0], q2.scale[0]) * 1.5, int(rng.integers(-128, 0)))
    y3 = b.tensor((b.batch, h, w, cout), quant=q3)
    b.op("ADD", (y1, y2), (y3,), activation="relu")
    kind = "MAX_POOL_2D" if rng.random() < 0.5 else "AVERAGE_POOL_2D"
    oh, ow = -(-h // 2), -(-w // 2)
    y4 = b.tensor((b.batch, oh, ow, cout), quant=q3)
    b.op(kind, (y3,), (y4,), stride=(2, 2), filter=(2, 2), padding="SAME", activation="linear")
    q5 = act_quant(rng)
    y5 = b.tensor((b.batch, cout), quant=q5)
    axis = b.tensor((2,), "int32", None, np.array([1, 2], np.int32))
    b.op("MEAN", (y4, axis), (y5,), axis=(1, 2), keep_dims=False)
    units = int(rng.integers(2, 11))
    fd, fq = _weights(rng, (units, cout), 0, rng.random() < 0.5)
    q6 = _output_quant(rng, q5, fq, cout)
    y6 = b.tensor((b.batch, units), quant=q6)
    b.op("FULLY_CONNECTED", (y5, b.tensor(fd.shape, "int8", fq, fd),
                             _bias(rng, b, q5, fq, units, cout)), (y6,),
         keep_num_dims=False, activation="linear")
    y7 = b.tensor((b.batch, units), quant=Quant(1 / 256, -128))
    b.op("SOFTMAX", (y6,), (y7,), beta=1.0)
    y8 = b.tensor((b.batch, units), "float32")
    b.op("DEQUANTIZE", (y7,), (y8,))
    return y8


def random_inputs(rng, graph, batch=None):
    """Random data for every graph input: uniform codes, or floats with exact ties."""
    arrays = []
    for index in graph.inputs:
        tensor = graph.tensors[index]
        shape = tensor.shape if batch is None else (batch,) + tensor.shape[1:]
        if tensor.dtype == "float32":
            scale = 10 ** rng.uniform(-2, 1)
            values = rng.normal(0, scale, shape)
            ties = rng.random(shape) < 0.2
            values[ties] = np.round(values[ties] * 4) / 4
            arrays.append(values.astype(np.float32))
        else:
            info = np.iinfo(tensor.dtype)
            lo, hi = (info.min, info.max) if info.bits == 8 else (-3000, 3000)
            data = rng.integers(lo, hi + 1, shape)
            if rng.random() < 0.2:
                data = rng.choice([lo, hi], shape)
            arrays.append(data.astype(tensor.dtype))
    return arrays


def litert_tensors(model, inputs, graph):
    """Run ``model`` (bytes) in LiteRT's reference kernels; every activation by index."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=True)
    for index, array in zip(graph.inputs, inputs, strict=True):
        if array.shape != graph.tensors[index].shape:
            interpreter.resize_tensor_input(index, array.shape)
    interpreter.allocate_tensors()
    for index, array in zip(graph.inputs, inputs, strict=True):
        interpreter.set_tensor(index, array)
    interpreter.invoke()
    return {t.index: interpreter.get_tensor(t.index) for t in graph.tensors
            if not t.is_constant}


def first_difference(got, want):
    """A one-line account of where two arrays differ ('' if equal, bit for bit)."""
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"golden {got.dtype} {got.shape}, LiteRT {want.dtype} {want.shape}"
    a, b = got, want
    if got.dtype.kind == "f":
        a, b = got.view(np.uint32), want.view(np.uint32)
    bad = np.argwhere(a != b)
    if bad.size == 0:
        return ""
    where = tuple(int(v) for v in bad[0])
    return (f"{len(bad)} of {got.size} elements differ, first at {where}: golden {got[where]}, "
            f"LiteRT {want[where]}")


def assert_same_graph(got, want):
    """Assert two graphs are equal: tensors (shape, dtype, quantization, data) and ops."""
    assert len(got.tensors) == len(want.tensors)
    for a, b in zip(got.tensors, want.tensors, strict=True):
        assert (a.index, a.name, a.shape, a.dtype) == (b.index, b.name, b.shape, b.dtype), \
            f"tensor {b.index}"
        assert (a.quant is None) == (b.quant is None), f"tensor {b.index} quantization"
        if a.quant is not None:
            np.testing.assert_array_equal(a.quant.scale, b.quant.scale)
            np.testing.assert_array_equal(a.quant.zero_point, b.quant.zero_point)
            assert a.quant.axis == b.quant.axis or not b.quant.per_channel
        assert (a.data is None) == (b.data is None), f"tensor {b.index} data"
        if a.data is not None:
            assert a.data.dtype == b.data.dtype
            np.testing.assert_array_equal(a.data, b.data)
    assert [(o.index, o.kind, o.inputs, o.outputs) for o in got.ops] == \
        [(o.index, o.kind, o.inputs, o.outputs) for o in want.ops]
    for a, b in zip(got.ops, want.ops, strict=True):
        assert _normal(a.options) == _normal(b.options), f"op {b.index} ({b.kind}) options"
    assert (got.inputs, got.outputs) == (want.inputs, want.outputs)


def _normal(options):
    return {k: (tuple(map(tuple, v)) if k == "paddings" else
                tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in options.items()}
