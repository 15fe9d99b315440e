"""A quantized network's integer plan (codes, scales, thresholds) and its export as a Graph.

Every quantization method ends in a :class:`Plan`: for each layer its integer weight codes
and scales, int32 bias codes or integer thresholds, and the stored quantization of its
output; the input's quantization. The plan is plain numpy data; :func:`to_graph` writes it
as a :class:`nets.Graph` (TFLite ops for the mac engine, ``QMAC_`` ops for the binary and
bit-serial PE modes, see :mod:`nets.graph`), which :func:`nets.run_graph` executes bit-exactly.
Fake-quant evaluation reads the same plan (:class:`nets.methods.PlanScheme`), so the
integer graph and the float simulation of it share every code and scale.
"""

from dataclasses import dataclass

import numpy as np

import golden

from .arch import Net
from .graph import Graph, Op, Quant, Tensor

__all__ = ["MODES", "ActQuant", "Plan", "PlanLayer", "to_graph"]

#: PE modes a layer of a plan runs on.
MODES = ("mac", "xnor", "bitserial")


@dataclass(frozen=True)
class ActQuant:
    """Stored quantization of an activation tensor: ``real = scale * (q - zero_point)``.

    ``bits`` codes, signed or not; ``binary`` for ±1 codes (scale 1, zero point 0).
    """

    scale: float
    zero_point: int
    bits: int
    signed: bool = True
    binary: bool = False

    @property
    def dtype(self):
        """int8 or uint8 (int16/uint16 beyond 8 bits)."""
        if self.bits <= 8:
            return "int8" if self.signed else "uint8"
        return "int16" if self.signed else "uint16"

    @property
    def qrange(self):
        """``(qmin, qmax)`` of the codes."""
        if self.binary:
            return -1, 1
        return golden.qrange(self.bits, self.signed)

    def quant(self):
        """The graph's :class:`~nets.graph.Quant` of such a tensor."""
        width = np.iinfo(self.dtype).bits
        bits = 1 if self.binary else (self.bits if self.bits < width else None)
        return Quant(np.float32(self.scale), self.zero_point, bits=bits)

    @classmethod
    def binary_codes(cls):
        """±1 codes: what a threshold output stage writes."""
        return cls(1.0, 0, 1, True, True)


@dataclass(frozen=True)
class PlanLayer:
    """One layer of a plan.

    Members
    -------
    layer : nets.arch.Layer
    mode : "mac", "xnor" or "bitserial"
    w : numpy.ndarray of int
        Weight codes in TFLite's layout.
    w_scale : numpy.ndarray of float32, shape (1,) or (C,)
    w_bits : int
        Width of the weight codes (two's complement).
    out : ActQuant
        The output's stored quantization (``ActQuant.binary_codes()`` for thresholds).
    bias : numpy.ndarray of int32 (C,) or None
        Requantizing layers: bias codes at ``s_x * s_w[c]``.
    thresholds, invert : numpy.ndarray (C,) or None
        Threshold layers: int32 thresholds and 0/1 inversions.
    relu : bool
        Fused ReLU clamp (requantizing layers).
    a_bits : int
        Planes of the input (bit-serial layers).
    """

    layer: object
    mode: str
    w: np.ndarray
    w_scale: np.ndarray
    w_bits: int
    out: ActQuant
    bias: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    invert: np.ndarray | None = None
    relu: bool = False
    a_bits: int = 8

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"PlanLayer.mode must be one of {', '.join(MODES)}, not "
                             f"{self.mode!r}")
        if (self.bias is None) == (self.thresholds is None):
            raise ValueError("a PlanLayer needs either a bias (requantizing) or thresholds, "
                             "not both or neither")

    @property
    def threshold_output(self):
        """True when the output stage is threshold compares."""
        return self.thresholds is not None


@dataclass(frozen=True)
class Plan:
    """An integer network: the input's quantization and every layer's plan."""

    net: Net
    input: ActQuant
    layers: tuple
    name: str = ""

    @property
    def pe_modes(self):
        """The PE modes of its layers, in order, without repeats."""
        return tuple(dict.fromkeys(layer.mode for layer in self.layers))


_KINDS = {
    ("mac", "conv"): "CONV_2D", ("mac", "depthwise"): "DEPTHWISE_CONV_2D",
    ("mac", "dense"): "FULLY_CONNECTED",
    ("xnor", "conv"): "QMAC_XNOR_CONV_2D", ("xnor", "dense"): "QMAC_XNOR_FULLY_CONNECTED",
    ("bitserial", "conv"): "QMAC_BITSERIAL_CONV_2D",
    ("bitserial", "dense"): "QMAC_BITSERIAL_FULLY_CONNECTED",
}


