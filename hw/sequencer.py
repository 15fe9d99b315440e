"""The sequencers: one per dataflow, each driven by tile walkers, each feeding its array.

A sequencer decides in every cycle what enters the array (a weight tile, a row, a step),
from what the buffers hold and the output credits left, and turns the array's column sums
into finished rows for the output stage.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ._logic import cleared_counter, cleared_flag, delay, equals, select
from .array import OSArray, WSArray
from .buffers import (
    act_read_signature,
    address_bits,
    channel_read_signature,
    max_blocks,
    status_signature,
)
from .command import context_signature, word_mask
from .config import ArrayConfig, ceil_log2, latencies
from .interfaces import act_layout, wgt_layout
from .output import credit_signature, sums_layout
from .pe import pe_arithmetic
from .walk import TileWalker, advance_plane, plane_walk

__all__ = ["OSSequencer", "WSSequencer", "sequencer"]


def sequencer(config: ArrayConfig):
    """The sequencer of ``config``'s dataflow."""
    return WSSequencer(config) if config.dataflow == "ws" else OSSequencer(config)


class _Sequencer(wiring.Component):
    """The ports both sequencers share.

    Members
    -------
    ctx : In(context_signature)
    act_read : In(act_read_signature).array(ports)
        The activation buffer's read ports (one, or ``rows`` output-stationary).
    act_blocks : In(unsigned)
        Blocks of activations loaded.
    block : Out(unsigned)
        Blocks the sequencer has finished with.
    wgt_read : In(channel_read_signature).array(cols)
    wgt_status : In(status_signature)
    par_status : In(status_signature)
        Only with an output stage that takes parameters.
    credits : In(credit_signature)
    sums : Out(stream.Signature(sums_layout, always_ready=True))
        Finished rows of column sums, in result order.
    issued_all : Out(1)
        Every tile of the GEMM has entered the array.
    """

    def __init__(self, config: ArrayConfig, act_ports):
        self._config = config
        self._pe = pe_arithmetic(config)
        self._latency = latencies(config)
        ports = {
            "ctx": In(context_signature(config)),
            "act_read": In(act_read_signature(config)).array(act_ports),
            "act_blocks": In(range(max(max_blocks(config), 1) + 1)),
            "block": Out(range(max_blocks(config) + 1)),
            "wgt_read": In(channel_read_signature(config, wgt_layout(config),
                                                  per_channel_words=True)).array(config.cols),
            "wgt_status": In(status_signature(config)),
        }
        if config.has_params:
            ports["par_status"] = In(status_signature(config))
        ports["credits"] = In(credit_signature(config))
        ports["sums"] = Out(stream.Signature(sums_layout(config), always_ready=True))
        ports["issued_all"] = Out(1)
        super().__init__(ports)

    def _walker(self, m, name, *, chunks):
        walk = m.submodules[name] = TileWalker(self._config, chunks=chunks, name=name)
        wiring.connect(m, wiring.flipped(self.ctx), walk.ctx)
        return walk

    def _weights_ready(self, nt):
        """Column tile ``nt`` of weights is loaded."""
        return (self.wgt_status.tiles > nt) | self.wgt_status.all_in

    def _params_ready(self, nt):
        """Column tile ``nt`` of parameters is loaded (always, without parameters)."""
        if not self._config.has_params:
            return Const(1, 1)
        return (self.par_status.tiles > nt) | self.par_status.all_in

    def _credit_left(self, entries):
        """``entries`` more results can be promised FIFO entries."""
        return self.credits.reserved + entries <= self._config.fifo_depth - 1

    def _negative(self, i, j):
        """Whether plane pair ``(i, j)`` weighs negative: exactly one signed top plane."""
        cfg, cmd = self._config, self.ctx.cmd
        a_top = (i + 1 == cmd.a_planes) if cfg.a_signed else Const(0, 1)
        w_top = (j + 1 == cmd.w_planes) if cfg.w_signed else Const(0, 1)
        return a_top ^ w_top

    def _word_mask(self, word):
        return word_mask(self._config, self.ctx, word)

    def _zero_point(self):
        cmd = self.ctx.cmd
        return cmd.a_zero_point if "a_zero_point" in cmd.shape().members else None


