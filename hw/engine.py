"""``GemmEngine``: the top level: GEMM commands and operand streams in, result stream out.

Streams and their order (one GEMM per command; see also :mod:`hw.beats`). A beat of an
operand stream holds ``rows * pack`` consecutive elements along K (``pack`` is 1 in the
``mac`` mode; in the ``xnor`` mode an element is one bit, 1 for +1, and K counts bits):

* ``cmd``: one beat per GEMM (``M``, ``K``, ``N``; the activation zero point in the
  ``mac`` mode, the bit planes in the ``bitserial`` mode; the output stage's fields).
  It is accepted only while the engine is idle; the operand streams are accepted only
  after it (so a GEMM's first input beat is always its command).
* ``act``: A (M x K) row by row; each row as ``ceil(K / (rows * pack))`` beats
  (elements past K in the last beat are ignored).
* ``wgt``: W as N output channels (W transposed, the layout of an OHWI filter), each as
  ``ceil(K / (rows * pack))`` beats of consecutive weights along K.
* ``par`` (engines with an output stage only): N beats, one per output channel: bias, M0,
  shift (requantizer) or threshold, invert (threshold compares).
* ``res``: results in tile order: for each block of rows (``block_rows`` rows in the
  weight-stationary dataflow, ``rows`` in the output-stationary one), for each group of
  ``cols`` channels, one beat per row of the block holding that row's ``cols`` results
  (columns past N are 0).

Inside, activations and weights are buffered (the whole of W, two blocks of A), a
sequencer walks the tiles (bit-serial: every tile once per pair of bit planes), the
array computes, and results pass through the output stage (requantizer, threshold
compares or none) into an output FIFO. A row or tile enters the array only when the
FIFO has room reserved for its results (credits), so the array itself never stalls and
every stream tolerates any stall on either side.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ._logic import delay, equals, select
from .array import OSArray, WSArray
from .config import ArrayConfig, ceil_log2, latencies
from .interfaces import (
    act_layout,
    cmd_layout,
    par_layout,
    res_layout,
    wgt_layout,
)
from .pe import pe_arithmetic
from .requant import REQUANT_LATENCY, Requantizer
from .threshold import THRESHOLD_LATENCY, ThresholdUnit

__all__ = ["GemmEngine", "engine_signature"]


def engine_signature(config: ArrayConfig):
    """The engine's ports: the streams of :mod:`hw.interfaces` plus ``busy`` and ``error``."""
    ports = {
        "cmd": In(stream.Signature(cmd_layout(config))),
        "act": In(stream.Signature(act_layout(config))),
        "wgt": In(stream.Signature(wgt_layout(config))),
    }
    if config.has_params:
        ports["par"] = In(stream.Signature(par_layout(config)))
    ports["res"] = Out(stream.Signature(res_layout(config)))
    ports["busy"] = Out(1)
    ports["error"] = Out(1)
    return wiring.Signature(ports)


def _buffer(shape, address_bits):
    """A memory of ``2**address_bits`` words, at least two.

    A one-word memory would have a zero-width address, which Yosys writes as the
    descending range ``[-1:0]``; the second word is never addressed.
    """
    return Memory(shape=shape, depth=1 << max(address_bits, 1), init=[])


def _bits(n):
    """Address bits for ``n`` entries (0 when one entry)."""
    return ceil_log2(max(1, n))


