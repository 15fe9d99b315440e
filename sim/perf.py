"""``python -m sim.perf``: cycles, utilization and throughput of GEMMs and networks on an engine.

Every figure comes from the cycle model (:mod:`sim.engine_model`), which the cocotb
regression checks against the RTL cycle for cycle; throughput is derived from those
cycle counts, never from a separate formula.
"""

import argparse
import collections
import csv
import json
import math
import subprocess
import sys
import time

from hw.config import (
    PNR_FPGAS,
    ArrayConfig,
    Clock,
    OneLineErrorParser,
    add_buffers_argument,
    add_config_arguments,
    config_arguments,
    config_with_buffers,
    engine_clock,
)

from .engine_model import bandwidth_limited, gemm_schedule
from .scalesim import scalesim_cycles
from .schedule import ScheduleError, schedule_gemm, sequence_cycles
from .topology import Layer, list_networks, read_topology

__all__ = ["LayerReport", "analyze", "compare_modes", "main", "CSV_COLUMNS", "resolve_clock"]

#: Columns of ``--csv``: SCALE-Sim's COMPUTE_REPORT.csv names first, then qmac's own.
CSV_COLUMNS = [
    "LayerID", "Layer", "Total Cycles", "Stall Cycles", "Overall Util %",
    "Mapping Efficiency %", "Compute Util %",
    "M", "K", "N", "Repeats", "MACs", "Load Cycles", "Compute Cycles", "Idle Cycles",
    "Drain Cycles", "MAC/s", "GOPS", "Fits Buffers",
]

# Idle cycles between a GEMM's last result and the next command, run back to back: the
# engine leaves busy the cycle after the last result and takes a command the next cycle.
GAP_BETWEEN_GEMMS = 1


