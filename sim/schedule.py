"""Layer scheduler: a GEMM layer as engine commands that fit, the bytes they move, and their
cycles when off-chip memory delivers a given number of bytes per cycle.

The one copy of the tiling rules: ``nets.lower`` splits its layers with
:func:`schedule_gemm`, ``sim.perf`` reports networks with it, and the RTL regression runs
the command sequences and the valid patterns of :func:`dram_patterns`.

Public functions (for explorers that want bytes per inference)
--------------------------------------------------------------
``schedule_gemm(config, m, k, n, groups=1, batch=1) -> LayerSchedule``
    Split one layer, ``groups`` independent GEMMs ``(batch * m x k) @ (k x n)`` (a
    depthwise layer: one group per channel; the batch shares the weights), into
    :class:`EngineCommand` s that fit ``config`` (``max_m`` rows, ``max_k`` taps,
    ``max_n`` channels each), choosing the candidate that moves the fewest off-chip
    bytes. ``LayerSchedule.bytes_read`` is ``{"act", "wgt", "par"}``, ``bytes_written``
    an int, ``bytes_total``, ``macs`` and ``arithmetic_intensity`` (MACs per off-chip
    byte) the totals; ``shapes()`` the ``(M, K, N)`` of every command.
``command_bytes(config, m, k, n) -> dict``
    Bytes one engine command moves on each stream (``act``, ``wgt``, ``par``, ``res``).
``dram_patterns(config, shape, bytes_per_cycle, latency=0, length) -> (valid, ready)``
    Per-cycle valid patterns of ``act``/``wgt``/``par`` and the ready pattern of ``res``
    that ``bytes_per_cycle`` implies for one command (cycle 0: its command is taken).
``dram_cycles(config, shape, bytes_per_cycle, latency=0) -> int``
    That command's cycles under those patterns (:func:`sim.engine_model.run_patterns`).
``sequence_cycles(config, shapes, bytes_per_cycle, latency=0) -> list of dict``
    The cycles of a command sequence run back to back under those patterns (each
    command's patterns start when it is taken), in one run of the cycle model.
``sequence_patterns(config, shapes, bytes_per_cycle, latency=0) -> (valid, ready, cycles)``
    The same sequence's patterns from cycle 0, for the RTL.

Splitting rules
---------------
* M (rows, output pixels times the batch) in blocks of at most ``max_m`` rows; N in
  blocks of at most ``max_n`` channels; K in blocks of at most ``max_k`` taps. Either the
  fewest blocks, or (aligned) the fewest whose sizes are whole column tiles (``cols``
  channels) and whole K chunks (``rows * pack`` taps) but the last, which pads no beat;
  either greedy (full blocks, a short last one) or balanced (``ceil(size / count)``,
  rounded up to the granule when aligned).
* A K split is possible only on an engine with raw outputs (``requant=False`` and no
  threshold: ``acc_bits`` accumulators out): each K block's partial sums are written out
  and the host adds them (wrapping to ``acc_bits``, as the accumulator does) and
  requantizes. Otherwise a K beyond ``max_k`` is a :class:`ScheduleError`.
* Inside one command the engine already reuses operands as far as its buffers allow: it
  holds the command's weights and reuses them over every row, and streams each row of
  activations once for all the command's column tiles. It keeps nothing between
  commands, so every command reads its own activations, weights and parameters.

Bytes: a command moves ``M x ceil(K / chunk)`` activation beats, ``N x ceil(K /
chunk)`` weight beats, ``N`` parameter beats (engines with an output stage) and ``M x
ceil(N / cols)`` result beats, each of :func:`hw.config.beat_bytes` (its bits rounded
up to bytes; padding of a partial chunk or tile included, as it crosses the wire).

Loop order. Candidates are the nestings of the three loops (M, N, K from outer to
inner, six of them) with aligned or not, balanced or greedy blocks; the chosen one
moves the fewest bytes, then has the fewest commands, then comes first (in
:data:`LOOP_ORDERS`, aligned first, balanced first). With an engine that keeps nothing
between commands the nesting does not change the bytes (each command moves its own
operands), only the block sizes do; ``"mnk"`` (K innermost) lets the host finish one
output block's partial sums before the next.

Memory model (``dram_patterns``): the host streams each command's operands from off-chip
memory that delivers ``bytes_per_cycle`` bytes per cycle, reads and writes together. The
bandwidth is divided between reads and writes in proportion to the command's bytes of
each; the first read bytes arrive ``latency`` cycles after the cycle after the command is
taken. Each cycle the read budget grows by its share (a
bucket that holds at most one cycle's share plus the largest beat) and pays, in strict
priority (a stream with beats left that cannot be paid yet holds back the later ones),
for the first activation block (``block`` rows), weights, parameters, and the remaining
activations, at most one beat per stream per cycle: the stream's valid pattern
is true in the cycles a beat is paid for. The writes' budget makes the result stream's
ready pattern the same way. A beat the engine is not ready for is held (one-beat
buffer) and the budget of the cycles it waits is lost, as for a stream throttled by
back pressure. Activations are paid for as long as the command runs: once its own are
all taken, the one-beat buffer takes the next command's first activation beat, which
waits there for that command (so in a sequence a command can start a few cycles sooner
than alone; :func:`sequence_cycles` counts it). The patterns are fixed in advance, so the
RTL runs the same patterns and its cycle count must equal the model's.
"""

