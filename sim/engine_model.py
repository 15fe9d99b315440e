"""Cycle-exact model of the generated GEMM engine's schedule (numba, no Amaranth).

This is a second, independent description of the engine's timing: it knows the control
rules of ``hw/engine.py`` (what each loader, the tile sequencer and the output FIFO do
in a cycle) and the latencies of the datapath, and nothing of its arithmetic. The cocotb
regression checks it against the RTL, GEMM by GEMM, to the cycle.

Cycle conventions (the same as the testbenches'):

* Cycle 0 is the first cycle after reset. A GEMM's count runs from the cycle its command
  is taken (``first``) to the cycle its last result is taken (``last``), inclusive:
  ``cycles = last - first + 1``.
* Input stream ``s`` in cycle ``t``: a driver that holds no beat and has beats left
  presents the next one if ``valid[s][t]``; a presented beat stays until it is taken
  (valid and ready in the same cycle). The result stream is ready in cycle ``t`` iff
  ``ready[t]``. Beyond the end of a pattern, it is taken as all true.

The schedule, as the RTL implements it (``rows`` = R, ``cols`` = C, P = ``pack``
elements per PE word, K chunks of R words, i.e. beats of R x P elements):

* A GEMM's K counts elements (bits in the xnor mode); the schedule sees ``Kw = ceil(K /
  P)`` PE words, and a bit-serial GEMM also its bit planes ``A`` (activations) and ``W``
  (weights); the other modes have ``A = W = 1``. Nothing else depends on the PE mode.
* The command is taken when the engine is idle; from the next cycle the loaders accept
  one beat per stream per cycle. Weights (all N channels) and per-channel parameters go
  straight into buffers; activations fill a two-block buffer and wait while both blocks
  are still in use. A column tile of weights (parameters) is usable the cycle after its
  last channel's last beat was taken; a block of activations, the cycle after its last
  beat.
* Weight-stationary: tiles in (block, column tile, K chunk, weight plane) order. A tile's
  weights are loaded (one cycle) once its column tile is in, at most one tile ahead of
  the tile being issued, and ``max(R + C - 3, 0)`` cycles after the last row of the tile
  that used the same PE bank two tiles earlier was issued (so that row has left the
  array). The tile's rows issue one per cycle from the cycle after its load, once its
  activation block is in, once per activation plane (``A`` passes over the block's
  rows); the rows of the last pass of the last tile of a column tile (last K chunk, last
  weight plane) also need their parameters and an output credit. Each such row is
  written into the output FIFO ``R + C + 1`` cycles after its issue, plus the output
  stage's latency (``hw.config.latencies``: requantizer 5, threshold compares 1).
* Output-stationary: tiles in (block of R rows, column tile) order, each ``S = Kw x A x
  W`` steps back to back (every word once per pair of planes). A tile starts when the
  previous one's steps are done, its block, weight tile and parameters are in, it has
  output credits for its rows, and its last step will come at least R cycles after the
  previous tile's (``start >= previous start + max(S, R)``). Row ``j`` of a tile is
  written into the FIFO ``R + C + 2 + j`` cycles after the tile's last step, plus the
  output stage's latency.
* Output FIFO: Amaranth's ``SyncFIFOBuffered`` (a word written in cycle ``w`` can be
  taken from cycle ``w + 2``); credits keep at most ``depth - 1`` results promised.
* The engine goes idle the cycle after the last result is taken, and takes the next
  command one cycle later.
"""

import numpy as np
from numba import njit

from hw.config import TIMING_VERSION, ArrayConfig, Latencies, latencies

__all__ = ["MODEL_VERSION", "Latencies", "latencies", "run_patterns", "run_command_patterns",
           "PatternTooShort", "gemm_cycles",
           "gemm_schedule", "ScheduleSummary", "bandwidth_limited"]

#: The engine timing version this model implements (``hw.config.TIMING_VERSION``).
MODEL_VERSION = 2
assert MODEL_VERSION == TIMING_VERSION, "the cycle model and the engine's schedule disagree"

_JIT = {"cache": True, "nogil": True}

_NO_OFFSETS = np.zeros(0, np.int64)