class LayerReport:
    """The model's figures for one layer: the commands of its schedule
    (:func:`sim.schedule.schedule_gemm`) run back to back.

    A layer no command sequence of the engine computes (K over ``max_k`` on an engine
    that cannot carry partial sums) is modelled as one GEMM per repeat, as if the buffers
    were large enough, and flagged (``fits = False``).
    """

    def __init__(self, index, layer, config, clock_mhz, bandwidth=None, planes=None,
                 dram=None):
        self.index = index
        self.layer = layer
        planes = tuple(planes) if planes else ()
        try:
            self.schedule = schedule_gemm(config, layer.m, layer.k, layer.n,
                                          groups=layer.repeats)
            shapes = collections.Counter(self.schedule.shapes())
            self.fits = True
        except ScheduleError as error:
            self.schedule, self.unfit_reason = None, str(error)
            shapes = collections.Counter({(layer.m, layer.k, layer.n): layer.repeats})
            self.fits = False
        self.shapes = (list(self.schedule.shapes()) if self.fits
                       else [(layer.m, layer.k, layer.n)] * layer.repeats)
        self.commands = len(self.shapes)
        gaps = GAP_BETWEEN_GEMMS * (self.commands - 1)
        self.cycles, self.load, self.compute, self.idle, self.drain = 0, 0, 0, gaps, 0
        for shape, count in shapes.items():
            s = gemm_schedule(config, *shape, *planes)
            self.cycles += s.cycles * count
            self.load += s.load * count
            self.compute += s.compute * count
            self.idle += s.idle * count
            self.drain += s.drain * count
        self.cycles += gaps
        self.stall_free_cycles = self.cycles
        self.macs = layer.macs
        self.stall = 0
        self.dram = dram
        if dram is not None:
            if not self.fits:
                raise ValueError(f"layer {layer.name!r} cannot be scheduled, so its memory "
                                 f"traffic is unknown: {self.unfit_reason}")
            if planes:
                raise ValueError("--dram-bytes-per-cycle models mac and xnor engines, "
                                 "not bit planes (--planes)")
        self._derive(config, clock_mhz, planes)

    def _derive(self, config, clock_mhz, planes):
        """The figures derived from the cycle counts."""
        self.cycles = self.stall_free_cycles + self.stall
        # Utilization against the PEs' peak: one MAC per PE per cycle in the mac mode,
        # more in the packed modes (see ArrayConfig.peak_macs_per_pe).
        pes = config.rows * config.cols * config.peak_macs_per_pe(planes)
        self.macs_per_cycle = self.macs / self.cycles
        self.utilization = self.macs / (self.cycles * pes)
        self.mapping_efficiency = self.macs / (self.compute * pes)
        self.compute_utilization = self.macs / ((self.compute + self.idle) * pes)
        self.macs_per_s = self.macs / (self.cycles / (clock_mhz * 1e6))
        self.gops = 2 * self.macs_per_s / 1e9

    def set_limited_cycles(self, cycles, config, clock_mhz, planes):
        """The layer's cycles with its operands limited (``--bandwidth`` or the off-chip
        memory model), its commands run back to back: the stall is what that adds."""
        self.stall = cycles - self.stall_free_cycles
        self._derive(config, clock_mhz, planes)

    @property
    def bytes_total(self):
        """Off-chip bytes of the layer's commands (None if it cannot be scheduled)."""
        return self.schedule.bytes_total if self.schedule else None

    @property
    def bound(self):
        """With a memory bandwidth: ``"memory"`` when moving the layer's bytes at that
        bandwidth takes longer than its stall-free cycles, else ``"compute"``."""
        if self.dram is None or self.schedule is None:
            return None
        return ("memory" if self.schedule.bytes_total / self.dram[0] > self.stall_free_cycles
                else "compute")

    def as_dict(self):
        lay = self.layer
        return {
            "index": self.index, "name": lay.name, "M": lay.m, "K": lay.k, "N": lay.n,
            "repeats": lay.repeats, "macs": self.macs, "cycles": self.cycles,
            "load_cycles": self.load, "compute_cycles": self.compute,
            "idle_cycles": self.idle, "drain_cycles": self.drain, "stall_cycles": self.stall,
            "macs_per_cycle": self.macs_per_cycle,
            "utilization": self.utilization, "mapping_efficiency": self.mapping_efficiency,
            "compute_utilization": self.compute_utilization, "macs_per_s": self.macs_per_s,
            "gops": self.gops, "fits_buffers": self.fits, "commands": self.commands,
            "schedule": self.schedule.as_dict() if self.schedule else None,
            "bound": self.bound,
        }

    def csv_row(self):
        lay = self.layer
        return [self.index, lay.name, self.cycles, self.stall,
                _pct(self.utilization), _pct(self.mapping_efficiency),
                _pct(self.compute_utilization), lay.m, lay.k, lay.n, lay.repeats, self.macs,
                self.load, self.compute, self.idle, self.drain, f"{self.macs_per_s:.6g}",
                f"{self.gops:.6g}", int(self.fits)]


def _pct(x):
    return f"{100 * x:.4f}"


def _totals(reports, config, clock_mhz, planes=None):
    cycles = sum(r.cycles for r in reports) + GAP_BETWEEN_GEMMS * (len(reports) - 1)
    macs = sum(r.macs for r in reports)
    compute = sum(r.compute for r in reports)
    idle = sum(r.idle for r in reports) + GAP_BETWEEN_GEMMS * (len(reports) - 1)
    pes = config.rows * config.cols * config.peak_macs_per_pe(planes)
    macs_per_s = macs / (cycles / (clock_mhz * 1e6))
    return {
        "layers": len(reports), "macs": macs, "cycles": cycles, "macs_per_cycle": macs / cycles,
        "load_cycles": sum(r.load for r in reports), "compute_cycles": compute,
        "idle_cycles": idle, "drain_cycles": sum(r.drain for r in reports),
        "stall_cycles": sum(r.stall for r in reports),
        "utilization": macs / (cycles * pes), "mapping_efficiency": macs / (compute * pes),
        "compute_utilization": macs / ((compute + idle) * pes),
        "macs_per_s": macs_per_s, "gops": 2 * macs_per_s / 1e9,
        "seconds": cycles / (clock_mhz * 1e6),
        "commands": sum(r.commands for r in reports),
        "bytes_read": {key: sum(r.schedule.bytes_read[key] for r in reports if r.schedule)
                       for key in ("act", "wgt", "par")},
        "bytes_written": sum(r.schedule.bytes_written for r in reports if r.schedule),
        "bytes_total": sum(r.bytes_total for r in reports if r.schedule),
        "memory_bound_layers": sum(r.bound == "memory" for r in reports),
    }


