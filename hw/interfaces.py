"""Stream payload layouts of the engine's ports, defined once from an ``ArrayConfig``.

Testbenches pack and unpack beats with these same layouts (``layout.const(...).as_value()``
in Amaranth, or :func:`hw.beats` helpers for plain integers), so a bit layout exists in
exactly one place.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from .config import ArrayConfig, ceil_log2
from .pe import pe_arithmetic

__all__ = ["act_shape", "wgt_shape", "act_word", "wgt_word", "out_shape", "cmd_layout",
           "act_layout", "wgt_layout", "par_layout", "res_layout", "SHIFT_BITS", "M0_BITS"]

#: Width of the per-channel multiplier M0 (TFLite's int32) and of its shift (-31..30).
M0_BITS, SHIFT_BITS = 32, 6


def act_shape(config: ArrayConfig):
    """Shape of one activation as it arrives (before the zero point is subtracted).

    ``xnor``: one bit, 1 for +1 and 0 for -1.
    """
    return pe_arithmetic(config).element_shape(config.a_bits, config.a_signed)


def wgt_shape(config: ArrayConfig):
    """Shape of one weight (symmetric: the weight zero point is 0); ``xnor``: one bit."""
    return pe_arithmetic(config).element_shape(config.w_bits, config.w_signed)


def act_word(config: ArrayConfig):
    """One PE row's share of an activation beat: ``pack`` consecutive elements along K.

    ``mac``: one element. ``xnor``: ``pack`` bits, element ``p`` in bit ``p``.
    ``bitserial``: an array of ``pack`` ``a_bits``-wide elements.
    """
    return pe_arithmetic(config).word(act_shape(config))


def wgt_word(config: ArrayConfig):
    """One PE row's share of a weight beat: ``pack`` consecutive weights along K."""
    return pe_arithmetic(config).word(wgt_shape(config))


def out_shape(config: ArrayConfig):
    """Shape of one result: requantized ``out_bits``, one threshold bit (1 = +1), or the raw
    ``acc_bits`` accumulator."""
    if config.requant:
        return signed(config.out_bits) if config.out_signed else unsigned(config.out_bits)
    if config.threshold:
        return unsigned(1)
    return signed(config.acc_bits)


def cmd_layout(config: ArrayConfig):
    """GEMM command: sizes, activation zero point, and (when requantizing) the output stage.

    ``m``, ``k``, ``n`` are as wide as ``max_m``, ``max_k``, ``max_n`` need (``k`` counts
    elements, bits in the ``xnor`` mode). The ``mac`` mode has the activation zero point;
    the ``bitserial`` mode instead has the bit planes of this GEMM, ``a_planes`` in
    1..``a_bits`` and ``w_planes`` in 1..``w_bits`` (every element must then lie in the
    range of that many bits); the ``xnor`` mode has neither. A command with a zero size, a
    size above its limit, planes outside their range or ``act_min > act_max`` is refused:
    it is consumed, produces nothing and raises the ``error`` output until the next
    command.
    """
    fields = {
        "m": unsigned(ceil_log2(config.max_m + 1)),
        "k": unsigned(ceil_log2(config.max_k + 1)),
        "n": unsigned(ceil_log2(config.max_n + 1)),
    }
    fields.update(pe_arithmetic(config).command_fields(act_shape(config)))
    if config.requant:
        fields["out_zero_point"] = out_shape(config)
        fields["act_min"] = out_shape(config)
        fields["act_max"] = out_shape(config)
    return data.StructLayout(fields)


def act_layout(config: ArrayConfig):
    """One activation beat: ``rows * pack`` consecutive elements of a row of A along K, as
    ``rows`` words of :func:`act_word`."""
    return data.ArrayLayout(act_word(config), config.rows)


def wgt_layout(config: ArrayConfig):
    """One weight beat: ``rows * pack`` consecutive weights of one output channel along K."""
    return data.ArrayLayout(wgt_word(config), config.rows)


def par_layout(config: ArrayConfig):
    """Per-output-channel parameters of the output stage.

    Requantizer: bias, M0 and shift (TFLite's). Threshold compare: ``threshold`` (an
    accumulator value) and ``invert``; the output bit is ``(acc >= threshold) XOR invert``.
    """
    if config.threshold:
        return data.StructLayout({"threshold": signed(config.acc_bits), "invert": unsigned(1)})
    return data.StructLayout({
        "bias": signed(config.acc_bits),
        "m0": signed(M0_BITS),
        "shift": signed(SHIFT_BITS),
    })


def res_layout(config: ArrayConfig):
    """One result beat: ``cols`` outputs of one row, for one group of ``cols`` channels."""
    return data.ArrayLayout(out_shape(config), config.cols)