# Indices of the input streams in pattern arrays.
CMD, ACT, WGT, PAR = 0, 1, 2, 3
STREAMS = ("cmd", "act", "wgt", "par")


def _check_config(config):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")
    return config


def _check_shapes(config, shapes):
    """GEMMs as an int64 array of ``(M, K, N, a_planes, w_planes)`` rows.

    ``shapes`` holds ``(M, K, N)`` triples, or in the bit-serial mode also
    ``(M, K, N, a_planes, w_planes)`` (triples use all ``a_bits`` and ``w_bits`` planes).
    Outside the bit-serial mode the planes are 1.
    """
    arr = np.asarray(shapes)
    if arr.ndim == 1:
        arr = arr[None, :]
    widths = (3, 5) if config.mode.has_planes else (3,)
    if arr.ndim != 2 or arr.shape[1] not in widths or not np.issubdtype(arr.dtype, np.integer):
        what = ("(M, K, N) or (M, K, N, a_planes, w_planes)" if len(widths) == 2
                else "(M, K, N)")
        raise ValueError(f"shapes must be a list of {what} integer tuples, not {shapes!r}")
    if arr.size and arr[:, :3].min() < 1:
        bad = arr[(arr[:, :3] < 1).any(axis=1)][0]
        raise ValueError(f"GEMM sizes must be positive, not (M, K, N) = "
                         f"{tuple(int(x) for x in bad[:3])}")
    arr = arr.astype(np.int64)
    if arr.shape[1] == 3:
        planes = config.mode.schedule_planes(config, (config.a_bits, config.w_bits))
        arr = np.concatenate([arr, np.tile(np.array(planes, np.int64), (len(arr), 1))], axis=1)
    for col, name, top in ((3, "a_planes", config.a_bits), (4, "w_planes", config.w_bits)):
        bad = (arr[:, col] < 1) | (arr[:, col] > top)
        if bad.any():
            raise ValueError(f"{name} must be in 1..{top}, not {int(arr[bad][0, col])}")
    return arr