class GemmEngine(wiring.Component):
    """Quantized GEMM engine on a systolic array (weight- or output-stationary).

    Parameters
    ----------
    config : ArrayConfig

    Members
    -------
    cmd : In(stream.Signature(cmd_layout))
    act : In(stream.Signature(act_layout))
    wgt : In(stream.Signature(wgt_layout))
    par : In(stream.Signature(par_layout))
        Only when ``config.has_params`` (requantizer or threshold compares).
    res : Out(stream.Signature(res_layout))
    busy : Out(1)
        High from the cycle after a command is accepted until its results are all out.
    error : Out(1)
        High after a command with a zero or over-limit size (or bit planes out of range,
        or ``act_min > act_max``) was refused; low again after the next good command.
    """

    def __init__(self, config: ArrayConfig):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"GemmEngine config must be an ArrayConfig, not {config!r}")
        config.check_generatable()
        self._config = config
        self._latency = latencies(config)
        self._pe = pe_arithmetic(config)
        super().__init__(engine_signature(config))

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        self._m = m

        # ---- command ----------------------------------------------------------------
        cmd = Signal(cmd_layout(cfg))
        self._cmd = cmd
        busy = self.busy
        m.d.comb += self.cmd.ready.eq(~busy)
        p = self.cmd.payload
        bad = equals(p.m, 0) | equals(p.k, 0) | equals(p.n, 0)
        if (1 << len(p.m)) - 1 > cfg.max_m:
            bad |= p.m > cfg.max_m
        if (1 << len(p.k)) - 1 > cfg.max_k:
            bad |= p.k > cfg.max_k
        if (1 << len(p.n)) - 1 > cfg.max_n:
            bad |= p.n > cfg.max_n
        bad = self._pe.command_errors(p, bad)
        if cfg.requant:
            bad |= p.act_min > p.act_max
        start = Signal()
        m.d.comb += start.eq(self.cmd.valid & ~busy & ~bad)
        self._start = start
        with m.If(self.cmd.valid & ~busy):
            m.d.sync += self.error.eq(bad)
            with m.If(~bad):
                m.d.sync += [cmd.eq(p), busy.eq(1)]
        self._decode_words(p)

        self._act_buffer()
        self._wgt_buffer()
        self._par_buffer()
        self._output_fifo()
        if cfg.dataflow == "ws":
            self._ws_datapath()
        else:
            self._os_datapath()
        self._output_stage()

        # The GEMM is over once every tile was issued and every reserved result left.
        with m.If(busy & self._issued_all & equals(self._reserved, 0)):
            m.d.sync += busy.eq(0)
        return m

    # ---- helpers -------------------------------------------------------------------

    def _decode_words(self, p):
        """Per-GEMM constants of K in PE words, registered with the command.

        ``self._kw``: PE words along K, ``ceil(K / pack)``; ``self._last_mask``: the valid
        elements of the last word (bit ``e`` set for element ``e``). With ``pack`` 1 a word
        is an element, and ``K`` itself is used.
        """
        m, cfg = self._m, self._config
        if cfg.pack == 1:
            self._kw = self._cmd.k
            self._last_mask = Const(1, 1)
            return
        shift = ceil_log2(cfg.pack)
        self._kw = Signal(range(cfg.k_words + 1), name="k_words")
        self._last_mask = Signal(cfg.pack, name="k_last_mask")
        tail = (p.k - 1)[:shift]                      # valid elements of the last word - 1
        with m.If(self._start):
            m.d.sync += [self._kw.eq((p.k + cfg.pack - 1) >> shift),
                         # element 0 of the last word is always valid
                         self._last_mask.eq(Cat(Const(1, 1), *(Const(e, shift) <= tail
                                                               for e in range(1, cfg.pack))))]

    def _word_mask(self, word):
        """Valid elements of PE word ``word`` along K: all, those of the last word, or none."""
        cfg = self._config
        if cfg.pack == 1:
            return word < self._kw
        full = Const((1 << cfg.pack) - 1, cfg.pack)
        return Mux(word + 1 < self._kw, full, Mux(word + 1 == self._kw, self._last_mask, 0))

    def _counter(self, name, limit):
        """A counter register 0..limit, cleared when a command starts.

        At least one bit wide even when ``limit`` is 0: Yosys writes a zero-width signal
        as the descending range ``[-1:0]``, which is not valid for every tool.
        """
        sig = Signal(range(max(limit, 1) + 1), name=name)
        with self._m.If(self._start):
            self._m.d.sync += sig.eq(0)
        return sig

    def _flag(self, name):
        sig = Signal(name=name)
        with self._m.If(self._start):
            self._m.d.sync += sig.eq(0)
        return sig

    def _chunk_walk(self, prefix):
        """K-chunk counter: ``(index, offset, is_last)``; offset = index * rows, in PE words."""
        cfg = self._config
        kt = self._counter(f"{prefix}_kt", cfg.k_chunks)
        koff = self._counter(f"{prefix}_koff", cfg.k_chunks * cfg.rows)
        last = Signal(name=f"{prefix}_klast")
        self._m.d.comb += last.eq(koff + cfg.rows >= self._kw)
        return kt, koff, last

    def _advance_chunk(self, kt, koff, last):
        """Next chunk, or chunk 0 after the last one."""
        m = self._m
        with m.If(last):
            m.d.sync += [kt.eq(0), koff.eq(0)]
        with m.Else():
            m.d.sync += [kt.eq(kt + 1), koff.eq(koff + self._config.rows)]

    @property
    def _max_blocks(self):
        return -(-self._config.max_m // self._config.block)

    # ---- operand buffers -----------------------------------------------------------

    def _act_buffer(self):
        """Activation loader: rows of A into a two-block buffer.

        Weight-stationary: one memory, one word per (block half, row in block, chunk).
        Output-stationary: one memory per row of the block (the array reads a column of
        the block per step), one word per (block half, chunk).
        """
        m, cfg = self._m, self._config
        width = act_layout(cfg).size
        kt_bits = _bits(cfg.k_chunks)
        row = self._counter("ld_row", cfg.max_m)
        row_in_block = self._counter("ld_mloc", cfg.block)
        blocks = self._counter("ld_blocks", self._max_blocks)
        kt, koff, klast = self._chunk_walk("ld")
        self._ld_blocks = blocks
        # Block `blocks` is written into half `blocks % 2`; it is free once the sequencer
        # has moved past block `blocks - 2` (`self._seq_block` counts finished blocks).
        self._seq_block = Signal(range(self._max_blocks + 1), name="seq_block")
        ready = self.busy & (row < self._cmd.m) & (blocks < self._seq_block + 2)
        m.d.comb += self.act.ready.eq(ready)
        take = self.act.valid & ready
        half = blocks[0]
        if cfg.dataflow == "ws":
            mem = _buffer(unsigned(width), 1 + _bits(cfg.block) + kt_bits)
            m.submodules.act_mem = mem
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(Cat(kt[:kt_bits], row_in_block[:_bits(cfg.block)], half)),
                         wp.data.eq(self.act.payload.as_value()), wp.en.eq(take)]
            self._act_read = [mem.read_port()]
        else:
            self._act_read = []
            for j in range(cfg.rows):
                mem = _buffer(unsigned(width), 1 + kt_bits)
                m.submodules[f"act_mem{j}"] = mem
                wp = mem.write_port()
                m.d.comb += [wp.addr.eq(Cat(kt[:kt_bits], half)),
                             wp.data.eq(self.act.payload.as_value()),
                             wp.en.eq(take & equals(row_in_block, j))]
                self._act_read.append(mem.read_port())
        with m.If(take):
            self._advance_chunk(kt, koff, klast)
            with m.If(klast):
                m.d.sync += row.eq(row + 1)
                with m.If(equals(row_in_block, cfg.block - 1) | (row + 1 == self._cmd.m)):
                    m.d.sync += [row_in_block.eq(0), blocks.eq(blocks + 1)]
                with m.Else():
                    m.d.sync += row_in_block.eq(row_in_block + 1)

    def _channel_loader(self, name, stream_in, shape, per_channel_words):
        """Load N channels into ``cols`` banks (bank = channel % cols).

        Returns ``(read ports, tile_ready)``; ``tile_ready(nt)`` is true once every
        channel of column tile ``nt`` is in.
        """
        m, cfg = self._m, self._config
        nt_bits = _bits(cfg.n_tiles)
        kt_bits = _bits(cfg.k_chunks) if per_channel_words else 0
        n_done = self._counter(f"{name}_n", cfg.max_n)
        col = self._counter(f"{name}_col", cfg.cols)
        tiles = self._counter(f"{name}_tiles", cfg.n_tiles)
        ready = self.busy & (n_done < self._cmd.n)
        m.d.comb += stream_in.ready.eq(ready)
        take = stream_in.valid & ready
        if per_channel_words:
            kt, koff, klast = self._chunk_walk(name)
        else:
            kt, klast = Const(0, 1), Const(1, 1)
        ports = []
        for c in range(cfg.cols):
            mem = _buffer(shape, nt_bits + kt_bits)
            m.submodules[f"{name}_mem{c}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(Cat(kt[:kt_bits], tiles[:nt_bits])),
                         wp.data.eq(stream_in.payload.as_value()),
                         wp.en.eq(take & equals(col, c))]
            ports.append(mem.read_port())
        with m.If(take):
            if per_channel_words:
                self._advance_chunk(kt, koff, klast)
            with m.If(klast):
                m.d.sync += n_done.eq(n_done + 1)
                with m.If(equals(col, cfg.cols - 1)):
                    m.d.sync += [col.eq(0), tiles.eq(tiles + 1)]
                with m.Else():
                    m.d.sync += col.eq(col + 1)

        def tile_ready(nt):
            return (tiles > nt) | (n_done == self._cmd.n)
        return ports, tile_ready

    def _wgt_buffer(self):
        cfg = self._config
        self._wgt_read, self._wgt_ready = self._channel_loader(
            "wl", self.wgt, unsigned(wgt_layout(cfg).size), per_channel_words=True)

    def _par_buffer(self):
        cfg = self._config
        if cfg.has_params:
            self._par_read, self._par_ready = self._channel_loader(
                "pl", self.par, unsigned(par_layout(cfg).size), per_channel_words=False)
        else:
            self._par_read, self._par_ready = None, (lambda nt: Const(1, 1))

    # ---- output FIFO and credits ---------------------------------------------------

    def _output_fifo(self):
        """Result FIFO; ``reserved`` counts entries promised to results not yet sent.

        A result is promised its entry when the row (weight-stationary) or tile
        (output-stationary) that produces it is issued; at most ``depth - 1`` promises
        are outstanding, which keeps the buffered FIFO's write side always ready.
        """
        m, cfg = self._m, self._config
        depth = cfg.fifo_depth
        self._fifo = fifo.SyncFIFOBuffered(width=res_layout(cfg).size, depth=depth)
        m.submodules.out_fifo = self._fifo
        self._reserved = Signal(range(depth + 1), name="reserved")
        self._reserve = Signal(range(depth + 1), name="reserve")
        self._credit_limit = depth - 1
        sent = self.res.valid & self.res.ready
        m.d.comb += [
            self.res.valid.eq(self._fifo.r_rdy),
            self.res.payload.eq(self._fifo.r_data),
            self._fifo.r_en.eq(self.res.ready),
        ]
        m.d.sync += self._reserved.eq(self._reserved + self._reserve - sent)

    # ---- weight-stationary ---------------------------------------------------------

    def _plane_walk(self, prefix, planes_field, bits):
        """Bit-plane counter 0..planes-1 of a bit-serial GEMM: ``(index, is_last)``.

        Other PE modes have one "plane": the index is 0 and every step is its last.
        """
        if not self._config.mode.has_planes:
            return Const(0, 1), Const(1, 1)
        plane = self._counter(f"{prefix}", max(bits - 1, 1))
        last = Signal(name=f"{prefix}_last")
        self._m.d.comb += last.eq(plane + 1 == getattr(self._cmd, planes_field))
        return plane, last

    def _advance_plane(self, plane, last, wrapped):
        """Next bit plane; after the last one, plane 0 and ``wrapped()`` (the outer walk)."""
        if not self._config.mode.has_planes:
            wrapped()
            return
        m = self._m
        with m.If(last):
            m.d.sync += plane.eq(0)
            wrapped()
        with m.Else():
            m.d.sync += plane.eq(plane + 1)

    def _negative(self, i, j):
        """Whether plane pair ``(i, j)`` weighs negative: exactly one signed top plane."""
        cfg, cmd = self._config, self._cmd
        a_top = (i + 1 == cmd.a_planes) if cfg.a_signed else Const(0, 1)
        w_top = (j + 1 == cmd.w_planes) if cfg.w_signed else Const(0, 1)
        return a_top ^ w_top

    def _ws_datapath(self):
        """Weight-stationary: a weight-tile loader and a row issuer, one tile apart.

        Long (why): the loader, the issuer and the accumulator share their tile walk and
        bank state through locals; splitting them into ``wiring.Component``s (a sequencer
        per dataflow driven by one tile walker) is the open part of issue 11.

        Tiles are walked block by block, then column tile, then K chunk (then, bit-serial,
        weight bit plane ``j``). The loader puts the next tile's weights into the PEs' idle
        bank while the issuer streams the rows of the current tile (bit-serial: once per
        activation bit plane ``i``); each row carries its bank along, so tiles follow back
        to back. A bank may be reloaded ``rows + cols - 2`` cycles after the last row of the
        tile that used it was issued (when that row has left the last PE).
        """
        m, cfg = self._m, self._config
        R, C = cfg.rows, cfg.cols
        cmd = self._cmd
        kt_bits, nt_bits, mb_bits = _bits(cfg.k_chunks), _bits(cfg.n_tiles), _bits(cfg.block)
        bitserial = cfg.mode.has_planes
        array = m.submodules.array = WSArray(cfg)

        # -- weight-tile loader --
        wt_block = self._counter("wt_block", self._max_blocks)
        wt_mbase = self._counter("wt_mbase", cfg.max_m + cfg.block)
        wt_nt = self._counter("wt_nt", cfg.n_tiles)
        wt_n0 = self._counter("wt_n0", cfg.n_tiles * C)
        wt_kt, wt_koff, wt_klast = self._chunk_walk("wt")
        wt_j, wt_jlast = self._plane_walk("wt_plane", "w_planes", cfg.w_bits)
        wt_bank = self._flag("wt_bank")
        wt_done = self._flag("wt_done")
        ahead = self._counter("tiles_ahead", 2)       # tiles loaded but not yet issued
        drain = [self._counter(f"bank{b}_drain", self._latency.ws_drain) for b in range(2)]
        wt_go = Signal()
        m.d.comb += wt_go.eq(self.busy & ~wt_done & self._wgt_ready(wt_nt) & (ahead <= 1)
                             & equals(Mux(wt_bank, drain[1], drain[0]), 0))
        for port in self._wgt_read:
            m.d.comb += port.addr.eq(Cat(wt_kt[:kt_bits], wt_nt[:nt_bits]))
        wt_nlast = wt_n0 + C >= cmd.n
        wt_mlast = wt_mbase + cfg.block >= cmd.m

        def wt_next_chunk():
            self._advance_chunk(wt_kt, wt_koff, wt_klast)
            with m.If(wt_klast):
                with m.If(wt_nlast):
                    m.d.sync += [wt_nt.eq(0), wt_n0.eq(0), wt_block.eq(wt_block + 1),
                                 wt_mbase.eq(wt_mbase + cfg.block)]
                    with m.If(wt_mlast):
                        m.d.sync += wt_done.eq(1)
                with m.Else():
                    m.d.sync += [wt_nt.eq(wt_nt + 1), wt_n0.eq(wt_n0 + C)]

        with m.If(wt_go):
            m.d.sync += wt_bank.eq(~wt_bank)
            self._advance_plane(wt_j, wt_jlast, wt_next_chunk)
        # The loaded word arrives one cycle later and is written into the PEs then.
        load = Signal()
        load_bank = Signal()
        load_koff = Signal.like(wt_koff)
        m.d.sync += [load.eq(wt_go), load_bank.eq(wt_bank), load_koff.eq(wt_koff)]
        load_j = None
        if bitserial:
            load_j = Signal.like(wt_j)
            m.d.sync += load_j.eq(wt_j)
        m.d.comb += [array.load.eq(load), array.load_bank.eq(load_bank)]
        masks = [Signal(cfg.pack, name=f"load_mask{r}") for r in range(R)]
        m.d.comb += [masks[r].eq(self._word_mask(load_koff + r)) for r in range(R)]
        for c in range(C):
            word = wgt_layout(cfg)(self._wgt_read[c].data)
            for r in range(R):
                # Words (elements) past K get weight 0, so they add nothing.
                m.d.comb += array.load_data[c][r].eq(self._pe.ws_weight(word[r], load_j,
                                                                         masks[r]))

        # -- row issuer --
        ri_block = self._counter("ri_block", self._max_blocks)
        ri_mbase = self._counter("ri_mbase", cfg.max_m + cfg.block)
        ri_nt = self._counter("ri_nt", cfg.n_tiles)
        ri_n0 = self._counter("ri_n0", cfg.n_tiles * C)
        ri_kt, ri_koff, ri_klast = self._chunk_walk("ri")
        ri_j, ri_jlast = self._plane_walk("ri_wplane", "w_planes", cfg.w_bits)
        ri_i, ri_ilast = self._plane_walk("ri_aplane", "a_planes", cfg.a_bits)
        ri_row = self._counter("ri_row", cfg.block)
        ri_bank = self._flag("ri_bank")
        ri_done = self._flag("ri_done")
        block_rows = Signal(range(cfg.block + 1))
        m.d.comb += block_rows.eq(Mux(cmd.m - ri_mbase < cfg.block, cmd.m - ri_mbase,
                                      cfg.block))
        # The last contribution to a row's results: its results get a FIFO entry.
        ri_final = Signal()
        m.d.comb += ri_final.eq(ri_klast & ri_jlast & ri_ilast)
        ri_go = Signal()
        m.d.comb += ri_go.eq(
            self.busy & ~ri_done & (ahead >= 1) & (self._ld_blocks > ri_block)
            & (~ri_final | ((self._reserved < self._credit_limit) & self._par_ready(ri_nt))))
        m.d.comb += self._reserve.eq(ri_go & ri_final)
        m.d.comb += self._act_read[0].addr.eq(Cat(ri_kt[:kt_bits], ri_row[:mb_bits], ri_block[0]))
        row_end = ri_row == block_rows - 1
        tile_end = ri_go & row_end & ri_ilast

        def ri_next_chunk():
            self._advance_chunk(ri_kt, ri_koff, ri_klast)
            with m.If(ri_klast):
                with m.If(ri_n0 + C >= cmd.n):
                    m.d.sync += [ri_nt.eq(0), ri_n0.eq(0), ri_block.eq(ri_block + 1),
                                 ri_mbase.eq(ri_mbase + cfg.block)]
                    with m.If(ri_mbase + cfg.block >= cmd.m):
                        m.d.sync += ri_done.eq(1)
                with m.Else():
                    m.d.sync += [ri_nt.eq(ri_nt + 1), ri_n0.eq(ri_n0 + C)]

        def ri_next_tile():
            m.d.sync += ri_bank.eq(~ri_bank)
            self._advance_plane(ri_j, ri_jlast, ri_next_chunk)

        with m.If(ri_go):
            with m.If(row_end):
                m.d.sync += ri_row.eq(0)
                self._advance_plane(ri_i, ri_ilast, ri_next_tile)
            with m.Else():
                m.d.sync += ri_row.eq(ri_row + 1)
        m.d.comb += self._seq_block.eq(ri_block)
        m.d.sync += ahead.eq(ahead + wt_go - tile_end)
        for b in range(2):
            with m.If(tile_end & (ri_bank == b)):
                m.d.sync += drain[b].eq(self._latency.ws_drain)
            with m.Elif(drain[b] != 0):
                m.d.sync += drain[b].eq(drain[b] - 1)
        self._issued_all = ri_done

        # -- array input, one cycle after the issue (the buffer read) --
        fields = {"valid": 1, "first": 1, "last": 1, "row": unsigned(max(mb_bits, 1)),
                  "nt": unsigned(max(nt_bits, 1))}
        if bitserial:
            fields["shift"] = unsigned(max(1, ceil_log2(cfg.a_bits + cfg.w_bits - 1)))
            fields["neg"] = 1
        tag = data.StructLayout(fields)
        issued = Signal(tag)
        first = equals(ri_kt, 0)
        if bitserial:
            first &= equals(ri_j, 0) & equals(ri_i, 0)
            m.d.sync += [issued.shift.eq(ri_i + ri_j), issued.neg.eq(self._negative(ri_i, ri_j))]
        m.d.sync += [issued.valid.eq(ri_go), issued.first.eq(first),
                     issued.last.eq(ri_final), issued.row.eq(ri_row), issued.nt.eq(ri_nt)]
        bank = Signal()
        m.d.sync += bank.eq(ri_bank)
        a_word = act_layout(cfg)(self._act_read[0].data)
        zero_point = cmd.a_zero_point if "a_zero_point" in cmd.shape().members else None
        values = self._pe.ws_activations(m, a_word, ri_koff, ri_i, self._word_mask, zero_point)
        for r in range(R):
            m.d.comb += array.a[r].eq(values[r])
        m.d.comb += array.bank.eq(bank)

        # -- accumulate over K chunks (and bit planes): the psum of a vector is out
        #    R + C - 1 cycles after it entered --
        before = delay(m, issued, self._latency.ws_tag, "tag")  # one cycle before the psum
        at_psum = Signal(tag)
        m.d.sync += at_psum.eq(before)
        acc_mem = _buffer(unsigned(C * cfg.acc_bits), mb_bits)
        m.submodules.acc_mem = acc_mem
        acc_wp = acc_mem.write_port()
        acc_rp = acc_mem.read_port(transparent_for=(acc_wp,))
        m.d.comb += acc_rp.addr.eq(before.row[:mb_bits])
        acc_shape = data.ArrayLayout(signed(cfg.acc_bits), C)
        previous = acc_shape(acc_rp.data)
        total = Signal(acc_shape)
        for c in range(C):
            base = Mux(at_psum.first, 0, previous[c])
            psum = array.psum[c]
            m.d.comb += total[c].eq(self._pe.ws_accumulate(base, psum, at_psum)[:cfg.acc_bits])
        m.d.comb += [acc_wp.addr.eq(at_psum.row[:mb_bits]), acc_wp.data.eq(total.as_value()),
                     acc_wp.en.eq(at_psum.valid & ~at_psum.last)]
        self._post(at_psum.valid & at_psum.last, total, at_psum.nt)

    # ---- output-stationary ---------------------------------------------------------

    def _os_datapath(self):
        """Output-stationary: tiles of ``rows`` rows x ``cols`` channels, one step per PE word.

        Long (why): as :meth:`_ws_datapath`, the tile stepper, the plane walk and the
        result tokens share state through locals until they become components.

        A tile starts once its block of A, its column tile of W (and parameters) are in,
        its ``rows`` results have FIFO entries, and its last step will come at least
        ``rows`` cycles after the previous tile's; then its steps issue back to back:
        ``ceil(K / pack)`` words, and in the bit-serial mode that many for each pair of bit
        planes ``(i, j)``, pairs in order of decreasing ``i + j`` (Horner's rule, see
        :class:`hw.array.BitSerialPE`).
        """
        m, cfg = self._m, self._config
        R, C = cfg.rows, cfg.cols
        cmd = self._cmd
        kt_bits, nt_bits = _bits(cfg.k_chunks), _bits(cfg.n_tiles)
        bitserial = cfg.mode.has_planes
        array = m.submodules.array = OSArray(cfg)

        mt = self._counter("os_block", self._max_blocks)
        mbase = self._counter("os_mbase", cfg.max_m + R)
        nt = self._counter("os_nt", cfg.n_tiles)
        n0 = self._counter("os_n0", cfg.n_tiles * C)
        step = self._counter("os_step", cfg.k_words)
        kt = self._counter("os_kt", cfg.k_chunks)
        elem = self._counter("os_elem", R - 1)
        in_tile = self._flag("os_in_tile")
        done = self._flag("os_done")
        since = Signal(range(R + 1), init=R)         # cycles since the last tile's last step
        with m.If(self._start):
            m.d.sync += since.eq(R)
        tile_rows = Signal(range(R + 1))
        m.d.comb += tile_rows.eq(Mux(cmd.m - mbase < R, cmd.m - mbase, R))
        first = ~in_tile
        word_last = Signal()
        m.d.comb += word_last.eq(step + 1 == self._kw)
        if bitserial:
            pair = self._os_plane_pairs(in_tile)
            pass_last = pair["last"]
            tile_steps = Signal(range(cfg.k_words * cfg.a_bits * cfg.w_bits + 1))
            m.d.comb += tile_steps.eq(self._kw * cmd.a_planes * cmd.w_planes)
        else:
            pass_last = Const(1, 1)
            tile_steps = self._kw
        last = word_last & pass_last
        can_start = (self.busy & ~done & ~in_tile & (self._ld_blocks > mt)
                     & self._wgt_ready(nt) & self._par_ready(nt)
                     & (self._reserved + tile_rows <= self._credit_limit)
                     & (since + tile_steps >= R + 1))
        go = Signal()
        m.d.comb += go.eq(in_tile | can_start)
        m.d.comb += self._reserve.eq(Mux(can_start, tile_rows, 0))
        for port in self._act_read:
            m.d.comb += port.addr.eq(Cat(kt[:kt_bits], mt[0]))
        for port in self._wgt_read:
            m.d.comb += port.addr.eq(Cat(kt[:kt_bits], nt[:nt_bits]))

        def next_tile():
            m.d.sync += in_tile.eq(0)
            with m.If(n0 + C >= cmd.n):
                m.d.sync += [nt.eq(0), n0.eq(0), mt.eq(mt + 1), mbase.eq(mbase + R)]
                with m.If(mbase + R >= cmd.m):
                    m.d.sync += done.eq(1)
            with m.Else():
                m.d.sync += [nt.eq(nt + 1), n0.eq(n0 + C)]

        with m.If(go):
            with m.If(word_last):
                m.d.sync += [step.eq(0), kt.eq(0), elem.eq(0)]
                if bitserial:
                    with m.If(pass_last):
                        next_tile()
                    with m.Else():
                        m.d.sync += in_tile.eq(1)
                else:
                    next_tile()
            with m.Else():
                m.d.sync += [in_tile.eq(1), step.eq(step + 1)]
                with m.If(equals(elem, R - 1)):
                    m.d.sync += [elem.eq(0), kt.eq(kt + 1)]
                with m.Else():
                    m.d.sync += elem.eq(elem + 1)
        if bitserial:
            self._os_advance_pair(pair, go, word_last)
        with m.If(go & last):
            m.d.sync += since.eq(1)
        with m.Elif(since < R):
            m.d.sync += since.eq(since + 1)
        m.d.comb += self._seq_block.eq(mt)
        self._issued_all = done

        # -- array input, one cycle after the issue (the buffer reads) --
        flag_fields = {"valid": 1, "first": 1, "last": 1}
        if bitserial:
            flag_fields.update(dbl=1, neg=1)
        flags = Signal(data.StructLayout(flag_fields))
        sel = Signal.like(elem)
        m.d.sync += [flags.valid.eq(go), flags.first.eq(first), flags.last.eq(last),
                     sel.eq(elem)]
        mask = sel_i = sel_j = None
        if self._pe.masks_operands:
            mask = Signal(cfg.pack, name="os_mask")
            m.d.sync += mask.eq(self._word_mask(step))
        if bitserial:
            sel_i, sel_j = Signal.like(pair["i"]), Signal.like(pair["j"])
            m.d.sync += [sel_i.eq(pair["i"]), sel_j.eq(pair["j"]),
                         flags.dbl.eq(pair["dbl"] & equals(step, 0)),
                         flags.neg.eq(self._negative(pair["i"], pair["j"]))]
        zero_point = cmd.a_zero_point if "a_zero_point" in cmd.shape().members else None
        for j in range(R):
            lane = select(act_layout(cfg)(self._act_read[j].data), sel)
            m.d.comb += array.a[j].eq(self._pe.os_activation(lane, sel_i, mask, zero_point))
        for c in range(C):
            lane = select(wgt_layout(cfg)(self._wgt_read[c].data), sel)
            m.d.comb += array.w[c].eq(self._pe.os_weight(lane, sel_j, mask))
        for name in flag_fields:
            m.d.comb += getattr(array, name).eq(getattr(flags, name))

        # -- results: row j of a tile is out rows + cols + j cycles after its last step --
        token = Signal(data.StructLayout({"valid": 1, "rows": unsigned(ceil_log2(R + 1)),
                                          "nt": unsigned(max(nt_bits, 1))}))
        m.d.sync += [token.valid.eq(go & last), token.rows.eq(tile_rows), token.nt.eq(nt)]
        arrived = delay(m, token, self._latency.os_token, "token")
        row = Signal(range(R + 1))
        rows = Signal.like(token.rows)
        row_nt = Signal.like(token.nt)
        valid = Signal()
        out_nt = Signal.like(token.nt)
        with m.If(arrived.valid):
            m.d.comb += [valid.eq(arrived.rows > 0), out_nt.eq(arrived.nt)]
            m.d.sync += [row.eq(1), rows.eq(arrived.rows), row_nt.eq(arrived.nt)]
        with m.Else():
            m.d.comb += [valid.eq(row < rows), out_nt.eq(row_nt)]
            with m.If(row < R):
                m.d.sync += row.eq(row + 1)
        self._post(valid, array.result, out_nt)

    def _os_plane_pairs(self, in_tile):
        """The bit-plane pair ``(i, j)`` of the current output-stationary pass.

        Pairs go in order of decreasing ``s = i + j`` and, within one ``s``, increasing
        ``i``: from ``(a_planes - 1, w_planes - 1)`` to ``(0, 0)``. A tile's first pass is
        the first pair (the registers only hold the pair while the tile runs). ``dbl``:
        this pass has a smaller ``s`` than the one before it (so its first step doubles
        the sum).
        """
        m, cfg, cmd = self._m, self._config, self._cmd
        i_reg = Signal(range(max(cfg.a_bits, 2)), name="os_aplane")
        j_reg = Signal(range(max(cfg.w_bits, 2)), name="os_wplane")
        s_reg = Signal(range(cfg.a_bits + cfg.w_bits), name="os_psum_shift")
        dbl_reg = Signal(name="os_pass_doubles")
        i, j, s = Signal.like(i_reg), Signal.like(j_reg), Signal.like(s_reg)
        m.d.comb += [
            i.eq(Mux(in_tile, i_reg, cmd.a_planes - 1)),
            j.eq(Mux(in_tile, j_reg, cmd.w_planes - 1)),
            s.eq(Mux(in_tile, s_reg, cmd.a_planes + cmd.w_planes - 2)),
        ]
        return {"i": i, "j": j, "s": s, "dbl": in_tile & dbl_reg, "last": equals(s, 0),
                "regs": (i_reg, j_reg, s_reg, dbl_reg)}

    def _os_advance_pair(self, pair, go, word_last):
        """Hold the pair during a pass; at its last word, move to the next pair."""
        m, cmd = self._m, self._cmd
        i_reg, j_reg, s_reg, dbl_reg = pair["regs"]
        i, j, s = pair["i"], pair["j"], pair["s"]
        with m.If(go):
            with m.If(~word_last):
                m.d.sync += [i_reg.eq(i), j_reg.eq(j), s_reg.eq(s), dbl_reg.eq(pair["dbl"])]
            with m.Elif((i + 1 < cmd.a_planes) & ~equals(j, 0)):
                m.d.sync += [i_reg.eq(i + 1), j_reg.eq(j - 1), dbl_reg.eq(0), s_reg.eq(s)]
            with m.Else():
                # Next s = s - 1: its first pair has the smallest i that keeps j in range.
                m.d.sync += [s_reg.eq(s - 1), dbl_reg.eq(1)]
                with m.If(s >= cmd.w_planes):
                    m.d.sync += [i_reg.eq(s - cmd.w_planes), j_reg.eq(cmd.w_planes - 1)]
                with m.Else():
                    m.d.sync += [i_reg.eq(0), j_reg.eq(s - 1)]

    # ---- post-array: requantize or compare, mask, write the FIFO ------------------

    def _post(self, valid, acc, nt):
        """Register the finished row; read its channels' parameters for the next cycle.

        ``xnor``: the array counted mismatches; the ±1 dot product is ``K - 2 * count``,
        wrapped to ``acc_bits`` like every other sum.
        """
        m, cfg = self._m, self._config
        row_valid = Signal()
        row_acc = Signal(data.ArrayLayout(signed(cfg.acc_bits), cfg.cols))
        row_nt = Signal.like(nt)
        m.d.sync += [row_valid.eq(valid), row_nt.eq(nt)]
        for c in range(cfg.cols):
            value = self._pe.post_array(acc[c], self._cmd.k)
            m.d.sync += row_acc[c].eq(value[:cfg.acc_bits])
        if cfg.has_params:
            for port in self._par_read:
                m.d.comb += port.addr.eq(nt[:_bits(cfg.n_tiles)])
        self._row = (row_valid, row_acc, row_nt)

    def _output_stage(self):
        m, cfg = self._m, self._config
        valid, acc, nt = self._row
        if cfg.requant:
            rq = m.submodules.requant = Requantizer(cfg)
            m.d.comb += [rq.valid.eq(valid), rq.acc.eq(acc),
                         rq.out_zero_point.eq(self._cmd.out_zero_point),
                         rq.act_min.eq(self._cmd.act_min), rq.act_max.eq(self._cmd.act_max)]
            for c in range(cfg.cols):
                m.d.comb += rq.params[c].eq(self._par_read[c].data)
            valid, values = rq.out_valid, rq.out
            nt = delay(m, nt, REQUANT_LATENCY, "out_nt")
        elif cfg.threshold:
            th = m.submodules.threshold = ThresholdUnit(cfg)
            m.d.comb += [th.valid.eq(valid), th.acc.eq(acc)]
            for c in range(cfg.cols):
                m.d.comb += th.params[c].eq(self._par_read[c].data)
            valid, values = th.out_valid, th.out
            nt = delay(m, nt, THRESHOLD_LATENCY, "out_nt")
        else:
            values = acc
        result = Signal(res_layout(cfg))
        n0 = nt * cfg.cols
        for c in range(cfg.cols):
            m.d.comb += result[c].eq(Mux(n0 + c < self._cmd.n, values[c], 0))
        m.d.comb += [self._fifo.w_en.eq(valid), self._fifo.w_data.eq(result.as_value())]
