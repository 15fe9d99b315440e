"""Matrices to stream beats and back, in the engine's stream order (plain integers).

The bit layout of every beat comes from the Amaranth layouts of :mod:`hw.interfaces`
(field offsets and widths are read from them once), so packing here cannot drift from
the hardware. The order of beats is the one documented in :mod:`hw.engine`.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.lib import data

from .config import ArrayConfig
from .interfaces import act_shape, cmd_layout, par_layout, res_layout, wgt_shape

__all__ = ["Gemm", "StreamCodec", "int_range"]


def int_range(bits, signed):
    """``(lo, hi)`` of a ``bits``-wide integer, signed or not."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


@dataclass(frozen=True)
class Gemm:
    """One GEMM job: operands and (for engines with an output stage) its parameters.

    ``a`` is (M, K), ``w`` is (K, N), as integers: ``mac`` and ``bitserial`` elements in
    their integer range, ``xnor`` elements -1 or +1. ``a_zero_point`` is used by the
    ``mac`` mode only; ``a_planes`` and ``w_planes`` by the ``bitserial`` mode only
    (default: the configuration's ``a_bits`` and ``w_bits``). Requantizing engines take
    ``bias``, ``m0``, ``shift`` (one entry per column), ``out_zero_point``, ``act_min``,
    ``act_max``; threshold engines take ``threshold`` and ``invert`` (one per column).
    """

    a: np.ndarray
    w: np.ndarray
    a_zero_point: int = 0
    bias: np.ndarray | None = None
    m0: np.ndarray | None = None
    shift: np.ndarray | None = None
    out_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127
    a_planes: int | None = None
    w_planes: int | None = None
    threshold: np.ndarray | None = None
    invert: np.ndarray | None = None

    @property
    def shape(self):
        """``(M, K, N)``."""
        return self.a.shape[0], self.a.shape[1], self.w.shape[1]


def _fields(layout):
    """``{name: (offset, width, signed)}`` of a StructLayout."""
    out = {}
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.Layout):
            shape = shape.as_shape()
        out[name] = (field.offset, shape.width, shape.signed)
    return out


def _pack_lanes(values, width):
    """Pack rows of lane values (int64 array, last axis = lanes) into Python ints."""
    mask = (1 << width) - 1
    beats = []
    for row in values.tolist():
        word = 0
        for i, v in enumerate(row):
            word |= (v & mask) << (i * width)
        beats.append(word)
    return beats


