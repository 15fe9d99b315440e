"""cocotb 2.x testbench of the generated GEMM engine: golden-checked results, cycle counts.

The job comes from the JSON file named by ``QMAC_GEMM_JOB`` (``python -m hw.regress`` and
``tests/test_rtl_regress.py`` write it)::

    {
      "config": {...},              # ArrayConfig.to_dict() of the design under test
      "seed": 1234,                 # operands, shapes and stall patterns
      "stall_prob": 0.3,            # probability of a valid gap / ready gap per cycle
      "patterns": {"valid": {"act": "0110...", ...}, "ready": "1011..."},  # optional:
                                    # given patterns instead (ExplicitPatterns)
      "generate": {"count": 20, "limits": [M, K, N], "edges": true},   # optional
      "gemms": [{"shape": [M, K, N]} or {"a": [[...]], "w": [[...]], ...}],  # optional
      "oracle": {"path": ".../tflite_conv_int8.npz", "cases": ["case000", ...]},  # optional
      "output": "/path/records.json",
      "negative_control": false,    # "result" (or true): corrupt one expected beat;
                                    # "cycles": one predicted count (either must fail)
      "harness": "memory"           # or "driver" (the default when absent)
    }

All GEMMs run back to back (see :mod:`tests.support.gemm_jobs` for what the generator makes; it
stays within the configuration's ``max_m``/``max_k``/``max_n``, while an explicit GEMM
over them is refused by the engine and the test reports the hang that follows). The
output file holds ``{"records": [...], "errors": [...], ...}`` with one record per
GEMM: ``M``, ``K``, ``N``, ``label``, ``match``, ``first``, ``last``, ``rtl_cycles``,
``model_cycles``; it is written before the test asserts, so a failing run has it too.

The test fails on: a result beat that differs from the golden model (TFLite's ``y``
for oracle cases), a missing or extra result beat, an input beat never taken, the
result stream breaking the stream rules (valid dropped or payload changed while
stalled), no transfer at all for a long time (a hang), ``error`` ever high, ``busy``
low between a GEMM's command and its last result or still high after it, an operand
beat taken before its GEMM's command, an edge case that does not deliver what it
promises (:func:`gemm_jobs.coverage_errors`: e.g. the wrap case must wrap), and any
disagreement with the cycle model.

Operand elements past K in a row's last beat are random (seeded), never zero, so every run
also checks that the engine ignores them.

Per-cycle protocol (the one the cycle model is written against; ``tests/support/engine_sim.py``
is the same protocol in Amaranth's simulator). Cycle 0 is the first clock cycle after
reset is released. In cycle ``t`` an input stream's driver that holds no beat, has beats
left and has ``valid[stream][t]`` true presents its next beat; a presented beat is held
until taken; a beat is taken in cycle ``t`` when valid and ready are both 1 in cycle
``t``. The result stream's ready in cycle ``t`` is ``ready[t]``. For GEMM ``i``, ``first``
is the cycle of its command transfer, ``last`` the cycle of its last result transfer and
``rtl_cycles = last - first + 1``. The patterns are
:class:`tests.support.streams.StreamPatterns` (numpy bool arrays, ``rng.random(n) >=
stall_prob``, one generator per stream, extended in fixed blocks as the run goes on), and
the drivers and the monitor are :mod:`tests.support.cocotb_streams`'.

Two harnesses apply this protocol (the job's ``harness``; ``python -m hw.regress`` uses
``memory`` unless ``--harness driver``). ``driver``: the top level is the engine, and the
cocotb drivers and monitor of :mod:`tests.support.cocotb_streams` act in every cycle.
``memory``: the top level is :mod:`hw.flow.harness`'s wrapper, whose beat, pattern and
result memories do the same in Verilog; :class:`tests.support.cocotb_memory.MemoryHarness`
loads and reads them in bulk, about once per 500 beats or 1,000 cycles, and the result
stream's rules, ``error``, ``busy`` changes, hangs and transfer cycles are recorded by the
wrapper and read back. Both feed the same scoreboard, records and checks, and give the same
records for the same job (``tests/test_rtl_harness.py``).

Sampling convention (as in ``tests/smoke/smoke_tb.py``): right after a rising edge a
process writes what it drives for the cycle that edge starts; in ``ReadOnly`` it reads
the settled values, which decide the transfers at the next edge. Cycle numbers come from
the simulation time, so every process agrees on them.

When ``sim.engine_model`` can be imported, its ``run_patterns`` is given the very
patterns applied here and every GEMM's ``rtl_cycles`` must equal its prediction; when
the module does not exist, ``model_cycles`` is None.
"""