def _work(config, shapes):
    """The kernels' view of the GEMMs: K in PE words (``ceil(K / pack)``)."""
    work = shapes.copy()
    work[:, 1] = -(-work[:, 1] // config.pack)
    return np.ascontiguousarray(work)


def _kernel_args(config):
    lat = latencies(config)
    return (config.rows, config.cols, config.block, config.fifo_depth,
            config.dataflow == "ws", config.has_params, lat.ws_row, lat.os_row0,
            lat.ws_drain)


# ---------------------------------------------------------------------------------------
# Per-cycle simulation
# ---------------------------------------------------------------------------------------

@njit(**_JIT)
def _simulate(R, C, block, depth, ws, requant, lat_ws, lat_os, d0, shapes, valid, ready,
              bandwidth, max_cycles, rel_off, rel_len):
    """Cycle-by-cycle replay of the engine's control. Returns (first, last, cycles run).

    Long (why): one numba kernel keeps every unit's state in scalar locals so that the
    per-cycle loop compiles to plain machine code; a state record with one step function
    per unit (mirroring the engine's components) is the open part of issue 11.

    ``shapes`` rows are ``(M, K words, N, a_planes, w_planes)``; ``requant`` is whether
    the engine has a per-channel parameter stream.

    ``valid`` is (4, L) and ``ready`` (L,); cycles past L count as all true. When
    ``bandwidth`` > 0, the valid patterns are replaced by a host that can move at most
    ``bandwidth`` operand beats per cycle on average (token bucket, weights first).

    Command-relative patterns: when ``rel_off`` is not empty, GEMM ``g``'s patterns are
    ``valid[:, rel_off[g] + i]`` and ``ready[rel_off[g] + i]`` for ``i = t - first[g]``
    (0 in the cycle its command is taken) until its last result is taken; between
    commands the operand streams are not valid and the result stream is ready; the
    command stream is always valid. Returns cycles run ``-2 - g`` if GEMM ``g`` outlasts
    its ``rel_len[g]`` cycles of pattern.
    """
    g_count = shapes.shape[0]
    plen = ready.shape[0]
    totals = np.zeros(4, np.int64)
    out_beats = np.zeros(g_count, np.int64)
    for g in range(g_count):
        m, k, n = shapes[g, 0], shapes[g, 1], shapes[g, 2]
        kt = (k + R - 1) // R
        totals[CMD] += 1
        totals[ACT] += m * kt
        totals[WGT] += n * kt
        if requant:
            totals[PAR] += n
        out_beats[g] = m * ((n + C - 1) // C)
    pos = np.zeros(4, np.int64)
    holding = np.zeros(4, np.bool_)
    first = np.full(g_count, -1, np.int64)
    last = np.full(g_count, -1, np.int64)
    ring_size = 1
    while ring_size < lat_os + R + lat_ws + 8:
        ring_size *= 2
    ring = np.zeros(ring_size, np.int64)
    tokens = 0.0
    rel_mode = rel_off.shape[0] > 0

    busy = False
    g_cur = -1
    M = K = N = 0
    A_P = W_P = 1
    S = 0
    ld_row = ld_mloc = ld_blocks = ld_koff = 0
    wl_n = wl_col = wl_tiles = wl_koff = 0
    pl_n = pl_col = pl_tiles = 0
    reserved = 0
    fifo_inner = 0
    fifo_out = False
    g_out = 0
    got = 0
    # weight-stationary sequencer
    wt_mbase = wt_nt = wt_n0 = wt_koff = 0
    wt_bank = 0
    wt_j = 0
    wt_done = False
    ahead = 0
    drain0 = drain1 = 0
    ri_block = ri_mbase = ri_nt = ri_n0 = ri_koff = ri_row = 0
    ri_bank = 0
    ri_j = ri_i = 0
    ri_done = False
    # output-stationary sequencer
    mt = os_mbase = os_nt = os_n0 = step = 0
    in_tile = False
    os_done = False
    since = R

    t = 0
    while t < max_cycles:
        if g_out >= g_count:
            return first, last, t
        # ---- drivers present beats ----
        if bandwidth > 0.0:
            tokens = min(tokens + bandwidth, max(bandwidth, 1.0))
            if not holding[CMD] and pos[CMD] < totals[CMD]:
                holding[CMD] = True
            for s in (WGT, ACT, PAR):
                if not holding[s] and pos[s] < totals[s] and tokens >= 1.0:
                    holding[s] = True
                    tokens -= 1.0
            rd = t >= plen or ready[t]
        elif rel_mode:
            in_cmd = g_cur >= 0 and last[g_cur] < 0
            p = 0
            rd = True
            if in_cmd:
                i = t - first[g_cur]
                if i >= rel_len[g_cur]:
                    return first, last, -2 - g_cur
                p = rel_off[g_cur] + i
                rd = ready[p]
            for s in range(4):
                if not holding[s] and pos[s] < totals[s] and (
                        s == CMD or (in_cmd and valid[s, p])):
                    holding[s] = True
        else:
            for s in range(4):
                if not holding[s] and pos[s] < totals[s] and (t >= plen or valid[s, t]):
                    holding[s] = True
            rd = t >= plen or ready[t]

        # ---- combinational decisions of this cycle ----
        seq_block = ri_block if ws else mt
        act_rdy = busy and ld_row < M and ld_blocks < seq_block + 2
        wgt_rdy = busy and wl_n < N
        par_rdy = busy and requant and pl_n < N
        take_cmd = holding[CMD] and not busy
        take_act = holding[ACT] and act_rdy
        take_wgt = holding[WGT] and wgt_rdy
        take_par = holding[PAR] and par_rdy
        res_take = fifo_out and rd
        write = ring[t % ring_size]
        ring[t % ring_size] = 0

        reserve = 0
        if ws:
            issued_all = ri_done
            w_ok = wl_tiles > wt_nt or wl_n == N
            drain_sel = drain1 if wt_bank else drain0
            wt_go = busy and not wt_done and w_ok and ahead <= 1 and drain_sel == 0
            wt_klast = wt_koff + R >= K
            ri_klast = ri_koff + R >= K
            rows_blk = min(block, M - ri_mbase)
            p_ok = (not requant) or pl_tiles > ri_nt or pl_n == N
            ri_final = ri_klast and ri_j == W_P - 1 and ri_i == A_P - 1
            ri_go = (busy and not ri_done and ahead >= 1 and ld_blocks > ri_block
                     and ((not ri_final) or (reserved < depth - 1 and p_ok)))
            row_end = ri_row == rows_blk - 1
            tile_end = ri_go and row_end and ri_i == A_P - 1
            ended_bank = ri_bank
            if ri_go and ri_final:
                reserve = 1
                ring[(t + lat_ws) % ring_size] += 1
            if wt_go and wt_j < W_P - 1:
                wt_bank ^= 1
                wt_j += 1
            elif wt_go:
                wt_bank ^= 1
                wt_j = 0
                if wt_klast:
                    wt_koff = 0
                    if wt_n0 + C >= N:
                        wt_nt = 0
                        wt_n0 = 0
                        if wt_mbase + block >= M:
                            wt_done = True
                        wt_mbase += block
                    else:
                        wt_nt += 1
                        wt_n0 += C
                else:
                    wt_koff += R
            if ri_go and row_end and ri_i < A_P - 1:
                ri_row = 0
                ri_i += 1
            elif ri_go and tile_end and ri_j < W_P - 1:
                ri_row = 0
                ri_i = 0
                ri_bank ^= 1
                ri_j += 1
            elif ri_go:
                if tile_end:
                    ri_row = 0
                    ri_i = 0
                    ri_j = 0
                    ri_bank ^= 1
                    if ri_klast:
                        ri_koff = 0
                        if ri_n0 + C >= N:
                            ri_nt = 0
                            ri_n0 = 0
                            ri_block += 1
                            if ri_mbase + block >= M:
                                ri_done = True
                            ri_mbase += block
                        else:
                            ri_nt += 1
                            ri_n0 += C
                    else:
                        ri_koff += R
                else:
                    ri_row += 1
            ahead += (1 if wt_go else 0) - (1 if tile_end else 0)
            if tile_end and ended_bank == 0:
                drain0 = d0
            elif drain0 != 0:
                drain0 -= 1
            if tile_end and ended_bank == 1:
                drain1 = d0
            elif drain1 != 0:
                drain1 -= 1
        else:
            issued_all = os_done
            tile_rows = min(R, M - os_mbase)
            is_last = step == S - 1
            w_ok = wl_tiles > os_nt or wl_n == N
            p_ok = (not requant) or pl_tiles > os_nt or pl_n == N
            can_start = (busy and not os_done and not in_tile and ld_blocks > mt and w_ok
                         and p_ok and reserved + tile_rows <= depth - 1
                         and since + S >= R + 1)
            go = in_tile or can_start
            if can_start:
                reserve = tile_rows
            if go and is_last:
                for j in range(tile_rows):
                    ring[(t + lat_os + j) % ring_size] += 1
            if go:
                if is_last:
                    in_tile = False
                    step = 0
                    if os_n0 + C >= N:
                        os_nt = 0
                        os_n0 = 0
                        mt += 1
                        if os_mbase + R >= M:
                            os_done = True
                        os_mbase += R
                    else:
                        os_nt += 1
                        os_n0 += C
                else:
                    in_tile = True
                    step += 1
            if go and is_last:
                since = 1
            elif since < R:
                since += 1

        # ---- output FIFO (SyncFIFOBuffered) ----
        if write > 1:
            raise RuntimeError("two FIFO writes in one cycle")
        inner_read = fifo_inner != 0 and ((not fifo_out) or rd)
        if write and fifo_inner >= depth - 1:
            raise RuntimeError("output FIFO overflow: the credit rule was broken")
        fifo_inner += write - (1 if inner_read else 0)
        if inner_read:
            fifo_out = True
        elif rd:
            fifo_out = False
        if res_take:
            got += 1
            if got == out_beats[g_out]:
                last[g_out] = t
                g_out += 1
                got = 0
        idle_now = busy and issued_all and reserved == 0
        reserved += reserve - (1 if res_take else 0)

        # ---- loaders ----
        if take_act:
            if ld_koff + R >= K:
                ld_koff = 0
                if ld_mloc == block - 1 or ld_row + 1 == M:
                    ld_mloc = 0
                    ld_blocks += 1
                else:
                    ld_mloc += 1
                ld_row += 1
            else:
                ld_koff += R
        if take_wgt:
            if wl_koff + R >= K:
                wl_koff = 0
                wl_n += 1
                if wl_col == C - 1:
                    wl_col = 0
                    wl_tiles += 1
                else:
                    wl_col += 1
            else:
                wl_koff += R
        if take_par:
            pl_n += 1
            if pl_col == C - 1:
                pl_col = 0
                pl_tiles += 1
            else:
                pl_col += 1

        # ---- command ----
        if take_cmd:
            g_cur += 1
            first[g_cur] = t
            M, K, N = shapes[g_cur, 0], shapes[g_cur, 1], shapes[g_cur, 2]
            A_P, W_P = shapes[g_cur, 3], shapes[g_cur, 4]
            S = K * A_P * W_P
            busy = True
            ld_row = ld_mloc = ld_blocks = ld_koff = 0
            wl_n = wl_col = wl_tiles = wl_koff = 0
            pl_n = pl_col = pl_tiles = 0
            wt_mbase = wt_nt = wt_n0 = wt_koff = 0
            wt_bank = 0
            wt_j = 0
            wt_done = False
            ri_i = ri_j = 0
            ri_block = ri_mbase = ri_nt = ri_n0 = ri_koff = ri_row = 0
            ri_bank = 0
            ri_done = False
            mt = os_mbase = os_nt = os_n0 = step = 0
            in_tile = False
            os_done = False
        elif idle_now:
            busy = False

        for s, taken in ((CMD, take_cmd), (ACT, take_act), (WGT, take_wgt), (PAR, take_par)):
            if taken:
                holding[s] = False
                pos[s] += 1
        t += 1
    return first, last, -1


def _pattern_arrays(valid, ready):
    length = len(ready)
    arr = np.ones((4, length), dtype=np.bool_)
    for i, name in enumerate(STREAMS):
        if name in valid and valid[name] is not None:
            v = np.asarray(valid[name], dtype=np.bool_)
            if v.shape != (length,):
                raise ValueError(f"valid pattern {name!r} must have the length of the ready "
                                 f"pattern ({length}), not shape {v.shape}")
            arr[i] = v
    unknown = set(valid) - set(STREAMS)
    if unknown:
        raise ValueError(f"valid patterns are for streams {', '.join(STREAMS)}, not "
                         f"{sorted(unknown)[0]!r}")
    return arr, np.ascontiguousarray(np.asarray(ready, dtype=np.bool_))


def _cycle_budget(config, work, pattern_length):
    """A cycle count no run can exceed (to turn a model bug into an error, not a hang)."""
    total = 0
    for m, k, n, ap, wp in work.tolist():
        chunks = -(-k // config.rows)
        total += (m * chunks * -(-n // config.cols) * max(k, config.rows) * ap * wp
                  + (m + n) * chunks + 4 * (config.rows + config.cols) + 64)
    return 2 * (total + pattern_length) + 10_000


def _records(config, first, last, shapes):
    if (last < 0).any():
        raise RuntimeError("the cycle model did not finish: a model bug")
    records = []
    for (m, k, n, ap, wp), f, l in zip(shapes.tolist(), first, last, strict=True):
        record = {"M": m, "K": k, "N": n, "first": int(f), "last": int(l),
                  "cycles": int(l - f + 1)}
        if config.mode.has_planes:
            record.update(a_planes=ap, w_planes=wp)
        records.append(record)
    return records


def run_patterns(config, shapes, valid, ready):
    """Cycles of back-to-back GEMMs under given per-cycle handshake patterns.

    Parameters
    ----------
    config : ArrayConfig
    shapes : sequence of (M, K, N)
        Bit-serial engines also take ``(M, K, N, a_planes, w_planes)``.
    valid : dict of bool arrays, keys among "cmd", "act", "wgt", "par"
        Per-cycle valid patterns of the input drivers (missing streams: always valid).
    ready : bool array
        Per-cycle ready pattern of the result stream; its length is the pattern length
        (every valid pattern must have it); cycles past the end count as all true.

    Returns
    -------
    list of dict
        Per GEMM: ``M``, ``K``, ``N``, ``first`` (cycle its command was taken), ``last``
        (cycle its last result was taken) and ``cycles = last - first + 1`` (bit-serial:
        also ``a_planes``, ``w_planes``).
    """
    config = _check_config(config)
    shapes = _check_shapes(config, shapes)
    work = _work(config, shapes)
    valid_arr, ready_arr = _pattern_arrays(valid, ready)
    first, last, _ = _simulate(*_kernel_args(config), work, valid_arr, ready_arr, 0.0,
                               _cycle_budget(config, work, len(ready_arr)), _NO_OFFSETS,
                               _NO_OFFSETS)
    return _records(config, first, last, shapes)


class PatternTooShort(RuntimeError):
    """A GEMM of :func:`run_command_patterns` outlasted its patterns (``index``: which)."""

    def __init__(self, index, length):
        super().__init__(f"GEMM {index} was still running after the {length} cycles of its "
                         f"patterns")
        self.index = index


def run_command_patterns(config, shapes, patterns, which):
    """Cycles of back-to-back GEMMs whose patterns start at their own commands.

    Like :func:`run_patterns`, except that each GEMM brings its patterns: GEMM ``g`` uses
    ``patterns[which[g]]``, a ``(valid, ready)`` pair whose index 0 is the cycle its
    command is taken, until its last result is taken; between two GEMMs the operand
    streams are not valid and the result stream is ready; the command stream is always
    valid. GEMMs of one shape can so share one pattern (an off-chip memory that serves
    every command the same way, :func:`sim.schedule.sequence_cycles`) whatever cycle
    they start in.

    Raises
    ------
    PatternTooShort
        If a GEMM is still running at the end of its patterns.
    """
    config = _check_config(config)
    shapes = _check_shapes(config, shapes)
    work = _work(config, shapes)
    which = np.asarray(which, dtype=np.int64)
    if which.shape != (len(work),) or (len(which) and not (
            0 <= which.min() and which.max() < len(patterns))):
        raise ValueError(f"which must give each of the {len(work)} GEMMs one of the "
                         f"{len(patterns)} patterns, not {which.tolist()!r}")
    arrays = [_pattern_arrays({"cmd": None, **valid}, ready) for valid, ready in patterns]
    lengths = np.array([len(r) for _, r in arrays], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    valid_arr = (np.concatenate([v for v, _ in arrays], axis=1) if arrays
                 else np.ones((4, 0), np.bool_))
    ready_arr = np.concatenate([r for _, r in arrays]) if arrays else np.ones(0, np.bool_)
    rel_len = lengths[which]
    first, last, code = _simulate(*_kernel_args(config), work, valid_arr, ready_arr, 0.0,
                                  _cycle_budget(config, work, int(rel_len.sum())),
                                  starts[which], rel_len)
    if code <= -2:
        raise PatternTooShort(-2 - int(code), int(rel_len[-2 - int(code)]))
    return _records(config, first, last, shapes)


def bandwidth_limited(config, shapes, words_per_cycle):
    """Cycles of back-to-back GEMMs when the host moves at most ``words_per_cycle`` beats.

    The host has one pool of input bandwidth for the operand streams (``act``, ``wgt``,
    ``par``): ``words_per_cycle`` beats per cycle on average (a token bucket that holds at
    most ``max(1, words_per_cycle)``), given to weights first, then activations, then
    parameters; each beat is presented only when a token pays for it. The result stream
    is always ready. Returns the records of :func:`run_patterns`.
    """
    config = _check_config(config)
    shapes = _check_shapes(config, shapes)
    work = _work(config, shapes)
    if not (isinstance(words_per_cycle, (int, float)) and words_per_cycle > 0
            and np.isfinite(words_per_cycle)):
        raise ValueError(f"words_per_cycle must be a positive number, not {words_per_cycle!r}")
    empty = np.zeros(0, dtype=np.bool_)
    budget = _cycle_budget(config, work, 0)
    budget = int(budget * max(1.0, 2.0 / words_per_cycle))
    first, last, _ = _simulate(*_kernel_args(config), work, np.ones((4, 0), np.bool_), empty,
                               float(words_per_cycle), budget, _NO_OFFSETS, _NO_OFFSETS)
    return _records(config, first, last, shapes)


# ---------------------------------------------------------------------------------------
# Stall-free schedule, one step per tile
# ---------------------------------------------------------------------------------------

@njit(**_JIT)
def _stall_free(R, C, block, depth, ws, requant, lat_ws, lat_os, d0, M, K, N, AP, WP, fifo):
    """Event times of one GEMM with every stream always valid and ready.

    Long (why): the tile-by-tile form of the same rules in one numba kernel, for speed.

    Follows tile by tile the same rules as :func:`_simulate` does cycle by cycle, with the
    command taken in cycle 0; ``K`` counts PE words and ``AP``, ``WP`` are the bit planes
    (1 outside the bit-serial mode). Returns ``(cycles, first_issue, last_issue,
    issue_cycles, ok)``; ``ok`` is False if output credits could have throttled the
    array, in which case the caller falls back to the cycle-by-cycle simulation.
    """
    kt_n = (K + R - 1) // R
    nt_n = (N + C - 1) // C
    rows_per = block if ws else R
    blocks = (M + rows_per - 1) // rows_per
    ready_a = np.empty(blocks, np.int64)    # cycle from which block b's activations are in
    release = np.empty(blocks, np.int64)    # cycle from which block b's buffer half is free
    ok = True
    if ws:
        # At most lat_ws + fifo results are ever promised and not yet taken.
        ok = lat_ws + fifo < depth - 1
        x_prev = 0                          # load cycle of the previous tile
        e_prev = -1                         # last row issue of the previous tile
        e_prev2 = -1                        # ... and of the one before it
        first_issue = -1
        issues = 0
        j = 0
        for b in range(blocks):
            rows = min(rows_per, M - b * rows_per)
            if b == 0:
                start = 1
            elif b == 1:
                start = ready_a[0]
            else:
                start = max(ready_a[b - 1], release[b - 2])
            ready_a[b] = start + rows * kt_n
            for nt in range(nt_n):
                channels = min((nt + 1) * C, N)
                w_ready = channels * kt_n + 1
                p_ready = channels + 1 if requant else 0
                for kt in range(kt_n):
                    # Bit-serial: one tile per weight plane, its rows once per activation
                    # plane; only the very last pass of a row needs its parameters.
                    for wp in range(WP):
                        x = max(x_prev + 1, w_ready, 1)
                        if j >= 2:
                            x = max(x, e_prev2 + 1 + d0)
                        r = max(e_prev + 1, x + 1, ready_a[b])
                        if first_issue < 0:
                            first_issue = r
                        final = r + rows * (AP - 1)
                        if kt == kt_n - 1 and wp == WP - 1:
                            final = max(final, p_ready)
                        e = final + rows - 1
                        issues += rows * AP
                        x_prev = x
                        e_prev2 = e_prev
                        e_prev = e
                        j += 1
            release[b] = e_prev + 1
        last_issue = e_prev
        cycles = last_issue + lat_ws + fifo + 1
        return cycles, first_issue, last_issue, issues, ok
    # output-stationary: every tile takes `steps` back-to-back steps
    steps = K * AP * WP
    tiles = blocks * nt_n
    last_steps = np.empty(tiles, np.int64)
    tile_rows = np.empty(tiles, np.int64)
    s_prev = 0
    first_issue = -1
    oldest_live = 0                         # first tile that may still hold credits
    j = 0
    for b in range(blocks):
        rows = min(R, M - b * R)
        if b == 0:
            start = 1
        elif b == 1:
            start = ready_a[0]
        else:
            start = max(ready_a[b - 1], release[b - 2])
        ready_a[b] = start + rows * kt_n
        for nt in range(nt_n):
            channels = min((nt + 1) * C, N)
            s = max(channels * kt_n + 1, ready_a[b], 1)
            if requant:
                s = max(s, channels + 1)
            if j >= 1:
                s = max(s, s_prev + max(steps, R))
            # Credits: results of earlier tiles still promised in cycle s.
            promised = 0
            while oldest_live < j and last_steps[oldest_live] + lat_os + fifo \
                    + tile_rows[oldest_live] - 1 < s:
                oldest_live += 1
            for i in range(oldest_live, j):
                taken_from = last_steps[i] + lat_os + fifo
                if s > taken_from:
                    promised += tile_rows[i] - (s - taken_from)
                else:
                    promised += tile_rows[i]
            if promised + rows > depth - 1:
                ok = False
            if first_issue < 0:
                first_issue = s
            last_steps[j] = s + steps - 1
            tile_rows[j] = rows
            s_prev = s
            j += 1
        release[b] = s_prev + steps
    last_issue = last_steps[tiles - 1]
    cycles = last_issue + lat_os + tile_rows[tiles - 1] - 1 + fifo + 1
    return cycles, first_issue, last_issue, tiles * steps, ok


class ScheduleSummary:
    """Where the cycles of one stall-free GEMM go.

    Members
    -------
    cycles : int
        From the command to the last result, inclusive (the RTL's count).
    load : int
        Cycles before the first row or step enters the array (command, first operands).
    compute : int
        Cycles in which a row (weight-stationary) or a step (output-stationary) enters.
    idle : int
        Cycles between the first and last entry in which nothing enters (waiting for a
        weight tile, a free bank, a block of activations, parameters or credits).
    drain : int
        Cycles after the last entry until the last result is taken (pipeline, FIFO).
    macs : int
        Useful multiply-accumulates, ``M * K * N``.
    """

    __slots__ = ("cycles", "load", "compute", "idle", "drain", "macs")

    def __init__(self, cycles, load, compute, idle, drain, macs):
        self.cycles, self.load, self.compute = cycles, load, compute
        self.idle, self.drain, self.macs = idle, drain, macs

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self):
        return f"ScheduleSummary({', '.join(f'{k}={v}' for k, v in self.as_dict().items())})"


def gemm_schedule(config, m, k, n, a_planes=None, w_planes=None):
    """Stall-free :class:`ScheduleSummary` of one GEMM on ``config``.

    ``a_planes``, ``w_planes``: the bit planes of a bit-serial GEMM (default: all of
    ``a_bits`` and ``w_bits``). Computed tile by tile (fast); when output credits could
    throttle the array (a small ``out_depth``), computed cycle by cycle instead, with the
    same result.
    """
    config = _check_config(config)
    shape = (m, k, n) if a_planes is None and w_planes is None else (
        m, k, n, config.a_bits if a_planes is None else a_planes,
        config.w_bits if w_planes is None else w_planes)
    shapes = _check_shapes(config, [shape])
    work = _work(config, shapes)
    (m, k, n, ap, wp), = shapes.tolist()
    kw = int(work[0, 1])
    lat = latencies(config)
    cycles, first_issue, last_issue, issues, ok = _stall_free(*_kernel_args(config), m, kw, n,
                                                              ap, wp, lat.fifo)
    if not ok:
        empty = np.zeros(0, dtype=np.bool_)
        first, last, _ = _simulate(*_kernel_args(config), work, np.ones((4, 0), np.bool_),
                                   empty, 0.0, _cycle_budget(config, work, 0), _NO_OFFSETS,
                                   _NO_OFFSETS)
        return _summary_from_cycles(config, m, k, n, int(last[0] - first[0] + 1),
                                    first_issue, issues)
    return ScheduleSummary(int(cycles), int(first_issue), int(issues),
                           int(last_issue - first_issue + 1 - issues),
                           int(cycles - last_issue - 1), m * k * n)


def _summary_from_cycles(config, m, k, n, cycles, first_issue, issues):
    # Throttled by credits: the entries are the same, only spread out; the extra cycles
    # are counted as idle.
    lat = latencies(config)
    tail = (lat.ws_row if config.dataflow == "ws" else lat.os_row0 + min(config.rows, m) - 1)
    drain = tail + lat.fifo
    idle = cycles - first_issue - issues - drain
    return ScheduleSummary(cycles, int(first_issue), int(issues), int(idle), int(drain),
                           m * k * n)


def gemm_cycles(config, m, k, n, a_planes=None, w_planes=None):
    """Stall-free cycles of one GEMM, from its command to its last result, inclusive."""
    return gemm_schedule(config, m, k, n, a_planes, w_planes).cycles