class _Progress:
    """A one-line progress bar on stderr, shown only on a terminal (or when forced)."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.done = total, enabled, 0
        self.start = time.perf_counter()

    def step(self, label):
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                         f"{elapsed:6.1f}s {label[:24]:<24}")
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")


def analyze(config, layers, clock_mhz=1000.0, bandwidth=None, progress=False, planes=None,
            dram=None):
    """Model every layer; return ``(reports, totals)``.

    ``planes``: ``(a_planes, w_planes)`` of every GEMM on a bit-serial engine (default: all
    of ``a_bits`` and ``w_bits``). ``dram``: ``(bytes_per_cycle, latency)`` of off-chip
    memory (:mod:`sim.schedule`'s memory model), or None for operands always there.
    """
    config = config if isinstance(config, ArrayConfig) else ArrayConfig(**config)
    bar = _Progress(len(layers), progress)
    reports = []
    for i, layer in enumerate(layers):
        reports.append(LayerReport(i, layer, config, clock_mhz, bandwidth, planes, dram))
        bar.step(layer.name)
    bar.close()
    planes = tuple(planes) if planes else ()
    if dram is not None:
        _limited_cycles(reports, config, clock_mhz, planes,
                        lambda shapes: sequence_cycles(config, shapes, *dram))
    elif bandwidth is not None:
        _limited_cycles(reports, config, clock_mhz, planes,
                        lambda shapes: bandwidth_limited(
                            config, [(*shape, *planes) for shape in shapes], bandwidth))
    return reports, _totals(reports, config, clock_mhz, planes)


def _limited_cycles(reports, config, clock_mhz, planes, run):
    """Every layer's commands, the whole network back to back, in one run of the cycle
    model with limited operands (``run``: shapes to records). A command's count depends
    on the one before it (a stream's one-beat buffer may already hold the next command's
    first beat), so each layer's cycles are cut from the one sequence (its first command
    taken to its last result), and with the gaps they add up to the sequence's."""
    records = run([shape for r in reports for shape in r.shapes])
    start = 0
    for r in reports:
        first, last = records[start], records[start + r.commands - 1]
        r.set_limited_cycles(last["last"] - first["first"] + 1, config, clock_mhz, planes)
        start += r.commands


def resolve_clock(config, clock_mhz=None, post_route=False, fpga="ecp5-85k", log=None):
    """The :class:`~hw.config.Clock` of throughput figures for the engine ``config``.

    ``clock_mhz`` given: that clock. Otherwise the post-route Fmax of ``config`` on
    ``fpga`` when ``python -m hw.synth --pnr`` has cached one; with ``post_route``, that
    command is run first (in a child process, minutes for an 8x8 engine; its progress
    goes to ``log``, default stderr) when nothing is cached. Otherwise the nominal clock.

    Raises
    ------
    RuntimeError
        If ``post_route`` and the place and route fails or the engine does not fit.
    """
    if clock_mhz is not None:
        return Clock(float(clock_mhz), "given")
    clock = engine_clock(config, fpga)
    if clock.source == "nominal" and post_route:
        family, device = PNR_FPGAS[fpga]
        command = ["-m", "hw.synth", "--pnr", family, "--device", device,
                   *config_arguments(config)]
        proc = subprocess.run([sys.executable, *command], stdout=log or sys.stderr,
                              stderr=subprocess.STDOUT, check=False)
        clock = engine_clock(config, fpga)
        if clock.source == "nominal":
            raise RuntimeError(f"no post-route Fmax for the {config.default_name} engine on "
                               f"{fpga}: `python {' '.join(command)}` exited with status "
                               f"{proc.returncode}")
    return clock