import collections
import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, First, ReadOnly, RisingEdge

from hw.beats import StreamCodec
from hw.config import ArrayConfig
from hw.flow.harness import BEAT_DEPTH, PATTERN_WORDS
from hw.regress import JOB_ENV
from tests.support import gemm_jobs
from tests.support.cocotb_memory import MemoryHarness
from tests.support.cocotb_streams import CycleCounter, OwnedTask, StreamDriver, StreamMonitor
from tests.support.streams import INPUT_STREAMS, ExplicitPatterns, StreamPatterns

__all__ = ["Scoreboard", "StatusMonitor", "gemm_regression"]

CLOCK_PERIOD_NS = 10
RESET_CYCLES = 3
#: Cycles watched after the last result: nothing may follow it, and ``busy`` must fall.
TAIL_CYCLES = 16


class StatusMonitor(OwnedTask):
    """Samples ``busy`` and ``error`` in every cycle (for the sanity checks after the run)."""

    def __init__(self, dut, clock, cycles):
        self._busy, self._error = dut.busy, dut.error
        self._clock = clock
        self._cycles = cycles
        self.busy = bytearray()
        self.error = bytearray()

    async def _run(self):
        while True:
            await ReadOnly()
            t = self._cycles()
            if len(self.busy) != t:
                raise RuntimeError(f"status sampled for cycle {len(self.busy)} at cycle {t}")
            self.busy.append(self._busy.value == 1)
            self.error.append(self._error.value == 1)
            await RisingEdge(self._clock)

    @property
    def error_first(self):
        return self.error.index(1) if any(self.error) else None

    @property
    def busy_end(self):
        return bool(self.busy and self.busy[-1])

    def busy_at(self, t):
        return bool(self.busy[t])

    def first_low(self, start, stop):
        """The first cycle in ``start..stop`` (inclusive) with ``busy`` low, or None."""
        return next((t for t in range(start, stop + 1) if not self.busy[t]), None)


class Scoreboard:
    """In-order scoreboard: expected result beats from the golden model, per GEMM."""

    def __init__(self, codec, cases):
        self._codec = codec
        self._expected = collections.deque()
        self.beats = []          # number of result beats of each case
        self.got = [0] * len(cases)
        self.last_cycle = [None] * len(cases)
        self.mismatches = [0] * len(cases)
        self.errors = []
        self.received = 0
        self.done = Event()
        for index, case in enumerate(cases):
            m, _, n = case.shape
            order = codec.result_order(m, n)
            beats = codec.expected_beats(case.expected)
            self.beats.append(len(beats))
            for position, beat in zip(order, beats, strict=True):
                self._expected.append((index, position, beat))
        self._cases = cases
        if not self._expected:
            self.done.set()

    @property
    def outstanding(self):
        return len(self._expected)

    def corrupt_one(self):
        """Negative control: flip the lowest bit of the first expected beat."""
        index, position, beat = self._expected[0]
        self._expected[0] = (index, position, beat ^ 1)

    def receive(self, beat, cycle):
        """Result ``beat`` taken in ``cycle`` (an int, or a function that reads it: it is
        called only for a GEMM's last beat and for a wrong one)."""
        at = cycle if callable(cycle) else lambda: cycle
        self.received += 1
        if not self._expected:
            self.errors.append(f"cycle {at()}: result beat {beat:#x} after the last expected one")
            return
        index, (row, n0), want = self._expected.popleft()
        self.got[index] += 1
        if self.got[index] == self.beats[index]:
            self.last_cycle[index] = at()
        if beat != want:
            cycle = at()
            self.mismatches[index] += 1
            if len(self.errors) < 20:
                self.errors.append(
                    f"cycle {cycle}: GEMM {index} ({self._cases[index].label}, "
                    f"{'x'.join(map(str, self._cases[index].shape))}) row {row} columns "
                    f"{n0}..: got {self._codec.unpack_result(beat)}, expected "
                    f"{self._codec.unpack_result(want)}")
        if not self._expected:
            self.done.set()


