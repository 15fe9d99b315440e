"""The integer graph: a quantized network as plain data (tensors, ops, constant buffers).

A :class:`Graph` is what :func:`nets.load_tflite` reads from a ``.tflite`` file and what
the training and quantization code exports; running it (:mod:`nets.execute`), lowering
its layers onto the engine (:mod:`nets.lower`) and counting their cycles are separate
passes over this data, never methods that grow with each backend.

Conventions
-----------
* Tensors are numbered as in the flatbuffer (or in export order); an op names its
  inputs and outputs by tensor index, ``-1`` for an optional input that is absent
  (TFLite's convention, e.g. a FULLY_CONNECTED without bias).
* Shapes are TFLite's: NHWC activations with the batch first, OHWI convolution weights,
  ``(1, KH, KW, C * multiplier)`` depthwise weights, ``(out, in)`` fully connected weights.
  Activation shapes are stored with the batch of the file (usually 1); the executor runs
  any batch.
* Quantization is TFLite's affine rule ``real = scale * (q - zero_point)``; ``scale`` and
  ``zero_point`` hold one entry per tensor or one per channel along ``axis``.
* Op options are normalized, independent of the flatbuffer's spelling:

  ============================  ===================================================
  kind                          options
  ============================  ===================================================
  CONV_2D                       stride (h, w), padding "SAME"|"VALID", dilation (h, w),
                                activation
  DEPTHWISE_CONV_2D             the same plus depth_multiplier
  FULLY_CONNECTED               keep_num_dims, activation
  ADD                           activation
  MAX_POOL_2D, AVERAGE_POOL_2D  stride (h, w), filter (h, w), padding, activation
  MEAN                          axis (tuple of ints, from the constant input), keep_dims
  RESHAPE                       (the output tensor's shape is the new shape)
  PAD                           paddings ((before, after) per axis, from the constant)
  CONCATENATION                 axis, activation
  SOFTMAX                       beta
  QUANTIZE, DEQUANTIZE          (none)
  ============================  ===================================================

  ``activation`` is one of :data:`ACTIVATIONS` (TFLite's fused activation, applied as a
  clamp of the quantized output).

Low bit widths
--------------
Codes narrower than their tensor's dtype are stored in that dtype (int8 or uint8, the
engine's operand words hold them) and the tensor's :attr:`Quant.bits` records the width:
a signed tensor's codes lie in ``-2**(bits-1)..2**(bits-1)-1``, an unsigned one's in
``0..2**bits-1``. ``bits=1`` on a signed tensor means binary codes ``-1, +1`` (bit 1 =
+1, bit 0 = -1, DESIGN.md section 2), the only two values a ``QMAC_XNOR_*`` op reads or
a threshold output writes. An op whose output has ``Quant.bits`` narrower than its dtype
clamps its result to that range as well as to the fused activation's (the intersection of
the two ranges, which is what the engine's ``act_min``/``act_max`` receive). A
``Quant.bits`` of None means the dtype's own width. TFLite has no such field: a graph
with narrower tensors runs in golden and on the engine but is not written to ``.tflite``.

qmac's own op kinds
-------------------
Layers that TFLite cannot express (the engine's binary and bit-serial PE modes) have op
kinds with a ``QMAC_`` prefix. Their inputs are ``(x, w, bias)`` with a requantizing
output stage, or ``(x, w, thresholds, invert)`` with a threshold output stage; weights are
symmetric (zero point 0) with one scale per output channel or per tensor, in the layouts of
CONV_2D (OHWI) and FULLY_CONNECTED (``(out, in)``):

==============================  ========================================================
kind                            options
==============================  ========================================================
QMAC_XNOR_CONV_2D               stride (h, w), padding "SAME"|"VALID", output
QMAC_XNOR_FULLY_CONNECTED       output
QMAC_BITSERIAL_CONV_2D          stride, padding, a_bits, w_bits, output
QMAC_BITSERIAL_FULLY_CONNECTED  a_bits, w_bits, output
==============================  ========================================================

``output`` is ``"requant"`` or ``"threshold"``. The arithmetic, per output channel ``c``:

* ``QMAC_XNOR_*``: ``x`` and ``w`` hold binary codes ``±1`` (``Quant.bits == 1``, scale
  of ``x`` 1.0 per element); the convolution's patches are taken by im2col with padded taps
  of -1 (bit 0: binary hardware has no zero), packed with :func:`golden.pack_signs` and
  ``acc = golden.xnor_popcount_gemm(patches, w, K)`` (``= sum x * w``).
* ``QMAC_BITSERIAL_*``: ``x`` holds unsigned ``a_bits``-bit codes with zero point 0 (padded
  taps 0), ``w`` signed ``w_bits``-bit codes; ``acc = golden.bitplane_gemm(patches, w,
  a_bits, w_bits, a_signed=False, w_signed=True)`` (``= sum x * w``, wrapping at 32 bits).
* ``output="requant"``: ``acc + bias[c]`` (int32 at scale ``s_x * s_w[c]``) is requantized
  exactly as CONV_2D's reference kernel does (``golden.quantize_multiplier`` of
  ``s_x * s_w[c] / s_y``, two-step rounding, output zero point, clamp to the output's
  ``Quant.bits`` range and the fused ``activation``, default "linear").
* ``output="threshold"``: ``bit = golden.threshold(acc, thresholds, invert)`` with
  ``thresholds`` an int32 ``(N,)`` constant and ``invert`` a uint8 ``(N,)`` constant of 0/1
  (FINN's folded batch norm, :func:`golden.batchnorm_thresholds`); the output holds
  ``2 * bit - 1``, binary codes ``±1`` (int8, ``Quant`` scale 1.0, zero point 0, bits 1).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ACTIVATIONS", "DTYPES", "Graph", "Op", "Quant", "Tensor"]

#: Fused activations, as clamps of the quantized output (TFLite's names, lower case).
ACTIVATIONS = ("linear", "relu", "relu6", "relu_n1_to_1")
#: Element types a tensor may have (numpy names).
DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32")


@dataclass(frozen=True)
class Quant:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``.

    Members
    -------
    scale : numpy.ndarray of float32, shape (1,) or (C,)
        One scale per tensor or one per channel along ``axis``; TFLite stores float32.
    zero_point : numpy.ndarray of int64, same shape as ``scale``
    axis : int
        The quantized dimension when there is more than one scale (TFLite's
        ``quantized_dimension``); 0 otherwise.
    bits : int or None
        Width of the codes when narrower than the tensor's dtype (see "Low bit widths"
        above), 1..16; None for the dtype's own width.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0
    bits: int | None = None

    def __post_init__(self):
        scale = np.array(self.scale, dtype=np.float32).reshape(-1)
        zero_point = np.array(self.zero_point, dtype=np.int64).reshape(-1)
        if scale.size == 0:
            raise ValueError("Quant.scale must hold at least one scale, not none")
        if zero_point.size == 1 and scale.size > 1:
            zero_point = np.repeat(zero_point, scale.size)
        if zero_point.shape != scale.shape:
            raise ValueError(f"Quant.zero_point must have one entry per scale ({scale.size}), "
                             f"not {zero_point.size}")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            bad = scale[~(np.isfinite(scale) & (scale > 0))][0]
            raise ValueError(f"Quant.scale must be finite and positive, not {bad}")
        if self.bits is not None and (isinstance(self.bits, bool)
                                      or not isinstance(self.bits, int)
                                      or not 1 <= self.bits <= 16):
            raise ValueError(f"Quant.bits must be None or an integer in 1..16, not "
                             f"{self.bits!r}")
        scale.setflags(write=False)
        zero_point.setflags(write=False)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero_point)

    @property
    def per_channel(self):
        """True when there is one scale per channel."""
        return self.scale.size > 1


@dataclass(frozen=True)
class Tensor:
    """One tensor of the graph.

    Members
    -------
    index : int
        Its number in the graph.
    name : str
    shape : tuple of int
    dtype : str
        One of :data:`DTYPES`.
    quant : Quant or None
        None for an unquantized tensor (float, or an int32 shape or axis constant).
    data : numpy.ndarray or None
        The constant value (read-only, of ``dtype`` and ``shape``), None for activations.
    """

    index: int
    name: str
    shape: tuple
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in DTYPES:
            raise ValueError(f"Tensor {self.index} ({self.name!r}) has dtype {self.dtype!r}; "
                             f"allowed: {', '.join(DTYPES)}")
        if self.data is not None:
            data = np.array(self.data, dtype=self.dtype).reshape(self.shape)
            data.setflags(write=False)
            object.__setattr__(self, "data", data)

    @property
    def is_constant(self):
        """True for weights, biases and other constant buffers."""
        return self.data is not None

    @property
    def code_range(self):
        """``(lo, hi)`` of the codes an integer tensor may hold: its ``Quant.bits`` when set
        (binary codes ``-1, +1`` for a signed 1-bit tensor), else its dtype's range."""
        info = np.iinfo(self.dtype)
        bits = self.quant.bits if self.quant is not None else None
        if bits is None:
            return int(info.min), int(info.max)
        if bits == 1 and info.min < 0:
            return -1, 1
        if info.min < 0:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1