import dataclasses
import functools
import itertools
import math

import numpy as np
from numba import njit

from hw.config import ArrayConfig, beat_bytes

from .engine_model import PatternTooShort, gemm_schedule, run_command_patterns, run_patterns

__all__ = ["EngineCommand", "LayerSchedule", "ScheduleError", "LOOP_ORDERS", "schedule_gemm",
           "candidate_schedules", "command_bytes", "dram_patterns", "dram_cycles",
           "sequence_cycles", "sequence_patterns", "GAP_BETWEEN_COMMANDS"]

#: Loop nestings, outer to inner, in order of preference on a tie.
LOOP_ORDERS = ("mnk", "nmk", "mkn", "nkm", "kmn", "knm")
#: Idle cycles between a command's last result and the next command (the engine leaves
#: busy the cycle after the last result and takes a command the next cycle).
GAP_BETWEEN_COMMANDS = 1


class ScheduleError(ValueError):
    """A layer that no command sequence of this engine can compute."""


@dataclasses.dataclass(frozen=True)
class EngineCommand:
    """One engine GEMM command: ``[start, stop)`` ranges of the group's rows, taps and
    output channels."""

    group: int
    rows: tuple
    depth: tuple
    cols: tuple

    @property
    def m(self):
        return self.rows[1] - self.rows[0]

    @property
    def k(self):
        return self.depth[1] - self.depth[0]

    @property
    def n(self):
        return self.cols[1] - self.cols[0]

    @property
    def shape(self):
        return (self.m, self.k, self.n)