def _cycle_model():
    """``sim.engine_model`` if it exists, else None (a model that fails to import raises)."""
    try:
        from sim import engine_model
    except ModuleNotFoundError as error:
        if error.name in ("sim.engine_model", "sim"):
            return None
        raise
    return engine_model


def _load_job():
    path = os.environ.get(JOB_ENV)
    if not path:
        raise RuntimeError(f"{JOB_ENV} must name the job's JSON file")
    with open(path) as f:
        return json.load(f)


def _idle_limit(config, stall_prob):
    """Cycles without any transfer after which the run counts as hung."""
    return int((2000 + 8 * (config.max_k + config.rows + config.cols + config.fifo_depth))
               / (1.0 - stall_prob) ** 2)


def _sanity_errors(status, pending, records):
    """Checks of ``busy``/``error`` and that every input beat was taken.

    ``status`` is a :class:`StatusMonitor` or a :class:`~tests.support.cocotb_memory.BusyHistory`
    (``error_first``, ``busy_at``, ``first_low``, ``busy_end``); ``pending`` the beats of each
    input stream never taken.
    """
    errors = []
    if status.error_first is not None:
        errors.append(f"error was high in cycle {status.error_first}")
    for i, r in enumerate(records):
        if r["first"] is None:
            errors.append(f"GEMM {i}: command never taken")
            continue
        if status.busy_at(r["first"]):
            errors.append(f"GEMM {i}: command taken in cycle {r['first']} while busy")
        if r["last"] is not None:
            low = status.first_low(r["first"] + 1, r["last"])
            if low is not None:
                errors.append(f"GEMM {i}: busy low in cycle {low}, between its command "
                              f"({r['first']}) and its last result ({r['last']})")
    if status.busy_end:
        errors.append(f"busy still high {TAIL_CYCLES} cycles after the last result")
    for name, count in pending.items():
        if count:
            errors.append(f"{name}: {count} beats never taken")
    return errors


def _first_beats(beat_owner, gemms):
    """Per stream, the index of each GEMM's first beat (None when it has none)."""
    firsts = {}
    for name, owners in beat_owner.items():
        index = [None] * gemms
        for position, owner in enumerate(owners):
            if index[owner] is None:
                index[owner] = position
        firsts[name] = index
    return firsts


def _operand_order_errors(first_cycles, records):
    """Operand beats of a GEMM may only be taken after its command.

    ``first_cycles[stream][gemm]`` is the cycle its first beat was taken in (or None);
    beats are taken in order, so a GEMM's first beat is its earliest.
    """
    errors = []
    for name, cycles in first_cycles.items():
        if name == "cmd":
            continue
        for owner, cycle in enumerate(cycles):
            first = records[owner]["first"]
            if cycle is not None and first is not None and cycle <= first:
                errors.append(f"{name} beat of GEMM {owner} taken in cycle {cycle}, not after "
                              f"its command (cycle {first})")
                break
    return errors