def compare_modes(config, m, k, n, pack=None, bits=range(1, 9), clock_mhz=None,
                  post_route=False, fpga="ecp5-85k"):
    """What each bit width buys on one array: rows for int8 ``mac``, ``bitserial`` with
    ``k``-bit activations and weights for each ``k`` in ``bits``, and binary ``xnor``.

    The array shape, dataflow and limits come from ``config``; the packed modes use
    ``pack`` elements per PE word (default ``config.pack`` when it is packed, else 8).
    Each row: ``mode``, ``bits``, ``pack``, ``cycles`` of the stall-free GEMM, ``macs_per_cycle``,
    ``peak_macs_per_cycle`` (all PEs) and ``utilization`` of that peak; ``clock`` (each
    engine's own, see :func:`resolve_clock`) and ``macs_per_s`` at that clock.
    """
    pack = pack or (config.pack if config.mode.default_pack != 1 else 8)
    base = dict(rows=config.rows, cols=config.cols, dataflow=config.dataflow,
                requant=config.requant, threshold=config.threshold, acc_bits=config.acc_bits,
                block_rows=config.block_rows, max_m=config.max_m, max_n=config.max_n,
                max_k=min(config.max_k, 4096))
    configs = [("mac", 8, ArrayConfig(**base, pe_mode="mac", a_bits=8, w_bits=8))]
    widest = max(bits)
    configs += [("bitserial", b, ArrayConfig(**base, pe_mode="bitserial", pack=pack,
                                             a_bits=widest, w_bits=widest)) for b in bits]
    configs.append(("xnor", 1, ArrayConfig(**base, pe_mode="xnor", pack=pack)))
    rows = []
    clocks = {}
    for mode, width, cfg in configs:
        planes = (width, width) if cfg.mode.has_planes else None
        s = gemm_schedule(cfg, m, k, n, *(planes or ()))
        peak = cfg.rows * cfg.cols * cfg.peak_macs_per_pe(planes)
        if cfg not in clocks:
            clocks[cfg] = resolve_clock(cfg, clock_mhz, post_route, fpga)
        clock = clocks[cfg]
        rows.append({"mode": mode, "bits": width, "pack": cfg.pack, "M": m, "K": k, "N": n,
                     "cycles": s.cycles, "macs_per_cycle": s.macs / s.cycles,
                     "peak_macs_per_cycle": peak, "utilization": s.macs / (s.cycles * peak),
                     "clock": clock.to_dict(),
                     "macs_per_s": s.macs / s.cycles * clock.mhz * 1e6})
    return rows


def _scalesim_columns(layer, config):
    out = {}
    for df in ("os", "ws", "is"):
        r = scalesim_cycles(layer, config.rows, config.cols, df)
        out[df] = (r["compute_cycles"] * layer.repeats, r["utilization"])
    return out