class StreamCodec:
    """Packs a :class:`Gemm` into beats of every input stream and unpacks result beats.

    An operand beat carries ``rows * pack`` consecutive elements along K, element ``e``
    of the beat in bits ``e * w .. e * w + w - 1`` (``w`` the element width: 1 in the
    ``xnor`` mode, where +1 is bit 1 and -1 bit 0). Elements past K in a row's last beat
    are padding, which the engine ignores: zeros, or with ``padding_rng`` (a numpy
    Generator) random values, to show that they are ignored.
    """

    def __init__(self, config: ArrayConfig, padding_rng=None):
        self.config = config
        self._padding_rng = padding_rng
        self._cmd = _fields(cmd_layout(config))
        self._par = _fields(par_layout(config)) if config.has_params else {}
        self._a_width = act_shape(config).width
        self._w_width = wgt_shape(config).width
        res = res_layout(config)
        self._r_width = res.elem_shape.width
        self._r_signed = res.elem_shape.signed

    @staticmethod
    def _pack_struct(fields, values):
        """Pack named integers into a struct word; a value that does not fit is an error."""
        word = 0
        for name, (offset, width, signed) in fields.items():
            value = int(values[name])
            lo, hi = int_range(width, signed)
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be in {lo}..{hi} (its {width}-bit field), not "
                                 f"{value}")
            word |= (value & ((1 << width) - 1)) << offset
        return word

    def planes(self, gemm: Gemm):
        """``(a_planes, w_planes)`` of a bit-serial GEMM (the configuration's widths by
        default); ``(a_bits, w_bits)`` in the other modes."""
        return self.config.mode.planes(self.config, gemm.a_planes, gemm.w_planes)

    def model_shape(self, gemm: Gemm):
        """``(M, K, N)`` of ``gemm``, and of a bit-serial GEMM also its ``(a_planes,
        w_planes)``: the form :mod:`sim.engine_model` takes."""
        if self.config.mode.has_planes:
            return (*gemm.shape, *self.planes(gemm))
        return gemm.shape

    def command(self, gemm: Gemm):
        """The ``cmd`` beat of ``gemm``."""
        m, k, n = gemm.shape
        a_planes, w_planes = self.planes(gemm)
        values = {"m": m, "k": k, "n": n, "a_zero_point": gemm.a_zero_point,
                  "a_planes": a_planes, "w_planes": w_planes,
                  "out_zero_point": gemm.out_zero_point, "act_min": gemm.act_min,
                  "act_max": gemm.act_max}
        return self._pack_struct(self._cmd, values)

    def _element_range(self, name, gemm):
        """The integers an operand's elements may take (for this GEMM's bit planes)."""
        return self.config.mode.element_range(self.config, name, self.planes(gemm))

    def _codes(self, name, matrix, gemm):
        """Elements as the integers the stream carries (xnor: +1 -> 1, -1 -> 0), checked."""
        matrix = np.asarray(matrix)
        if not np.issubdtype(matrix.dtype, np.integer):
            raise TypeError(f"{name} must be an integer array, not an array of dtype "
                            f"{matrix.dtype}")
        matrix = matrix.astype(np.int64)
        return self.config.mode.codes(name, matrix, self._element_range(name, gemm))

    def _chunks(self, codes, width):
        """Rows of element codes cut into beats of ``rows * pack`` elements along K."""
        per_beat = self.config.chunk
        count, k = codes.shape
        chunks = -(-k // per_beat)
        padded = np.zeros((count, chunks * per_beat), dtype=np.int64)
        if self._padding_rng is not None:
            padded[:] = self._padding_rng.integers(0, 1 << width, size=padded.shape)
        padded[:, :k] = codes
        return padded.reshape(count * chunks, per_beat)

    def activations(self, gemm: Gemm):
        """``act`` beats: A row by row, ``rows * pack`` elements of K per beat."""
        codes = self._codes("a", gemm.a, gemm)
        return _pack_lanes(self._chunks(codes, self._a_width), self._a_width)

    def weights(self, gemm: Gemm):
        """``wgt`` beats: W channel by channel (W transposed), ``rows * pack`` weights per beat."""
        codes = self._codes("w", gemm.w, gemm).T
        return _pack_lanes(self._chunks(codes, self._w_width), self._w_width)

    def params(self, gemm: Gemm):
        """``par`` beats: one per output channel."""
        n = gemm.shape[2]
        if self.config.threshold:
            return [self._pack_struct(self._par, {"threshold": gemm.threshold[i],
                                                  "invert": gemm.invert[i]}) for i in range(n)]
        return [self._pack_struct(self._par, {"bias": gemm.bias[i], "m0": gemm.m0[i],
                                              "shift": gemm.shift[i]}) for i in range(n)]
    def result_order(self, m, n):
        """``(row, first column)`` of every result beat, in stream order."""
        cfg = self.config
        block = cfg.block
        order = []
        for m0 in range(0, m, block):
            for n0 in range(0, n, cfg.cols):
                order.extend((row, n0) for row in range(m0, min(m0 + block, m)))
        return order

    def expected_beats(self, out):
        """Result beats (as integers) that carry the (M, N) result matrix ``out``."""
        out = np.asarray(out, dtype=np.int64)
        m, n = out.shape
        cols = self.config.cols
        lanes = np.zeros((len(self.result_order(m, n)), cols), dtype=np.int64)
        for i, (row, n0) in enumerate(self.result_order(m, n)):
            width = min(cols, n - n0)
            lanes[i, :width] = out[row, n0:n0 + width]
        return _pack_lanes(lanes, self._r_width)

    def unpack_result(self, beat):
        """The ``cols`` values of one result beat."""
        mask = (1 << self._r_width) - 1
        values = [(beat >> (i * self._r_width)) & mask for i in range(self.config.cols)]
        if self._r_signed:
            half = 1 << (self._r_width - 1)
            values = [v - (1 << self._r_width) if v >= half else v for v in values]
        return values

    def results(self, beats, m, n):
        """The (M, N) matrix carried by ``beats`` (inverse of :meth:`expected_beats`)."""
        order = self.result_order(m, n)
        if len(beats) != len(order):
            raise ValueError(f"an {m}x{n} result takes {len(order)} beats, not {len(beats)}")
        out = np.zeros((m, n), dtype=np.int64)
        cols = self.config.cols
        for beat, (row, n0) in zip(beats, order, strict=True):
            width = min(cols, n - n0)
            out[row, n0:n0 + width] = self.unpack_result(beat)[:width]
        return out
