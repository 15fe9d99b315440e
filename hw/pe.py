"""The gateware side of each PE mode: one strategy class per mode (arithmetic, shapes, and
the few steps of the engine that differ between modes)."""

from amaranth.hdl import Cat, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data

from ._logic import equals, popcount, select
from .config import ArrayConfig, ceil_log2

__all__ = ["BitSerialPE", "MacPE", "XnorPE", "operand_shape", "pe_arithmetic",
           "weight_operand_shape"]


class MacPE:
    """The "mac" PE mode: ``acc + (a - a_zp) * w``, wrapped; the base of every mode.

    A mode's strategy owns what differs between modes, so that the arrays and the engine
    never test ``pe_mode``:

    * the arithmetic: the weight-stationary partial sum that passes down a column
      (:attr:`psum_shape`, :meth:`ws_step`), the output-stationary step (:meth:`os_step`)
      and the flags that travel with its operands (:attr:`os_flags`);
    * the shapes: an element as it arrives (:meth:`element_shape`), a PE word
      (:meth:`word`), the operands entering the array (:meth:`operand_shape`,
      :meth:`weight_operand_shape`), the command's mode fields (:meth:`command_fields`);
    * the engine's steps: which commands it refuses (:meth:`command_errors`), the array
      operands of an arriving word (:meth:`ws_weight`, :meth:`ws_activations`,
      :meth:`os_activation`, :meth:`os_weight`), how a weight-stationary column count is
      accumulated (:meth:`ws_accumulate`) and the post-array step (:meth:`post_array`).

    The plain-Python side of a mode (configuration rules, names, stream codes, the cycle
    model's terms) is its :class:`hw.modes.PeMode`.
    """

    os_flags = ()
    #: Whether the output-stationary operands are masked past K (packed words).
    masks_operands = False

    def __init__(self, config: ArrayConfig):
        self._config = config
        self._acc_bits = config.acc_bits
        self.psum_shape = signed(config.acc_bits)

    # -- arithmetic --

    def mac(self, acc, a, w):
        """``acc + a * w`` wrapped to the accumulator width (two's complement)."""
        return (acc + a * w)[:self._acc_bits].as_signed()

    def ws_step(self, psum, a, w):
        return self.mac(psum, a, w)

    def os_step(self, acc, a, w, flags):
        """Next value of an output-stationary accumulator (``acc`` is 0 on a first step)."""
        return self.mac(acc, a, w)

    # -- shapes --

    def element_shape(self, bits, is_signed):
        """One operand element as it arrives: ``bits`` wide, signed or not."""
        return signed(bits) if is_signed else unsigned(bits)

    def word(self, element):
        """One PE's share of an operand beat along K, made of ``element`` shapes."""
        return element

    def operand_shape(self):
        """Activation entering the array: the element less its zero point (``a_bits + 1``)."""
        return signed(self._config.a_bits + 1)

    def weight_operand_shape(self):
        """Weight held by (or passing through) a PE."""
        cfg = self._config
        return self.element_shape(cfg.w_bits, cfg.w_signed)

    def command_fields(self, act_shape):
        """The mode's fields of the command: the activation zero point."""
        return {"a_zero_point": act_shape}

    # -- engine steps --

    def command_errors(self, command, bad):
        """``bad`` (a 1-bit value: ``command`` is refused) or the mode's own reasons."""
        return bad

    def operand(self, word, plane, mask):
        """The array operand of an arriving packed word (packed modes only)."""
        raise NotImplementedError

    def ws_weight(self, word, plane, mask):
        """Weight loaded into a PE: 0 past K, so that padding adds nothing."""
        return Mux(mask, word, 0)

    def ws_activations(self, m, words, koff, plane, word_mask, zero_point):
        """Activations entering the array one cycle after their issue (``koff``, ``plane``:
        the issue's K offset and plane, registered here when the mode needs them)."""
        return [words[r] - zero_point for r in range(self._config.rows)]

    def ws_accumulate(self, base, psum, tag):
        """A row's accumulator after a weight-stationary column sum ``psum`` arrives."""
        return base + psum

    def os_activation(self, lane, plane, mask, zero_point):
        return lane - zero_point

    def os_weight(self, lane, plane, mask):
        return lane

    def post_array(self, value, k):
        """A finished sum, as the output stage takes it."""
        return value