def _print_table(reports, totals, config, clock, scalesim, out, planes=None):
    name_w = max([len("layer")] + [len(r.layer.name) for r in reports])
    print(f"clock: {clock.describe()}", file=out)
    head = (f"{'#':>3} {'layer':<{name_w}} {'M':>7} {'K':>6} {'N':>6} {'rep':>4} "
            f"{'cycles':>11} {'load':>8} {'compute':>11} {'idle':>9} {'drain':>7} "
            f"{'MAC/cyc':>8} {'util':>6} {'GOPS':>8} {'cmds':>5} {'MB moved':>9} {'MAC/B':>7}")
    dram = any(r.dram is not None for r in reports)
    if dram:
        head += f" {'stall':>9} {'bound':>7}"
    if scalesim:
        head += f" {'SS-OS':>11} {'SS-WS':>11} {'SS-IS':>11}"
    print(head, file=out)
    for r in reports:
        lay = r.layer
        line = (f"{r.index:>3} {lay.name:<{name_w}} {lay.m:>7} {lay.k:>6} {lay.n:>6} "
                f"{lay.repeats:>4} {r.cycles:>11} {r.load:>8} {r.compute:>11} {r.idle:>9} "
                f"{r.drain:>7} {r.macs_per_cycle:>8.1f} {100 * r.utilization:>5.1f}% "
                f"{r.gops:>8.2f} {r.commands:>5}")
        if r.schedule:
            line += (f" {r.schedule.bytes_total / 1e6:>9.3f} "
                     f"{r.schedule.arithmetic_intensity:>7.1f}")
        else:
            line += f" {'-':>9} {'-':>7}"
        if dram:
            line += f" {r.stall:>9} {r.bound:>7}"
        if scalesim:
            ss = _scalesim_columns(lay, config)
            line += "".join(f" {ss[df][0]:>11}" for df in ("os", "ws", "is"))
        if not r.fits:
            line += "  (exceeds buffers)"
        print(line, file=out)
    print(f"{'':>3} {'total':<{name_w}} {'':>7} {'':>6} {'':>6} {'':>4} "
          f"{totals['cycles']:>11} {totals['load_cycles']:>8} {totals['compute_cycles']:>11} "
          f"{totals['idle_cycles']:>9} {totals['drain_cycles']:>7} "
          f"{totals['macs_per_cycle']:>8.1f} {100 * totals['utilization']:>5.1f}% "
          f"{totals['gops']:>8.2f}", file=out)
    on = f" on {planes[0]}x{planes[1]} bit planes" if planes else ""
    print(f"{config.describe()} engine{on} at {clock.describe()}: "
          f"{totals['macs']:,} MACs in {totals['cycles']:,} cycles "
          f"({1e3 * totals['seconds']:.3f} ms), utilization {100 * totals['utilization']:.2f}%, "
          f"{totals['macs_per_s'] / 1e9:.2f} GMAC/s = {totals['gops']:.2f} GOPS", file=out)
    print(f"{totals['commands']:,} engine commands; off-chip bytes read "
          f"{totals['bytes_read']['act']:,} activations + {totals['bytes_read']['wgt']:,} "
          f"weights + {totals['bytes_read']['par']:,} parameters, written "
          f"{totals['bytes_written']:,} ({totals['bytes_total'] / 1e6:.2f} MB in all)",
          file=out)
    if totals["stall_cycles"]:
        print(f"input-bandwidth stalls: {totals['stall_cycles']:,} cycles", file=out)
    if dram:
        print(f"memory-bound layers: {totals['memory_bound_layers']} of {len(reports)}",
              file=out)
    unfit = [r for r in reports if not r.fits]
    if unfit:
        print(f"note: {len(unfit)} layer(s) cannot be split into commands that fit the "
              f"engine ({unfit[0].unfit_reason}); their cycles are modelled as if the "
              f"buffers were large enough", file=out)


DESCRIPTION = """\
Cycle counts, utilization and throughput of GEMMs and whole networks on a qmac engine.

The workload is one GEMM (--gemm M,K,N), a SCALE-Sim topology CSV (--topology FILE, conv
form "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num
Filter, Strides," or GEMM form "Layer, M, N, K,"), a bundled network (--network NAME), or
the engine layers of a full-integer TFLite model (--tflite MODEL: each layer as the
commands that python -m nets.run sends to the engine; a depthwise layer's utilization
counts only its useful MACs).
A conv layer is the GEMM M = output pixels, K = filter height x width x channels,
N = filters (SCALE-Sim's IFMAP sizes already include any padding).

Cycles are the engine's exact count from a GEMM's command to its last result (the cycle
model agrees with the RTL cycle for cycle), split into load (before the first row or
step enters the array), compute (cycles in which one enters), idle (gaps between them)
and drain (after the last one). Utilization = MACs / (cycles x rows x cols x the PEs'
peak MACs per cycle: 1 for mac, pack for xnor, pack / (a_planes x w_planes) for
bitserial); throughput = MACs / (cycles / clock); GOPS counts a MAC as two operations.
The engine is any configuration of hw.build (--pe-mode, --pack, ...); a bit-serial
engine runs every layer with --planes A,W bit planes (default: all of them).

--compare-modes runs one --gemm on int8 mac, bitserial with k-bit operands for k = 1..8
and binary xnor, all on the configured array, and prints MACs per cycle and cycles.

--scalesim adds SCALE-Sim v2's compute cycles for its OS, WS and IS dataflows on the
same array (unlimited bandwidth), for comparison.
"""