def _records(codec, cases, command_cycles, scoreboard):
    """One record per GEMM: shape, label, match, transfer cycles, RTL cycle count."""
    records = []
    for index, case in enumerate(cases):
        m, k, n = case.shape
        first = command_cycles[index] if index < len(command_cycles) else None
        complete = first is not None and scoreboard.got[index] == scoreboard.beats[index]
        last = scoreboard.last_cycle[index] if complete else None
        records.append({
            "index": index, "label": case.label, "M": m, "K": k, "N": n,
            "match": complete and scoreboard.mismatches[index] == 0,
            "mismatches": scoreboard.mismatches[index], "wrapped": case.wrapped,
            "first": first, "last": last,
            "rtl_cycles": last - first + 1 if complete else None, "model_cycles": None,
        })
        if codec.config.pe_mode == "bitserial":
            records[-1]["a_planes"], records[-1]["w_planes"] = codec.planes(case.gemm)
    return records


def _compare_with_model(model, codec, cases, records, patterns, corrupt=False):
    """Fill in the model's counts; return the disagreements (or the model's failure).

    ``run_patterns`` gets the patterns applied; in a stall-free run every GEMM must also
    take ``gemm_cycles`` (the engine is idle between GEMMs, so each starts afresh).
    """
    errors = []
    config = codec.config
    try:
        shapes = [codec.model_shape(case.gemm) for case in cases]
        predicted = model.run_patterns(config, shapes, patterns.valid, patterns.ready)
        if corrupt and predicted:  # negative control: one count off by one must be caught
            predicted[0] = dict(predicted[0], cycles=int(predicted[0]["cycles"]) + 1)
        for r, p in zip(records, predicted, strict=True):
            r["model_cycles"] = int(p["cycles"])
            r["model_first"], r["model_last"] = int(p["first"]), int(p["last"])
            if r["rtl_cycles"] != r["model_cycles"]:
                errors.append(f"GEMM {r['index']} ({r['label']}, {r['M']}x{r['K']}x{r['N']}): "
                              f"RTL {r['rtl_cycles']} cycles ({r['first']}..{r['last']}), "
                              f"model {r['model_cycles']} ({p['first']}..{p['last']})")
        if patterns.stall_prob == 0.0:
            for r, shape in zip(records, shapes, strict=True):
                r["model_stall_free"] = int(model.gemm_cycles(config, *shape))
                if r["rtl_cycles"] != r["model_stall_free"]:
                    errors.append(f"GEMM {r['index']}: stall-free RTL {r['rtl_cycles']} "
                                  f"cycles, model gemm_cycles {r['model_stall_free']}")
    except Exception as error:  # noqa: BLE001 - reported with the other errors
        errors.append(f"cycle model failed: {type(error).__name__}: {error}")
    return errors


async def _run_drivers(dut, names, patterns, beats, scoreboard, idle_limit):
    """The per-cycle harness: one cocotb driver per input, a monitor, a status sampler.

    Returns ``(hung, end_cycle, command_cycles, first_cycles, status, pending, rule_errors)``.
    """
    cycles = CycleCounter(CLOCK_PERIOD_NS)
    clock = dut.clk
    Clock(clock, CLOCK_PERIOD_NS, unit="ns").start()
    drivers = {name: StreamDriver(dut, name, clock, cycles,
                                  lambda t, name=name: patterns.valid_at(name, t))
               for name in names}
    monitor = StreamMonitor(dut, "res", clock, cycles, patterns.ready_at, scoreboard.receive)
    status = StatusMonitor(dut, clock, cycles)
    for name in names:
        drivers[name].send(beats[name])
    dut.rst.value = 1
    for _ in range(RESET_CYCLES):
        await RisingEdge(clock)
    dut.rst.value = 0
    cycles.start()                       # this edge starts cycle 0
    for process in (*drivers.values(), monitor, status):
        process.start()

    hung = False
    while not scoreboard.done.is_set():
        progress = scoreboard.received + sum(len(d.transfers) for d in drivers.values())
        await First(scoreboard.done.wait(), ClockCycles(clock, idle_limit))
        now = scoreboard.received + sum(len(d.transfers) for d in drivers.values())
        if not scoreboard.done.is_set() and now == progress:
            hung = True
            break
    await ClockCycles(clock, TAIL_CYCLES)
    end_cycle = cycles()                 # right after an edge: writes are still allowed
    for process in (*drivers.values(), monitor, status):
        process.stop()
    pending = {name: d.pending for name, d in drivers.items()}
    return hung, end_cycle, drivers["cmd"].transfers, drivers, status, pending, monitor.errors