class XnorPE(MacPE):
    """The "xnor" PE mode: ``pack`` binary elements per cycle, counting the mismatches.

    A PE adds ``popcount(a XOR w)``: the elements where the ±1 operands differ (padding past
    K is zero in both operands, so it never counts). The column's ±1 dot product is
    ``K - 2 * mismatches``, formed once per output after the array (:meth:`post_array`).
    Weight-stationary partial sums are counts up to ``rows * pack``, no wider.
    """

    masks_operands = True

    def __init__(self, config: ArrayConfig):
        super().__init__(config)
        self.psum_shape = unsigned(ceil_log2(config.rows * config.pack + 1))

    def count(self, a, w):
        return popcount(a ^ w)

    def ws_step(self, psum, a, w):
        return (psum + self.count(a, w))[:self.psum_shape.width]

    def os_step(self, acc, a, w, flags):
        return (acc + self.count(a, w))[:self._acc_bits].as_signed()

    def element_shape(self, bits, is_signed):
        """One bit: 1 for +1, 0 for -1."""
        return unsigned(1)

    def word(self, element):
        """``pack`` bits, element ``p`` in bit ``p``."""
        return unsigned(self._config.pack)

    def operand_shape(self):
        return unsigned(self._config.pack)

    def weight_operand_shape(self):
        return unsigned(self._config.pack)

    def command_fields(self, act_shape):
        return {}

    def operand(self, word, plane, mask):
        """Masked bits."""
        return word & mask

    def ws_weight(self, word, plane, mask):
        return self.operand(word, plane, mask)

    def ws_activations(self, m, words, koff, plane, word_mask, zero_point):
        issued_koff = Signal.like(koff)
        m.d.sync += issued_koff.eq(koff)
        return [self.operand(words[r], None, word_mask(issued_koff + r))
                for r in range(self._config.rows)]

    def os_activation(self, lane, plane, mask, zero_point):
        return self.operand(lane, None, mask)

    def os_weight(self, lane, plane, mask):
        return self.operand(lane, None, mask)

    def post_array(self, value, k):
        """The ±1 dot product ``K - 2 * mismatches``."""
        return k - (value << 1)


class BitSerialPE(XnorPE):
    """The "bitserial" PE mode: one bit plane of ``pack`` activations and of ``pack``
    weights per cycle, ``popcount(a_i AND w_j)``.

    Weight-stationary: the PE only counts; the column's count is weighted by
    ``±2**(i + j)`` once, below the array (:meth:`ws_accumulate`). Output-stationary: the
    PE weights its own counts by Horner's rule: plane pairs arrive in order of decreasing
    ``i + j``, and on the first step of a smaller ``i + j`` the accumulator doubles (flag
    ``dbl``) before the count is added, or subtracted when exactly one of the planes is a
    signed top plane (flag ``neg``). Everything wraps at ``acc_bits``.
    """

    os_flags = ("dbl", "neg")

    def count(self, a, w):
        return popcount(a & w)

    def os_step(self, acc, a, w, flags):
        base = Mux(flags["dbl"], (acc << 1)[:self._acc_bits], acc)
        count = self.count(a, w)
        return Mux(flags["neg"], base - count, base + count)[:self._acc_bits].as_signed()

    def element_shape(self, bits, is_signed):
        return MacPE.element_shape(self, bits, is_signed)

    def word(self, element):
        """An array of ``pack`` elements."""
        return data.ArrayLayout(element, self._config.pack)

    def command_fields(self, act_shape):
        """The GEMM's bit planes, ``a_planes`` in 1..``a_bits``, ``w_planes`` in
        1..``w_bits``."""
        cfg = self._config
        return {"a_planes": unsigned(ceil_log2(cfg.a_bits + 1)),
                "w_planes": unsigned(ceil_log2(cfg.w_bits + 1))}

    def command_errors(self, command, bad):
        """Or bit planes out of 1..``a_bits`` and 1..``w_bits``."""
        cfg = self._config
        bad |= equals(command.a_planes, 0) | equals(command.w_planes, 0)
        if (1 << len(command.a_planes)) - 1 > cfg.a_bits:
            bad |= command.a_planes > cfg.a_bits
        if (1 << len(command.w_planes)) - 1 > cfg.w_bits:
            bad |= command.w_planes > cfg.w_bits
        return bad

    def operand(self, word, plane, mask):
        """Bit ``plane`` of every element (the elements are arrays of ``pack`` values)."""
        bits = Cat(select(Value.cast(word[e]), plane) for e in range(self._config.pack))
        return bits if mask is None else bits & mask

    def ws_activations(self, m, words, koff, plane, word_mask, zero_point):
        # Weights past K are zero, so the activations need no mask.
        issued_i = Signal.like(plane)
        m.d.sync += issued_i.eq(plane)
        return [self.operand(words[r], issued_i, None) for r in range(self._config.rows)]

    def ws_accumulate(self, base, psum, tag):
        weighted = (psum << tag.shift)[:self._acc_bits]
        return Mux(tag.neg, base - weighted, base + weighted)

    def os_activation(self, lane, plane, mask, zero_point):
        # Weights past K are zero, so the activations need no mask.
        cfg = self._config
        return self.operand(self.word(self.element_shape(cfg.a_bits, cfg.a_signed))(lane),
                            plane, None)

    def os_weight(self, lane, plane, mask):
        cfg = self._config
        return self.operand(self.word(self.element_shape(cfg.w_bits, cfg.w_signed))(lane),
                            plane, mask)

    def post_array(self, value, k):
        return value


_PE_CLASSES = {"mac": MacPE, "xnor": XnorPE, "bitserial": BitSerialPE}


def pe_arithmetic(config: ArrayConfig):
    """The gateware strategy object of ``config``'s PE mode."""
    return _PE_CLASSES[config.mode.name](config)


def operand_shape(config: ArrayConfig):
    """Activation entering the array (see :meth:`MacPE.operand_shape`)."""
    return pe_arithmetic(config).operand_shape()


def weight_operand_shape(config: ArrayConfig):
    """Weight held by (or passing through) a PE (see :meth:`MacPE.weight_operand_shape`)."""
    return pe_arithmetic(config).weight_operand_shape()