class WSSequencer(_Sequencer):
    """Weight-stationary: a weight-tile loader and a row issuer, one tile apart.

    Tiles are walked block by block, then column tile, then K chunk (then, bit-serial,
    weight bit plane ``j``). The loader puts the next tile's weights into the PEs' idle
    bank while the issuer streams the rows of the current tile (bit-serial: once per
    activation bit plane ``i``); each row carries its bank along, so tiles follow back to
    back. A bank may be reloaded ``rows + cols - 2`` cycles after the last row of the
    tile that used it was issued (when that row has left the last PE). A row's column
    sums are accumulated over K chunks (and plane pairs) in an accumulator memory.
    """

    def __init__(self, config: ArrayConfig):
        super().__init__(config, 1)

    def elaborate(self, platform):
        m = Module()
        cfg, start = self._config, self.ctx.start
        array = m.submodules.array = WSArray(cfg)
        ahead = cleared_counter(m, start, "tiles_ahead", 2)   # tiles loaded, not issued
        drain = [cleared_counter(m, start, f"bank{b}_drain", self._latency.ws_drain)
                 for b in range(2)]
        wt_go = self._weight_loader(m, array, ahead, drain)
        issue = self._row_issuer(m, ahead)
        m.d.sync += ahead.eq(ahead + wt_go - issue.tile_end)
        for b in range(2):
            with m.If(issue.tile_end & (issue.bank == b)):
                m.d.sync += drain[b].eq(self._latency.ws_drain)
            with m.Elif(drain[b] != 0):
                m.d.sync += drain[b].eq(drain[b] - 1)
        tag = self._array_input(m, array, issue)
        self._accumulate(m, array, tag)
        return m

    def _weight_loader(self, m, array, ahead, drain):
        """Load the next tile's weights into the idle bank; returns its ``go``."""
        cfg, ctx = self._config, self.ctx
        kt_bits, nt_bits = address_bits(cfg.k_chunks), address_bits(cfg.n_tiles)
        walk = self._walker(m, "load_walk", chunks=True)
        j, j_last = plane_walk(m, cfg, ctx, "wt_plane", "w_planes", cfg.w_bits)
        bank = cleared_flag(m, ctx.start, "wt_bank")
        go = Signal(name="wt_go")
        m.d.comb += go.eq(ctx.busy & ~walk.done & self._weights_ready(walk.nt) & (ahead <= 1)
                          & equals(Mux(bank, drain[1], drain[0]), 0))
        for port in self.wgt_read:
            m.d.comb += port.addr.eq(Cat(walk.kt[:kt_bits], walk.nt[:nt_bits]))
        with m.If(go):
            m.d.sync += bank.eq(~bank)
            advance_plane(m, cfg, j, j_last)
        m.d.comb += walk.advance.eq(go & j_last)
        # The loaded word arrives one cycle later and is written into the PEs then.
        load, load_bank = Signal(), Signal()
        load_koff = Signal.like(walk.koff)
        m.d.sync += [load.eq(go), load_bank.eq(bank), load_koff.eq(walk.koff)]
        load_j = None
        if cfg.mode.has_planes:
            load_j = Signal.like(j)
            m.d.sync += load_j.eq(j)
        m.d.comb += [array.load.eq(load), array.load_bank.eq(load_bank)]
        masks = [Signal(cfg.pack, name=f"load_mask{r}") for r in range(cfg.rows)]
        m.d.comb += [masks[r].eq(self._word_mask(load_koff + r)) for r in range(cfg.rows)]
        for c in range(cfg.cols):
            word = wgt_layout(cfg)(self.wgt_read[c].data)
            for r in range(cfg.rows):
                # Words (elements) past K get weight 0, so they add nothing.
                m.d.comb += array.load_data[c][r].eq(self._pe.ws_weight(word[r], load_j,
                                                                         masks[r]))
        return go

    def _row_issuer(self, m, ahead):
        """Issue the loaded tile's rows, one per cycle; a row's last pass reserves its result."""
        cfg, ctx = self._config, self.ctx
        cmd, start = ctx.cmd, ctx.start
        kt_bits, mb_bits = address_bits(cfg.k_chunks), address_bits(cfg.block)
        walk = self._walker(m, "issue_walk", chunks=True)
        j, j_last = plane_walk(m, cfg, ctx, "ri_wplane", "w_planes", cfg.w_bits)
        i, i_last = plane_walk(m, cfg, ctx, "ri_aplane", "a_planes", cfg.a_bits)
        row = cleared_counter(m, start, "ri_row", cfg.block)
        bank = cleared_flag(m, start, "ri_bank")
        block_rows = Signal(range(cfg.block + 1))
        m.d.comb += block_rows.eq(Mux(cmd.m - walk.mbase < cfg.block, cmd.m - walk.mbase,
                                      cfg.block))
        # The last contribution to a row's results: its results get a FIFO entry.
        final = Signal(name="ri_final")
        m.d.comb += final.eq(walk.klast & j_last & i_last)
        go = Signal(name="ri_go")
        m.d.comb += go.eq(
            ctx.busy & ~walk.done & (ahead >= 1) & (self.act_blocks > walk.block)
            & (~final | (self._credit_left(1) & self._params_ready(walk.nt))))
        m.d.comb += self.credits.reserve.eq(go & final)
        m.d.comb += self.act_read[0].addr.eq(Cat(walk.kt[:kt_bits], row[:mb_bits],
                                                 walk.block[0]))
        row_end = row == block_rows - 1
        tile_end = go & row_end & i_last
        with m.If(go):
            with m.If(row_end):
                m.d.sync += row.eq(0)
                advance_plane(m, cfg, i, i_last)
            with m.Else():
                m.d.sync += row.eq(row + 1)
        with m.If(tile_end):
            m.d.sync += bank.eq(~bank)
            advance_plane(m, cfg, j, j_last)
        m.d.comb += [walk.advance.eq(tile_end & j_last), self.block.eq(walk.block),
                     self.issued_all.eq(walk.done)]
        return SimpleNamespace(go=go, final=final, tile_end=tile_end, bank=bank, row=row,
                               i=i, j=j, walk=walk)

    def _array_input(self, m, array, issue):
        """The issued row's activations enter the array one cycle later (the buffer read).

        Returns the row's tag (valid, first, last, row, column tile; bit-serial: the
        pair's shift and sign), registered with the array input.
        """
        cfg, walk = self._config, issue.walk
        fields = {"valid": 1, "first": 1, "last": 1,
                  "row": unsigned(max(address_bits(cfg.block), 1)),
                  "nt": unsigned(max(address_bits(cfg.n_tiles), 1))}
        if cfg.mode.has_planes:
            fields["shift"] = unsigned(max(1, ceil_log2(cfg.a_bits + cfg.w_bits - 1)))
            fields["neg"] = 1
        issued = Signal(data.StructLayout(fields))
        first = equals(walk.kt, 0)
        if cfg.mode.has_planes:
            first &= equals(issue.j, 0) & equals(issue.i, 0)
            m.d.sync += [issued.shift.eq(issue.i + issue.j),
                         issued.neg.eq(self._negative(issue.i, issue.j))]
        m.d.sync += [issued.valid.eq(issue.go), issued.first.eq(first),
                     issued.last.eq(issue.final), issued.row.eq(issue.row),
                     issued.nt.eq(walk.nt)]
        bank = Signal()
        m.d.sync += bank.eq(issue.bank)
        a_word = act_layout(cfg)(self.act_read[0].data)
        values = self._pe.ws_activations(m, a_word, walk.koff, issue.i, self._word_mask,
                                         self._zero_point())
        for r in range(cfg.rows):
            m.d.comb += array.a[r].eq(values[r])
        m.d.comb += array.bank.eq(bank)
        return issued

    def _accumulate(self, m, array, issued):
        """Add each row's column sums over K chunks (and plane pairs); the sums of a row
        leave the array ``rows + cols - 1`` cycles after it entered."""
        cfg = self._config
        mb_bits = address_bits(cfg.block)
        before = delay(m, issued, self._latency.ws_tag, "tag")  # one cycle before the psum
        at_psum = Signal.like(issued)
        m.d.sync += at_psum.eq(before)
        acc_mem = m.submodules.acc_mem = Memory(shape=unsigned(cfg.cols * cfg.acc_bits),
                                                depth=1 << max(mb_bits, 1), init=[])
        acc_wp = acc_mem.write_port()
        acc_rp = acc_mem.read_port(transparent_for=(acc_wp,))
        m.d.comb += acc_rp.addr.eq(before.row[:mb_bits])
        acc_shape = data.ArrayLayout(signed(cfg.acc_bits), cfg.cols)
        previous = acc_shape(acc_rp.data)
        total = Signal(acc_shape)
        for c in range(cfg.cols):
            base = Mux(at_psum.first, 0, previous[c])
            psum = array.psum[c]
            m.d.comb += total[c].eq(self._pe.ws_accumulate(base, psum, at_psum)[:cfg.acc_bits])
        m.d.comb += [acc_wp.addr.eq(at_psum.row[:mb_bits]), acc_wp.data.eq(total.as_value()),
                     acc_wp.en.eq(at_psum.valid & ~at_psum.last)]
        m.d.comb += [self.sums.valid.eq(at_psum.valid & at_psum.last),
                     self.sums.payload.acc.eq(total), self.sums.payload.nt.eq(at_psum.nt)]


