"""Stream payload layouts of the engine's ports, defined once from an ``ArrayConfig``.

Testbenches pack and unpack beats with these same layouts (``layout.const(...).as_value()``
in Amaranth, or :func:`hw.beats` helpers for plain integers), so a bit layout exists in
exactly one place.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from .config import ArrayConfig, ceil_log2

__all__ = ["act_shape", "wgt_shape", "out_shape", "cmd_layout", "act_layout", "wgt_layout",
           "par_layout", "res_layout", "SHIFT_BITS", "M0_BITS"]

#: Width of the per-channel multiplier M0 (TFLite's int32) and of its shift (-31..30).
M0_BITS, SHIFT_BITS = 32, 6


def act_shape(config: ArrayConfig):
    """Shape of one activation as it arrives (before the zero point is subtracted)."""
    return signed(config.a_bits) if config.a_signed else unsigned(config.a_bits)


def wgt_shape(config: ArrayConfig):
    """Shape of one weight (symmetric: the weight zero point is 0)."""
    return signed(config.w_bits) if config.w_signed else unsigned(config.w_bits)


def out_shape(config: ArrayConfig):
    """Shape of one result: requantized ``out_bits`` or the raw ``acc_bits`` accumulator."""
    if config.requant:
        return signed(config.out_bits) if config.out_signed else unsigned(config.out_bits)
    return signed(config.acc_bits)


def cmd_layout(config: ArrayConfig):
    """GEMM command: sizes, activation zero point, and (when requantizing) the output stage.

    ``m``, ``k``, ``n`` are as wide as ``max_m``, ``max_k``, ``max_n`` need; a command with a
    zero size or a size above its limit (or ``act_min > act_max``) is refused: it is
    consumed, produces nothing and raises the ``error`` output until the next command.
    """
    fields = {
        "m": unsigned(ceil_log2(config.max_m + 1)),
        "k": unsigned(ceil_log2(config.max_k + 1)),
        "n": unsigned(ceil_log2(config.max_n + 1)),
        "a_zero_point": act_shape(config),
    }
    if config.requant:
        fields["out_zero_point"] = out_shape(config)
        fields["act_min"] = out_shape(config)
        fields["act_max"] = out_shape(config)
    return data.StructLayout(fields)


def act_layout(config: ArrayConfig):
    """One activation beat: ``rows`` consecutive elements of a row of A along K."""
    return data.ArrayLayout(act_shape(config), config.rows)


def wgt_layout(config: ArrayConfig):
    """One weight beat: ``rows`` consecutive weights of one output channel along K."""
    return data.ArrayLayout(wgt_shape(config), config.rows)


def par_layout(config: ArrayConfig):
    """Per-output-channel requantization parameters: bias, M0 and shift (TFLite's)."""
    return data.StructLayout({
        "bias": signed(config.acc_bits),
        "m0": signed(M0_BITS),
        "shift": signed(SHIFT_BITS),
    })


def res_layout(config: ArrayConfig):
    """One result beat: ``cols`` outputs of one row, for one group of ``cols`` channels."""
    return data.ArrayLayout(out_shape(config), config.cols)