@dataclass(frozen=True)
class Op:
    """One operator: its kind, tensors in and out, and normalized options.

    Members
    -------
    index : int
        Its position in execution order.
    kind : str
        TFLite's builtin name, e.g. ``"CONV_2D"``.
    inputs, outputs : tuple of int
        Tensor indices (``-1`` for an absent optional input).
    options : Mapping
        See the module docstring.
    """

    index: int
    kind: str
    inputs: tuple
    outputs: tuple
    options: Mapping = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "outputs", tuple(int(i) for i in self.outputs))
        object.__setattr__(self, "options", dict(self.options))


@dataclass(frozen=True)
class Graph:
    """A quantized network: tensors, ops in execution order, graph inputs and outputs.

    Members
    -------
    tensors : tuple of Tensor
        ``tensors[i].index == i``.
    ops : tuple of Op
        In execution order; ``ops[i].index == i``.
    inputs, outputs : tuple of int
        Tensor indices of the graph's inputs and outputs.
    name : str
        Where it came from (a file name, or the exporter's name for it).
    """

    tensors: tuple
    ops: tuple
    inputs: tuple
    outputs: tuple
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "tensors", tuple(self.tensors))
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "outputs", tuple(int(i) for i in self.outputs))
        for i, t in enumerate(self.tensors):
            if t.index != i:
                raise ValueError(f"Graph.tensors[{i}] has index {t.index}; tensors must be "
                                 f"numbered in order")
        for i, op in enumerate(self.ops):
            if op.index != i:
                raise ValueError(f"Graph.ops[{i}] has index {op.index}; ops must be numbered "
                                 f"in order")
            for t in op.inputs + op.outputs:
                if not -1 <= t < len(self.tensors):
                    raise ValueError(f"op {i} ({op.kind}) names tensor {t}; the graph has "
                                     f"{len(self.tensors)} tensors")
        for t in self.inputs + self.outputs:
            if not 0 <= t < len(self.tensors):
                raise ValueError(f"graph input or output {t} is not one of the "
                                 f"{len(self.tensors)} tensors")

    def tensor(self, index):
        """The tensor numbered ``index``, or None for ``-1`` (an absent optional input)."""
        return None if index < 0 else self.tensors[index]

    def run(self, x, *, keep_all=False):
        """Integer inference of a batch (see :func:`nets.execute.run`)."""
        from .execute import run
        return run(self, x, keep_all=keep_all)