def command_bytes(config, m, k, n):
    """``{"act", "wgt", "par", "res"}``: bytes one command ``(m, k, n)`` moves per stream."""
    beats = beat_bytes(config)
    chunks = -(-k // config.chunk)
    return {"act": m * chunks * beats["act"], "wgt": n * chunks * beats["wgt"],
            "par": n * beats["par"], "res": m * -(-n // config.cols) * beats["res"]}


@dataclasses.dataclass(frozen=True, eq=False)
class LayerSchedule:
    """A layer split into engine commands, and the off-chip bytes they move.

    Members
    -------
    m, k, n, groups, batch : int
        The layer: ``groups`` GEMMs of ``batch * m`` rows.
    order : str
        Loop nesting, outer to inner (one of :data:`LOOP_ORDERS`).
    blocks : (int, int, int)
        Largest block of M, K and N.
    balanced : bool
        Balanced block sizes (else full blocks and a short last one).
    aligned : bool
        K blocks whole K chunks and N blocks whole column tiles (but the last).
    commands : tuple of EngineCommand
        In the order the engine runs them.
    bytes_read : dict
        ``act``, ``wgt``, ``par``: bytes read from off-chip memory.
    bytes_written : int
        Result bytes written (partial sums of every K block on a raw engine).
    macs : int
        ``groups * batch * m * k * n``.
    """

    m: int
    k: int
    n: int
    groups: int
    batch: int
    order: str
    blocks: tuple
    balanced: bool
    aligned: bool
    commands: tuple
    bytes_read: dict
    bytes_written: int
    macs: int

    @property
    def k_splits(self):
        return -(-self.k // self.blocks[1])

    @property
    def bytes_total(self):
        return sum(self.bytes_read.values()) + self.bytes_written

    @property
    def arithmetic_intensity(self):
        """MACs per byte moved between off-chip memory and the engine."""
        return self.macs / self.bytes_total

    def shapes(self):
        """``(M, K, N)`` of every command, in order."""
        return [c.shape for c in self.commands]

    def as_dict(self):
        return {"m": self.m, "k": self.k, "n": self.n, "groups": self.groups,
                "batch": self.batch, "order": self.order, "blocks": list(self.blocks),
                "balanced": self.balanced, "aligned": self.aligned,
                "commands": len(self.commands),
                "k_splits": self.k_splits, "bytes_read": dict(self.bytes_read),
                "bytes_written": self.bytes_written, "bytes_total": self.bytes_total,
                "macs": self.macs, "arithmetic_intensity": self.arithmetic_intensity}


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"layer {name} must be a positive integer, not {value!r}")
    return int(value)


def _ranges(total, limit, granule, balanced, aligned):
    """``[start, stop)`` blocks of ``total`` of at most ``limit`` each: the fewest such
    blocks, or (``aligned``) the fewest whose sizes but the last are multiples of
    ``granule`` (when ``limit`` allows one)."""
    if not aligned:
        granule = 1
    step = limit if limit < granule else limit - limit % granule
    count = -(-total // step)
    if balanced:
        size = -(-total // count)
        size = min(step, -(-size // granule) * granule) if step >= granule else size
    else:
        size = step
    return [(lo, min(lo + size, total)) for lo in range(0, total, size)]


def _build(config, m, k, n, groups, batch, order, balanced, aligned):
    rows = _ranges(batch * m, config.max_m, 1, balanced, aligned)
    depth = _ranges(k, config.max_k, config.chunk, balanced, aligned)
    cols = _ranges(n, config.max_n, config.cols, balanced, aligned)
    loops = {"m": rows, "k": depth, "n": cols}
    commands = []
    read = {"act": 0, "wgt": 0, "par": 0}
    written = 0
    for g in range(groups):
        for combo in itertools.product(*(loops[axis] for axis in order)):
            r = dict(zip(order, combo, strict=True))
            cmd = EngineCommand(g, r["m"], r["k"], r["n"])
            commands.append(cmd)
            moved = command_bytes(config, *cmd.shape)
            for key in read:
                read[key] += moved[key]
            written += moved["res"]
    blocks = (rows[0][1] - rows[0][0], depth[0][1] - depth[0][0], cols[0][1] - cols[0][0])
    return LayerSchedule(m, k, n, groups, batch, order, blocks, balanced, aligned,
                         tuple(commands), read, written, groups * batch * m * k * n)


def _check_layer(config, m, k, n, groups, batch):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")
    m, k, n = (_check_size(name, v) for name, v in (("m", m), ("k", k), ("n", n)))
    groups, batch = _check_size("groups", groups), _check_size("batch", batch)
    if k > config.max_k and (config.requant or config.threshold):
        stage = "requantizes" if config.requant else "compares with thresholds"
        raise ScheduleError(f"layer K = {k} is over the engine's max_k {config.max_k} and the "
                            f"engine {stage}, so K cannot be split (partial sums need raw "
                            f"outputs: build it with --no-requant, or with --max-k {k} or "
                            f"more)")
    return m, k, n, groups, batch


def candidate_schedules(config, m, k, n, groups=1, batch=1):
    """Every candidate :class:`LayerSchedule`: each loop order, balanced or greedy blocks,
    aligned or not."""
    m, k, n, groups, batch = _check_layer(config, m, k, n, groups, batch)
    return [_build(config, m, k, n, groups, batch, *knobs) for knobs in _KNOBS]


_KNOBS = [(order, balanced, aligned) for order in LOOP_ORDERS for aligned in (True, False)
          for balanced in (True, False)]


def _cost(s):
    return (s.bytes_total, len(s.commands),
            _KNOBS.index((s.order, s.balanced, s.aligned)))


def schedule_gemm(config, m, k, n, groups=1, batch=1):
    """The :class:`LayerSchedule` of a layer on ``config`` that moves the fewest bytes.

    Raises
    ------
    ValueError
        A size that is not a positive integer.
    ScheduleError
        K over ``max_k`` on an engine that cannot carry partial sums.
    """
    m, k, n, groups, batch = _check_layer(config, m, k, n, groups, batch)
    return _schedule(config, m, k, n, groups, batch)


@functools.lru_cache(maxsize=4096)
def _schedule(config, m, k, n, groups, batch):
    # One group decides (every group is the same GEMM), then all groups are built.
    best = min((_build(config, m, k, n, 1, batch, *knobs) for knobs in _KNOBS), key=_cost)
    if groups == 1:
        return best
    return _build(config, m, k, n, groups, batch, best.order, best.balanced, best.aligned)


# ---------------------------------------------------------------------------------------
# Off-chip bandwidth: the valid and ready patterns of one command
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _patterns(length, start, read_rate, write_rate, first_act, wgt_beats, par_beats,
              act_bytes, wgt_bytes, par_bytes, res_bytes):
    valid = np.zeros((3, length), dtype=np.bool_)   # act, wgt, par
    ready = np.zeros(length, dtype=np.bool_)
    cost = np.array([act_bytes, wgt_bytes, par_bytes], dtype=np.float64)
    # In priority order: the first block of activations, the weights, the parameters.
    limit = np.array([first_act, wgt_beats, par_beats], dtype=np.int64)
    paid = np.zeros(3, dtype=np.int64)
    cap_r = read_rate + max(act_bytes, wgt_bytes, par_bytes)
    cap_w = write_rate + res_bytes
    credit_r = 0.0
    credit_w = 0.0
    for t in range(start, length):
        credit_r = min(credit_r + read_rate, cap_r)
        credit_w = min(credit_w + write_rate, cap_w)
        # Strict priority: a stream with beats left that cannot be paid for yet holds back
        # the ones after it (so a wide parameter beat is not starved by activations).
        blocked = False
        for s in range(3):
            if paid[s] < limit[s]:
                if credit_r < cost[s]:
                    blocked = True
                    break
                valid[s, t] = True
                credit_r -= cost[s]
                paid[s] += 1
        # Then the remaining activations, as long as the command runs.
        if not blocked and paid[0] >= first_act and not valid[0, t] and credit_r >= cost[0]:
            valid[0, t] = True
            credit_r -= cost[0]
            paid[0] += 1
        if credit_w >= res_bytes:
            ready[t] = True
            credit_w -= res_bytes
    return valid, ready


def _check_bandwidth(bytes_per_cycle, latency):
    if (isinstance(bytes_per_cycle, bool) or not isinstance(bytes_per_cycle, (int, float))
            or not math.isfinite(bytes_per_cycle) or bytes_per_cycle <= 0):
        raise ValueError(f"bytes_per_cycle must be a positive number, not {bytes_per_cycle!r}")
    if isinstance(latency, bool) or not isinstance(latency, (int, np.integer)) or latency < 0:
        raise ValueError(f"latency must be a non-negative integer of cycles, not {latency!r}")


def dram_patterns(config, shape, bytes_per_cycle, latency=0, length=None):
    """Valid patterns (``{"act", "wgt", "par"}``) and the result ready pattern that
    ``bytes_per_cycle`` implies for one command ``shape = (M, K, N)``, cycle 0 being the
    cycle its command is taken (see the module docstring). ``length`` cycles (default:
    enough for the command at this bandwidth, see :func:`dram_cycles`)."""
    _check_bandwidth(bytes_per_cycle, latency)
    m, k, n = shape
    moved = command_bytes(config, m, k, n)
    beats = beat_bytes(config)
    chunks = -(-k // config.chunk)
    read = moved["act"] + moved["wgt"] + moved["par"]
    write_rate = bytes_per_cycle * moved["res"] / (read + moved["res"])
    if length is None:
        length = _length_guess(config, shape, bytes_per_cycle, latency)
    valid, ready = _patterns(int(length), 1 + int(latency), bytes_per_cycle - write_rate,
                             write_rate, min(m, config.block) * chunks, n * chunks,
                             n if config.has_params else 0, beats["act"], beats["wgt"],
                             max(beats["par"], 1), beats["res"])
    out = {"act": valid[0], "wgt": valid[1]}
    if config.has_params:
        out["par"] = valid[2]
    return out, ready


def _length_guess(config, shape, bytes_per_cycle, latency):
    moved = command_bytes(config, *shape)
    stall_free = gemm_schedule(config, *shape).cycles
    return int(2 * (stall_free + sum(moved.values()) / bytes_per_cycle) + latency + 64)


@functools.lru_cache(maxsize=65536)
def _dram_cycles(config, shape, bytes_per_cycle, latency):
    length = first = _length_guess(config, shape, bytes_per_cycle, latency)
    while True:
        if length > 64 * first:
            raise RuntimeError(f"command {shape} did not finish at {bytes_per_cycle} bytes per "
                               f"cycle: a bug of the memory model")
        valid, ready = dram_patterns(config, shape, bytes_per_cycle, latency, length)
        record, = run_patterns(config, [shape], {"cmd": np.ones(length, np.bool_), **valid},
                               ready)
        if record["last"] < length:
            return record["cycles"]
        length *= 2


def dram_cycles(config, shape, bytes_per_cycle, latency=0):
    """Cycles of one command ``(M, K, N)`` from its command to its last result when the
    off-chip memory delivers ``bytes_per_cycle`` (see :func:`dram_patterns`)."""
    _check_bandwidth(bytes_per_cycle, latency)
    return _dram_cycles(config, tuple(int(v) for v in shape), float(bytes_per_cycle),
                        int(latency))


def _shape_key(shape):
    return tuple(int(v) for v in shape)


def sequence_cycles(config, shapes, bytes_per_cycle, latency=0):
    """Records of commands run back to back when off-chip memory delivers
    ``bytes_per_cycle``: one dict per command with ``first`` (the cycle it is taken),
    ``last`` (its last result) and ``cycles`` (those of
    :func:`sim.engine_model.run_command_patterns`).

    Command ``i`` is taken :data:`GAP_BETWEEN_COMMANDS` cycles after the last result of
    command ``i - 1``, and its operand and result patterns (those of
    :func:`dram_patterns`) start in that cycle. A command's count can differ by a few
    cycles from :func:`dram_cycles` (the command alone): the one-beat buffer of the
    activation stream may already hold the next command's first beat when a command
    ends (the memory paid for it), so the next one starts a little sooner; this
    function, not a sum of :func:`dram_cycles`, gives the count of a sequence, in one
    run of the cycle model.
    """
    _check_bandwidth(bytes_per_cycle, latency)
    keys = [_shape_key(s) for s in shapes]
    if not keys:
        return []
    distinct = list(dict.fromkeys(keys))
    which = [distinct.index(k) for k in keys]
    lengths = {k: 2 * dram_cycles(config, k, bytes_per_cycle, latency) + 64 for k in distinct}
    while True:
        patterns = [dram_patterns(config, k, bytes_per_cycle, latency, lengths[k])
                    for k in distinct]
        try:
            return run_command_patterns(config, keys, patterns, which)
        except PatternTooShort as short:
            lengths[keys[short.index]] *= 2


def sequence_patterns(config, shapes, bytes_per_cycle, latency=0):
    """Patterns of commands run back to back: ``(valid, ready, cycles)``.

    The absolute per-cycle patterns (from cycle 0, the first command) of the sequence
    that :func:`sequence_cycles` models, for the RTL: command ``i``'s operand and result
    patterns (those of :func:`dram_patterns`) from the cycle it is taken to its last
    result, then :data:`GAP_BETWEEN_COMMANDS` cycles in which the operand streams are not
    valid and the result stream is ready. ``valid`` has ``cmd`` (always true), ``act``,
    ``wgt`` and ``par``; ``cycles`` the per-command counts of :func:`sequence_cycles`.
    """
    records = sequence_cycles(config, shapes, bytes_per_cycle, latency)
    names = ("act", "wgt", "par") if config.has_params else ("act", "wgt")
    pieces = {n: [] for n in names}
    ready_pieces = []
    for shape, record in zip(shapes, records, strict=True):
        c = record["cycles"]
        v, r = dram_patterns(config, _shape_key(shape), bytes_per_cycle, latency, c)
        for n in names:
            pieces[n] += [v[n], np.zeros(GAP_BETWEEN_COMMANDS, np.bool_)]
        ready_pieces += [r, np.ones(GAP_BETWEEN_COMMANDS, np.bool_)]
    valid = {n: np.concatenate(pieces[n]) for n in names}
    ready = np.concatenate(ready_pieces)
    valid["cmd"] = np.ones(len(ready), np.bool_)
    return valid, ready, [r["cycles"] for r in records]
