"""Small gateware helpers shared by the components."""

from amaranth.hdl import Array, Signal, Value

__all__ = ["cleared_counter", "cleared_flag", "delay", "equals", "popcount", "select"]


def delay(m, value, cycles, name):
    """Return ``value`` delayed by ``cycles`` registers (the value itself for 0)."""
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def equals(value, constant):
    """``value == constant``, written so that a comparison with 0 is a reduction.

    Yosys writes ``x == 0`` as the logical negation ``!x`` of a multi-bit value, which
    Verilator's lint reports as a width truncation; ``~x.any()`` means the same and
    lints clean.
    """
    if constant == 0:
        return ~value.any()
    return value == constant


def popcount(value):
    """Number of 1 bits of ``value``, as a balanced tree of additions (unsigned)."""
    bits = [value[i] for i in range(len(value))]
    if not bits:
        raise ValueError("popcount of a zero-width value")
    while len(bits) > 1:
        pairs = [bits[i] + bits[i + 1] for i in range(0, len(bits) - 1, 2)]
        if len(bits) % 2:
            pairs.append(bits[-1])
        bits = pairs
    return bits[0]


def select(word, index):
    """Element ``index`` of an array view (or bit of a value), as a multiplexer (not a shift
    and truncation).

    The multiplexer has a case for every value of ``index`` (indices past the end give
    element 0, and never occur), so that no case is left undefined. Elements that are
    views themselves come back as their bits.
    """
    cases = 1 << len(index)
    return Array(Value.cast(word[i if i < len(word) else 0]) for i in range(cases))[index]


def cleared_counter(m, start, name, limit):
    """A counter register ``0..limit``, cleared in the cycle after ``start``.

    At least one bit wide even when ``limit`` is 0: Yosys writes a zero-width signal as
    the descending range ``[-1:0]``, which is not valid for every tool.
    """
    sig = Signal(range(max(limit, 1) + 1), name=name)
    with m.If(start):
        m.d.sync += sig.eq(0)
    return sig


def cleared_flag(m, start, name):
    """A one-bit register, cleared in the cycle after ``start``."""
    sig = Signal(name=name)
    with m.If(start):
        m.d.sync += sig.eq(0)
    return sig