class _Builder:
    def __init__(self):
        self.tensors, self.ops = [], []

    def tensor(self, name, shape, dtype, quant=None, data=None):
        self.tensors.append(Tensor(len(self.tensors), name, shape, dtype, quant, data))
        return len(self.tensors) - 1

    def op(self, kind, inputs, outputs, **options):
        self.ops.append(Op(len(self.ops), kind, inputs, outputs, options))


def _weight_dtype(bits):
    return "int8" if bits <= 8 else "int16"


def to_graph(plan):
    """The plan as a :class:`nets.Graph` with batch 1 (the executor runs any batch).

    Raises
    ------
    ValueError
        If a layer's mode cannot run its kind (a depthwise layer on xnor or bitserial).
    """
    b = _Builder()
    shape = (1, 8, 8, 1)
    x = b.tensor("input", shape, plan.input.dtype, plan.input.quant())
    x_quant = plan.input
    graph_input = x
    for i, pl in enumerate(plan.layers):
        layer = pl.layer
        kind = _KINDS.get((pl.mode, layer.kind))
        if kind is None:
            raise ValueError(f"layer {i} is {layer.kind}, which pe mode {pl.mode!r} does not "
                             f"run; {pl.mode} runs "
                             f"{', '.join(k for m, k in _KINDS if m == pl.mode)}")
        if layer.kind == "dense" and len(shape) == 4:
            flat = (1, int(np.prod(shape[1:])))
            y = b.tensor(f"flatten{i}", flat, x_quant.dtype, x_quant.quant())
            b.op("RESHAPE", (x,), (y,))
            x, shape = y, flat
        axis = 3 if layer.kind == "depthwise" else 0
        w_width = np.iinfo(_weight_dtype(pl.w_bits)).bits
        w_quant = Quant(pl.w_scale, np.zeros(pl.w_scale.size, np.int64),
                        axis if pl.w_scale.size > 1 else 0,
                        bits=pl.w_bits if pl.w_bits < w_width else None)
        w = b.tensor(f"layer{i}/weights", pl.w.shape, _weight_dtype(pl.w_bits), w_quant, pl.w)
        if pl.threshold_output:
            n = pl.thresholds.size
            params = (b.tensor(f"layer{i}/thresholds", (n,), "int32",
                               data=pl.thresholds.astype(np.int32)),
                      b.tensor(f"layer{i}/invert", (n,), "uint8",
                               data=pl.invert.astype(np.uint8)))
        else:
            bias_scale = np.float64(np.float32(x_quant.scale)) * pl.w_scale.astype(np.float64)
            params = (b.tensor(f"layer{i}/bias", pl.bias.shape, "int32",
                               Quant(bias_scale.astype(np.float32),
                                     np.zeros(pl.w_scale.size, np.int64)),
                               pl.bias.astype(np.int32)),)
        if layer.kind == "dense":
            out_shape = (1, pl.w.shape[0])
        else:
            oh, ow, _, _ = golden.conv_output_shape(shape[1], shape[2], layer.kernel,
                                                    layer.stride, layer.padding)
            channels = shape[3] if layer.kind == "depthwise" else pl.w.shape[0]
            out_shape = (1, oh, ow, channels)
        y = b.tensor(f"layer{i}/output", out_shape, pl.out.dtype, pl.out.quant())
        options = {}
        if layer.kind != "dense":
            options.update(stride=(layer.stride,) * 2, padding=layer.padding)
        if pl.mode == "mac":
            options["activation"] = "relu" if pl.relu else "linear"
            if layer.kind == "dense":
                options["keep_num_dims"] = False
            else:
                options["dilation"] = (1, 1)
            if layer.kind == "depthwise":
                options["depth_multiplier"] = 1
        else:
            options["output"] = "threshold" if pl.threshold_output else "requant"
            if not pl.threshold_output:
                options["activation"] = "relu" if pl.relu else "linear"
            if pl.mode == "bitserial":
                options.update(a_bits=pl.a_bits, w_bits=pl.w_bits)
        b.op(kind, (x,) + (w,) + params, (y,), **options)
        x, shape, x_quant = y, out_shape, pl.out
    return Graph(b.tensors, b.ops, (graph_input,), (x,), plan.name)