class OSSequencer(_Sequencer):
    """Output-stationary: tiles of ``rows`` rows x ``cols`` channels, one step per PE word.

    A tile starts once its block of A, its column tile of W (and parameters) are in, its
    ``rows`` results have FIFO entries, and its last step will come at least ``rows``
    cycles after the previous tile's; then its steps issue back to back: ``ceil(K /
    pack)`` words, and in the bit-serial mode that many for each pair of bit planes
    ``(i, j)``, pairs in order of decreasing ``i + j`` (Horner's rule, see
    :class:`hw.array.BitSerialPE`). Row ``j`` of a tile leaves the array ``rows + cols +
    j`` cycles after the tile's last step.
    """

    def __init__(self, config: ArrayConfig):
        super().__init__(config, config.rows)

    def elaborate(self, platform):
        m = Module()
        array = m.submodules.array = OSArray(self._config)
        tile = self._tile_stepper(m)
        self._array_input(m, array, tile)
        self._results(m, array, tile)
        return m

    def _tile_stepper(self, m):
        """When a tile starts, and its steps (word, K chunk, element of the beat)."""
        cfg, ctx = self._config, self.ctx
        R, cmd, start = cfg.rows, ctx.cmd, ctx.start
        kt_bits, nt_bits = address_bits(cfg.k_chunks), address_bits(cfg.n_tiles)
        walk = self._walker(m, "tile_walk", chunks=False)
        step = cleared_counter(m, start, "os_step", cfg.k_words)
        kt = cleared_counter(m, start, "os_kt", cfg.k_chunks)
        elem = cleared_counter(m, start, "os_elem", R - 1)
        in_tile = cleared_flag(m, start, "os_in_tile")
        since = Signal(range(R + 1), init=R)         # cycles since the last tile's last step
        with m.If(start):
            m.d.sync += since.eq(R)
        tile_rows = Signal(range(R + 1))
        m.d.comb += tile_rows.eq(Mux(cmd.m - walk.mbase < R, cmd.m - walk.mbase, R))
        word_last = Signal()
        m.d.comb += word_last.eq(step + 1 == ctx.k_words)
        pair = None
        if cfg.mode.has_planes:
            pair = self._plane_pairs(m, in_tile)
            pass_last = pair.last
            tile_steps = Signal(range(cfg.k_words * cfg.a_bits * cfg.w_bits + 1))
            m.d.comb += tile_steps.eq(ctx.k_words * cmd.a_planes * cmd.w_planes)
        else:
            pass_last, tile_steps = Const(1, 1), ctx.k_words
        can_start = (ctx.busy & ~walk.done & ~in_tile & (self.act_blocks > walk.block)
                     & self._weights_ready(walk.nt) & self._params_ready(walk.nt)
                     & self._credit_left(tile_rows) & (since + tile_steps >= R + 1))
        go = Signal(name="os_go")
        m.d.comb += go.eq(in_tile | can_start)
        m.d.comb += self.credits.reserve.eq(Mux(can_start, tile_rows, 0))
        for port in self.act_read:
            m.d.comb += port.addr.eq(Cat(kt[:kt_bits], walk.block[0]))
        for port in self.wgt_read:
            m.d.comb += port.addr.eq(Cat(kt[:kt_bits], walk.nt[:nt_bits]))
        with m.If(go):
            with m.If(word_last):
                m.d.sync += [step.eq(0), kt.eq(0), elem.eq(0)]
                with m.If(pass_last):
                    m.d.sync += in_tile.eq(0)
                if cfg.mode.has_planes:
                    with m.Else():
                        m.d.sync += in_tile.eq(1)
            with m.Else():
                m.d.sync += [in_tile.eq(1), step.eq(step + 1)]
                with m.If(equals(elem, R - 1)):
                    m.d.sync += [elem.eq(0), kt.eq(kt + 1)]
                with m.Else():
                    m.d.sync += elem.eq(elem + 1)
        if pair is not None:
            self._advance_pair(m, pair, go, word_last)
        last = word_last & pass_last
        with m.If(go & last):
            m.d.sync += since.eq(1)
        with m.Elif(since < R):
            m.d.sync += since.eq(since + 1)
        m.d.comb += [walk.advance.eq(go & last), self.block.eq(walk.block),
                     self.issued_all.eq(walk.done)]
        return SimpleNamespace(go=go, first=~in_tile, last=last, step=step, elem=elem,
                               pair=pair, rows=tile_rows, nt=walk.nt)

    def _plane_pairs(self, m, in_tile):
        """The bit-plane pair ``(i, j)`` of the current pass.

        Pairs go in order of decreasing ``s = i + j`` and, within one ``s``, increasing
        ``i``: from ``(a_planes - 1, w_planes - 1)`` to ``(0, 0)``. A tile's first pass is
        the first pair (the registers only hold the pair while the tile runs). ``dbl``:
        this pass has a smaller ``s`` than the one before it (so its first step doubles
        the sum).
        """
        cfg, cmd = self._config, self.ctx.cmd
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
        return SimpleNamespace(i=i, j=j, s=s, dbl=in_tile & dbl_reg, last=equals(s, 0),
                               regs=(i_reg, j_reg, s_reg, dbl_reg))

    def _advance_pair(self, m, pair, go, word_last):
        """Hold the pair during a pass; at its last word, move to the next pair."""
        cmd = self.ctx.cmd
        i_reg, j_reg, s_reg, dbl_reg = pair.regs
        i, j, s = pair.i, pair.j, pair.s
        with m.If(go):
            with m.If(~word_last):
                m.d.sync += [i_reg.eq(i), j_reg.eq(j), s_reg.eq(s), dbl_reg.eq(pair.dbl)]
            with m.Elif((i + 1 < cmd.a_planes) & ~equals(j, 0)):
                m.d.sync += [i_reg.eq(i + 1), j_reg.eq(j - 1), dbl_reg.eq(0), s_reg.eq(s)]
            with m.Else():
                # Next s = s - 1: its first pair has the smallest i that keeps j in range.
                m.d.sync += [s_reg.eq(s - 1), dbl_reg.eq(1)]
                with m.If(s >= cmd.w_planes):
                    m.d.sync += [i_reg.eq(s - cmd.w_planes), j_reg.eq(cmd.w_planes - 1)]
                with m.Else():
                    m.d.sync += [i_reg.eq(0), j_reg.eq(s - 1)]

    def _array_input(self, m, array, tile):
        """A step's operands enter the array one cycle after it issues (the buffer reads)."""
        cfg = self._config
        flag_fields = {"valid": 1, "first": 1, "last": 1}
        if cfg.mode.has_planes:
            flag_fields.update(dbl=1, neg=1)
        flags = Signal(data.StructLayout(flag_fields))
        sel = Signal.like(tile.elem)
        m.d.sync += [flags.valid.eq(tile.go), flags.first.eq(tile.first),
                     flags.last.eq(tile.last), sel.eq(tile.elem)]
        mask = sel_i = sel_j = None
        if self._pe.masks_operands:
            mask = Signal(cfg.pack, name="os_mask")
            m.d.sync += mask.eq(self._word_mask(tile.step))
        if tile.pair is not None:
            pair = tile.pair
            sel_i, sel_j = Signal.like(pair.i), Signal.like(pair.j)
            m.d.sync += [sel_i.eq(pair.i), sel_j.eq(pair.j),
                         flags.dbl.eq(pair.dbl & equals(tile.step, 0)),
                         flags.neg.eq(self._negative(pair.i, pair.j))]
        zero_point = self._zero_point()
        for j in range(cfg.rows):
            lane = select(act_layout(cfg)(self.act_read[j].data), sel)
            m.d.comb += array.a[j].eq(self._pe.os_activation(lane, sel_i, mask, zero_point))
        for c in range(cfg.cols):
            lane = select(wgt_layout(cfg)(self.wgt_read[c].data), sel)
            m.d.comb += array.w[c].eq(self._pe.os_weight(lane, sel_j, mask))
        for name in flag_fields:
            m.d.comb += getattr(array, name).eq(getattr(flags, name))

    def _results(self, m, array, tile):
        """Row ``j`` of a tile is out ``rows + cols + j`` cycles after its last step."""
        cfg = self._config
        R = cfg.rows
        token = Signal(data.StructLayout({
            "valid": 1, "rows": unsigned(ceil_log2(R + 1)),
            "nt": unsigned(max(address_bits(cfg.n_tiles), 1))}))
        m.d.sync += [token.valid.eq(tile.go & tile.last), token.rows.eq(tile.rows),
                     token.nt.eq(tile.nt)]
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
        m.d.comb += [self.sums.valid.eq(valid), self.sums.payload.acc.eq(array.result),
                     self.sums.payload.nt.eq(out_nt)]