async def _run_memory(dut, names, patterns, beats, first_beats, scoreboard, idle_limit):
    """The memory-backed harness (:mod:`hw.flow.harness`): Python wakes only on ``attn``."""
    widths = {name: len(getattr(dut, f"{name}_payload")) for name in (*names, "res")}
    harness = MemoryHarness(dut, beats, first_beats, patterns, scoreboard.outstanding,
                            scoreboard.receive, idle_limit, BEAT_DEPTH, PATTERN_WORDS, widths)
    clock = dut.clk
    # The clock in the GPI (C++) layer: Python sets values only at falling edges, so the
    # inertial writes it relies on cannot race a clock edge.
    Clock(clock, CLOCK_PERIOD_NS, unit="ns", impl="gpi").start()
    hung, end_cycle = await harness.run(clock, RESET_CYCLES, TAIL_CYCLES)
    dut._log.info("memory harness: %d wake-ups, %.2f s in Python", harness.wakeups,
                  harness.service_seconds)
    return (hung, end_cycle, harness.first_cycles["cmd"], harness.first_cycles,
            harness.status(), harness.pending(), harness.rule_errors())


@cocotb.test()
async def gemm_regression(dut):
    """Every GEMM of the job, back to back, with the job's stalls; results bit-exact."""
    wall = time.perf_counter()
    job = _load_job()
    config = ArrayConfig.from_dict(job["config"])
    seed = int(job["seed"])
    stall_prob = float(job.get("stall_prob", 0.0))
    harness = job.get("harness", "driver")
    log = dut._log
    log.info("seed %d (cocotb seed %s); stall_prob %s; %s %s; %s harness", seed,
             cocotb.RANDOM_SEED, stall_prob, cocotb.SIM_NAME, cocotb.SIM_VERSION, harness)
    log.info("config %s", config)

    cases = gemm_jobs.job_cases(config, job)
    # Operand elements past K are random: the engine must ignore them.
    codec = StreamCodec(config, padding_rng=np.random.default_rng([seed, 0x706164]))
    names = tuple(n for n in INPUT_STREAMS if n != "par" or config.has_params)
    if job.get("patterns"):
        # Given patterns (an off-chip bandwidth's, see sim.schedule), not seeded stalls.
        patterns = ExplicitPatterns.from_json(job["patterns"])
        stall_prob = patterns.stall_prob
    else:
        patterns = StreamPatterns(seed, stall_prob, names)
    scoreboard = Scoreboard(codec, cases)
    negative = job.get("negative_control") or None
    negative = "result" if negative is True else negative
    if negative == "result":
        scoreboard.corrupt_one()

    beats = {name: [] for name in names}
    beat_owner = {name: [] for name in names}
    for index, case in enumerate(cases):
        gemm_beats = {"cmd": [codec.command(case.gemm)], "act": codec.activations(case.gemm),
                      "wgt": codec.weights(case.gemm)}
        if config.has_params:
            gemm_beats["par"] = codec.params(case.gemm)
        for name in names:
            beats[name] += gemm_beats[name]
            beat_owner[name] += [index] * len(gemm_beats[name])
    first_beats = _first_beats(beat_owner, len(cases))
    log.info("%d GEMMs, %s beats in, %d beats out", len(cases),
             {n: len(b) for n, b in beats.items()}, scoreboard.outstanding)

    idle_limit = _idle_limit(config, stall_prob)
    setup_seconds = time.perf_counter() - wall
    wall, cpu = time.perf_counter(), time.process_time()
    if harness == "memory":
        hung, end_cycle, command_cycles, first_cycles, status, pending, rule_errors = (
            await _run_memory(dut, names, patterns, beats, first_beats, scoreboard,
                              idle_limit))
    elif harness == "driver":
        hung, end_cycle, command_cycles, drivers, status, pending, rule_errors = (
            await _run_drivers(dut, names, patterns, beats, scoreboard, idle_limit))
        first_cycles = {name: [drivers[name].transfers[i]
                               if i is not None and i < len(drivers[name].transfers) else None
                               for i in first_beats[name]] for name in names}
    else:
        raise ValueError(f"job harness must be 'memory' or 'driver', not {harness!r}")
    if hung:
        hung = (f"no transfer for {idle_limit} cycles (cycle {end_cycle - TAIL_CYCLES}): "
                f"{scoreboard.outstanding} result beats outstanding, inputs pending "
                f"{pending}")
    else:
        hung = None
    run_seconds = time.perf_counter() - wall
    run_cpu_seconds = time.process_time() - cpu
    wall = time.perf_counter()

    records = _records(codec, cases, command_cycles, scoreboard)
    model, model_errors = _cycle_model(), []
    if model is not None and hung is None:
        # Exactly the patterns applied, plus a margin the model may look into.
        patterns.ensure(end_cycle + 1 + StreamPatterns.BLOCK)
        model_errors = _compare_with_model(model, codec, cases, records, patterns,
                                           corrupt=negative == "cycles")

    model_seconds = time.perf_counter() - wall
    log.info("%d cycles simulated in %.2f s (%.0f cycles/s); setup %.2f s, cycle model %.2f s",
             end_cycle, run_seconds, end_cycle / max(run_seconds, 1e-9), setup_seconds,
             model_seconds)
    if hung:  # only what explains the hang
        sanity = ([f"error was high in cycle {status.error_first}"]
                  if status.error_first is not None else [])
    else:
        sanity = _sanity_errors(status, pending, records)
    sanity += _operand_order_errors(first_cycles, records)
    limits = (job.get("generate") or {}).get("limits")
    sanity += gemm_jobs.coverage_errors(config, cases, tuple(limits) if limits else None)
    output = job.get("output")
    if output:
        with open(output, "w") as f:
            json.dump({"seed": seed, "sim": cocotb.SIM_NAME, "stall_prob": stall_prob,
                       "config": config.to_dict(), "cycle_model": model is not None,
                       "cycles_run": end_cycle, "harness": harness,
                       "run_seconds": run_seconds, "run_cpu_seconds": run_cpu_seconds,
                       "records": records,
                       "errors": ([hung] if hung else []) + rule_errors + scoreboard.errors
                       + sanity + model_errors}, f, indent=1)
            f.write("\n")
    for r in records:
        log.info("GEMM %3d %-40s M %4d K %4d N %4d match %-5s rtl_cycles %s model_cycles %s",
                 r["index"], r["label"], r["M"], r["K"], r["N"], r["match"], r["rtl_cycles"],
                 r["model_cycles"])

    where = f"(seed {seed}, stall_prob {stall_prob})"
    assert hung is None, f"engine hung {where}: {hung}" + "".join(f"; {e}" for e in sanity)
    assert not rule_errors, f"stream rule broken {where}: " + "; ".join(rule_errors[:5])
    assert not scoreboard.errors and sum(scoreboard.mismatches) == 0, (
        f"{sum(scoreboard.mismatches)} result beats wrong {where}:\n"
        + "\n".join(scoreboard.errors[:10]))
    assert scoreboard.outstanding == 0, f"{scoreboard.outstanding} result beats missing {where}"
    assert not sanity, f"sanity checks failed {where}:\n" + "\n".join(sanity[:10])
    assert not model_errors, f"RTL and cycle model disagree {where}:\n" + "\n".join(
        model_errors[:10])