def _tflite_layers(path, config):
    """A TFLite model's engine commands (nets is imported only for this flag: it needs the
    model importer and the lowering, which sit above sim in the layering of DESIGN.md)."""
    from nets.lower import perf_layers
    from nets.tflite_import import load_tflite

    return perf_layers(load_tflite(path), config)


def _parse_gemm(text):
    parts = text.replace("x", ",").split(",")
    try:
        m, k, n = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gemm must be M,K,N (three positive integers), "
                                         f"not {text!r}") from None
    if min(m, k, n) < 1:
        raise argparse.ArgumentTypeError(f"--gemm must be M,K,N (three positive integers), "
                                         f"not {text!r}")
    return m, k, n


def _parse_planes(text):
    try:
        a, w = (int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--planes must be A,W (two positive integers), "
                                         f"not {text!r}") from None
    if min(a, w) < 1:
        raise argparse.ArgumentTypeError(f"--planes must be A,W (two positive integers), "
                                         f"not {text!r}")
    return a, w


def _positive_float(name):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, not {text!r}")
        return value
    return parse


def main(argv=None):
    """``python -m sim.perf``.

    Long (why): most of it is the declaration of the command-line flags and their help.
    """
    parser = OneLineErrorParser(prog="python -m sim.perf", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    work = parser.add_mutually_exclusive_group(required=True)
    work.add_argument("--gemm", type=_parse_gemm, metavar="M,K,N", help="one GEMM")
    work.add_argument("--topology", metavar="FILE", help="a SCALE-Sim topology CSV")
    work.add_argument("--network", metavar="NAME",
                      help=f"a bundled network: {', '.join(list_networks())}")
    work.add_argument("--tflite", metavar="MODEL",
                      help="a full-integer TFLite model: its engine layers as nets.lower "
                           "splits them into commands (see python -m nets.run)")
    parser.add_argument("--clock-mhz", type=_positive_float("--clock-mhz"), default=None,
                        metavar="F", help="clock for MAC/s and GOPS (default: the engine's "
                        "post-route Fmax on --fpga if `python -m hw.synth --pnr` cached one, "
                        "else a nominal 1000)")
    parser.add_argument("--post-route", action="store_true",
                        help="use the post-route Fmax, placing and routing the engine first "
                             "(python -m hw.synth --pnr, minutes) if none is cached")
    parser.add_argument("--fpga", choices=tuple(PNR_FPGAS), default="ecp5-85k",
                        help="device whose post-route Fmax is used (default: ecp5-85k)")
    parser.add_argument("--bandwidth", type=_positive_float("--bandwidth"), metavar="B",
                        help="limit the host to B operand beats per cycle (activations, "
                             "weights and parameters together) and report the stall cycles; "
                             "simulated cycle by cycle, so slower")
    parser.add_argument("--dram-bytes-per-cycle", type=_positive_float("--dram-bytes-per-cycle"),
                        metavar="B", help="off-chip memory delivering B bytes per cycle "
                        "(reads and writes together): whole-network cycles with the engine's "
                        "memory stalls, and per layer whether it is memory- or compute-bound "
                        "(see sim.schedule; the RTL runs the same valid patterns)")
    parser.add_argument("--dram-latency", type=int, default=0, metavar="L",
                        help="with --dram-bytes-per-cycle: cycles from a command to its first "
                             "operand bytes (default 0)")
    add_buffers_argument(parser)
    parser.add_argument("--scalesim", action="store_true",
                        help="also print SCALE-Sim v2's compute cycles (OS, WS, IS)")
    parser.add_argument("--planes", type=_parse_planes, metavar="A,W",
                        help="bit-serial engines: activation and weight bit planes of every "
                             "GEMM (default: --a-bits,--w-bits)")
    parser.add_argument("--compare-modes", action="store_true",
                        help="with --gemm: MACs per cycle and cycles of int8 mac, k-bit "
                             "bitserial (k = 1..8) and binary xnor on the configured array")
    parser.add_argument("--csv", metavar="FILE", help="write one row per layer as CSV")
    parser.add_argument("--json", metavar="FILE", help="write the layers and totals as JSON")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar (default: when stderr is a terminal)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_with_buffers(args)
        if args.dram_latency < 0:
            raise ValueError(f"--dram-latency must be a non-negative integer, not "
                             f"{args.dram_latency}")
        if args.dram_bytes_per_cycle and args.bandwidth:
            raise ValueError("--bandwidth and --dram-bytes-per-cycle both limit the operands; "
                             "give one")
        if args.gemm:
            layers = [Layer.from_gemm("gemm", *args.gemm)]
        elif args.tflite:
            layers = _tflite_layers(args.tflite, config)
        else:
            layers = read_topology(args.topology or args.network)
        if args.planes and not config.mode.has_planes:
            raise ValueError(f"--planes needs --pe-mode bitserial, not {config.pe_mode}")
        if args.planes:
            for name, value, top in (("A", args.planes[0], config.a_bits),
                                     ("W", args.planes[1], config.w_bits)):
                if value > top:
                    raise ValueError(f"--planes {name} must be at most the engine's "
                                     f"{'a' if name == 'A' else 'w'}_bits ({top}), not {value}")
        if args.compare_modes and not args.gemm:
            raise ValueError("--compare-modes needs --gemm M,K,N")
        if args.post_route and args.clock_mhz is not None:
            raise ValueError("--post-route and --clock-mhz both choose the clock; give one")
    except (TypeError, ValueError, OSError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    try:
        if args.compare_modes:
            return _print_modes(config, args.gemm, args)
        clock = resolve_clock(config, args.clock_mhz, args.post_route, args.fpga)
    except RuntimeError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    dram = ((args.dram_bytes_per_cycle, args.dram_latency) if args.dram_bytes_per_cycle
            else None)
    try:
        reports, totals = analyze(config, layers, clock.mhz, args.bandwidth, progress,
                                  args.planes, dram)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    _print_table(reports, totals, config, clock, args.scalesim, sys.stdout, args.planes)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for r in reports:
                writer.writerow(r.csv_row())
    if args.json:
        doc = {"config": config.to_dict(), "clock_mhz": clock.mhz, "clock": clock.to_dict(),
               "bandwidth_beats_per_cycle": args.bandwidth,
               "dram_bytes_per_cycle": args.dram_bytes_per_cycle,
               "dram_latency": args.dram_latency,
               "planes": list(args.planes) if args.planes else None,
               "layers": [r.as_dict() for r in reports], "total": totals}
        if args.scalesim:
            for r, d in zip(reports, doc["layers"], strict=True):
                d["scalesim"] = {df: {"compute_cycles": c, "utilization": u}
                                 for df, (c, u) in _scalesim_columns(r.layer, config).items()}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0


def _print_modes(config, gemm, args):
    m, k, n = gemm
    rows = compare_modes(config, m, k, n, clock_mhz=args.clock_mhz,
                         post_route=args.post_route, fpga=args.fpga)
    print(f"{m}x{k}x{n} GEMM on a {config.rows}x{config.cols} {config.dataflow} array "
          f"(packed modes: {rows[-1]['pack']} elements per PE word); GMAC/s at each engine's "
          f"clock")
    print(f"{'mode':<10} {'bits':>4} {'cycles':>10} {'MAC/cycle':>10} {'peak':>8} "
          f"{'util':>6} {'GMAC/s':>8}  clock")
    for r in rows:
        label = {"mac": "int8 mac", "xnor": "xnor"}.get(r["mode"], "bitserial")
        clock = Clock(**r["clock"])
        print(f"{label:<10} {r['bits']:>4} {r['cycles']:>10} {r['macs_per_cycle']:>10.1f} "
              f"{r['peak_macs_per_cycle']:>8.1f} {100 * r['utilization']:>5.1f}% "
              f"{r['macs_per_s'] / 1e9:>8.1f}  {clock.describe()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gemm": [m, k, n], "modes": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
