"""Systolic arrays of processing elements, weight-stationary and output-stationary.

Both arrays take one unskewed vector per cycle, skew it internally (row ``r`` is delayed
``r`` cycles, column ``c`` by ``c`` cycles), and return one deskewed vector of ``cols``
accumulators per cycle, so the logic around them never sees the skew.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ._logic import delay
from .config import ArrayConfig
from .pe import operand_shape, pe_arithmetic, weight_operand_shape

__all__ = ["WSProcessingElement", "OSProcessingElement", "WSArray", "OSArray"]


class WSProcessingElement(wiring.Component):
    """Weight-stationary PE: two weight banks, activations pass right, partial sums pass down.

    Members
    -------
    a_in : In(operand_shape)
        Activation from the left; it is used in this cycle and passed on registered.
    bank_in : In(1)
        Which weight bank ``a_in`` is multiplied with; travels along with the activation.
    psum_in : In(psum shape of the PE mode)
        Partial sum from the PE above (0 in the top row).
    load, load_bank, load_data : In
        When ``load`` is high, bank ``load_bank`` takes ``load_data`` at the end of the cycle.
    a_out, bank_out, psum_out : Out
        Registered outputs to the right and below.
    """

    def __init__(self, config: ArrayConfig):
        self._arith = pe_arithmetic(config)
        psum = self._arith.psum_shape
        super().__init__({
            "a_in": In(operand_shape(config)), "bank_in": In(1), "psum_in": In(psum),
            "load": In(1), "load_bank": In(1), "load_data": In(weight_operand_shape(config)),
            "a_out": Out(operand_shape(config)), "bank_out": Out(1), "psum_out": Out(psum),
        })

    def elaborate(self, platform):
        m = Module()
        banks = [Signal.like(self.load_data, name=f"w{i}") for i in range(2)]
        with m.If(self.load):
            with m.If(self.load_bank):
                m.d.sync += banks[1].eq(self.load_data)
            with m.Else():
                m.d.sync += banks[0].eq(self.load_data)
        weight = Mux(self.bank_in, banks[1], banks[0])
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.bank_out.eq(self.bank_in),
            self.psum_out.eq(self._arith.ws_step(self.psum_in, self.a_in, weight)),
        ]
        return m


class OSProcessingElement(wiring.Component):
    """Output-stationary PE: accumulates in place; finished sums drain down a result chain.

    Activations and the step flags (``valid``, ``first``, ``last``, plus the PE mode's
    own, see :class:`MacPE`) arrive from the left and pass right; weights arrive from the
    top and pass down. On the ``last`` step the final sum is pushed into this PE's
    two-register slot of the column's result chain. The chain moves one PE per two
    cycles, so the sums of a column, finished one cycle apart from top to bottom, reach
    the bottom one cycle apart, the bottom PE's first.
    """

    def __init__(self, config: ArrayConfig):
        self._arith = pe_arithmetic(config)
        self._flag_names = ("valid", "first", "last", *self._arith.os_flags)
        acc = signed(config.acc_bits)
        ports = {"a_in": In(operand_shape(config)), "w_in": In(weight_operand_shape(config)),
                 "chain_in": In(acc), "a_out": Out(operand_shape(config)),
                 "w_out": Out(weight_operand_shape(config)), "chain_out": Out(acc)}
        for name in self._flag_names:
            ports[f"{name}_in"] = In(1)
            ports[f"{name}_out"] = Out(1)
        super().__init__(ports)
        self._acc_shape = acc

    @property
    def flag_names(self):
        return self._flag_names

    def elaborate(self, platform):
        m = Module()
        acc = Signal(self._acc_shape)
        slot = Signal(self._acc_shape)
        total = Signal(self._acc_shape)
        flags = {name: getattr(self, f"{name}_in") for name in self._flag_names}
        m.d.comb += total.eq(self._arith.os_step(Mux(self.first_in, 0, acc), self.a_in,
                                                 self.w_in, flags))
        with m.If(self.valid_in):
            m.d.sync += acc.eq(total)
        m.d.sync += [
            slot.eq(Mux(self.valid_in & self.last_in, total, self.chain_in)),
            self.chain_out.eq(slot),
            self.a_out.eq(self.a_in), self.w_out.eq(self.w_in),
        ]
        for name in self._flag_names:
            m.d.sync += getattr(self, f"{name}_out").eq(flags[name])
        return m


def _deskew(m, columns, name):
    """Delay column ``c`` by ``len(columns) - 1 - c`` cycles so that all columns line up."""
    return [delay(m, col, len(columns) - 1 - c, f"{name}{c}") for c, col in enumerate(columns)]


class WSArray(wiring.Component):
    """``rows x cols`` weight-stationary array with input skew and output deskew.

    Timing (cycles): a vector presented on ``a`` in cycle ``T`` reaches PE ``(r, c)`` in
    cycle ``T + r + c``; the deskewed column sums of that vector are on ``psum`` in cycle
    ``T + rows + cols - 1``. A weight load in cycle ``L`` is used from cycle ``L + 1``.

    Members
    -------
    a : In(ArrayLayout(operand_shape, rows))
        One activation (word) per row (row ``r`` meets weight row ``r``).
    bank : In(1)
        Weight bank for this vector.
    load, load_bank : In(1)
        Load ``load_data`` into bank ``load_bank`` of every PE.
    load_data : In(ArrayLayout(ArrayLayout(weight operand, rows), cols))
        ``load_data[c][r]`` is the weight (word) of PE ``(r, c)``.
    psum : Out(ArrayLayout(psum shape, cols))
        Deskewed column sums: wrapped ``acc_bits`` sums (``mac``) or counts of up to
        ``rows * pack`` (``xnor``, ``bitserial``).
    """

    def __init__(self, config: ArrayConfig):
        self._config = config
        psum = pe_arithmetic(config).psum_shape
        super().__init__({
            "a": In(data.ArrayLayout(operand_shape(config), config.rows)),
            "bank": In(1),
            "load": In(1), "load_bank": In(1),
            "load_data": In(data.ArrayLayout(
                data.ArrayLayout(weight_operand_shape(config), config.rows), config.cols)),
            "psum": Out(data.ArrayLayout(psum, config.cols)),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._config.rows, self._config.cols
        pes = [[WSProcessingElement(self._config) for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            a = delay(m, self.a[r], r, f"skew_a{r}")
            bank = delay(m, self.bank, r, f"skew_bank{r}")
            for c in range(cols):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.a_in.eq(a), pe.bank_in.eq(bank),
                    pe.psum_in.eq(pes[r - 1][c].psum_out if r else 0),
                    pe.load.eq(self.load), pe.load_bank.eq(self.load_bank),
                    pe.load_data.eq(self.load_data[c][r]),
                ]
                a, bank = pe.a_out, pe.bank_out
        for c, out in enumerate(_deskew(m, [pes[rows - 1][c].psum_out for c in range(cols)],
                                        "deskew")):
            m.d.comb += self.psum[c].eq(out)
        return m


class OSArray(wiring.Component):
    """``rows x cols`` output-stationary array with input skew and output deskew.

    Array row ``r`` computes output row ``rows - 1 - r`` of the tile, so that finished rows
    leave the bottom in increasing order. Timing (cycles): a step presented in cycle ``T``
    reaches PE ``(r, c)`` in cycle ``T + r + c``. If the tile's last step is presented in
    cycle ``T``, output row ``j`` of the tile is on ``result`` in cycle
    ``T + rows + cols + j``. The last steps of two tiles must be at least ``rows`` cycles
    apart, so that the result chain never holds two sums in one slot.

    Members
    -------
    a : In(ArrayLayout(operand_shape, rows))
        ``a[j]`` is the activation (word) of output row ``j`` of the tile for this step.
    w : In(ArrayLayout(weight operand, cols))
        ``w[c]`` is the weight (word) of output column ``c`` for this step.
    valid, first, last : In(1)
        Step flags: accumulate; start from zero; push the finished sum.
    dbl, neg : In(1)
        ``bitserial`` only: double the sum before this step; subtract this step's count.
    result : Out(ArrayLayout(acc_bits, cols))
        Deskewed finished sums, one tile row per cycle.
    """

    def __init__(self, config: ArrayConfig):
        self._config = config
        self._flag_names = ("valid", "first", "last", *pe_arithmetic(config).os_flags)
        ports = {
            "a": In(data.ArrayLayout(operand_shape(config), config.rows)),
            "w": In(data.ArrayLayout(weight_operand_shape(config), config.cols)),
            "result": Out(data.ArrayLayout(signed(config.acc_bits), config.cols)),
        }
        for name in self._flag_names:
            ports[name] = In(1)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._config.rows, self._config.cols
        pes = [[OSProcessingElement(self._config) for _ in range(cols)] for _ in range(rows)]
        w_top = [delay(m, self.w[c], c, f"skew_w{c}") for c in range(cols)]
        names = self._flag_names
        for r in range(rows):
            a = delay(m, self.a[rows - 1 - r], r, f"skew_a{r}")
            flags = [delay(m, getattr(self, n), r, f"skew_{n}{r}") for n in names]
            for c in range(cols):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.a_in.eq(a),
                    pe.w_in.eq(pes[r - 1][c].w_out if r else w_top[c]),
                    pe.chain_in.eq(pes[r - 1][c].chain_out if r else 0),
                ]
                m.d.comb += [getattr(pe, f"{n}_in").eq(f) for n, f in zip(names, flags,
                                                                          strict=True)]
                a, flags = pe.a_out, [getattr(pe, f"{n}_out") for n in names]
        for c, out in enumerate(_deskew(m, [pes[rows - 1][c].chain_out for c in range(cols)],
                                        "deskew")):
            m.d.comb += self.result[c].eq(out)
        return m


