"""``python -m hw.bench``: measured throughput of generated engines, in RTL simulation."""

import json
import sys

from ..config import PNR_FPGAS, ArrayConfig, Clock, OneLineErrorParser, PnrTarget, engine_clock

__all__ = ["main", "run", "throughput_cases", "mode_cases", "bench_clock", "testbench_speed"]

DESCRIPTION = """\
Measure the throughput of generated engines in RTL simulation (Verilator by default):
each case is one stall-free GEMM, counted from its command to its last result by the
cocotb testbench, bit-exact against the golden model, with the cycle model's prediction
printed beside the count.

Default: for each square array size S and both dataflows, the int8 GEMM with M = 256
and K = N = 4 x S (every dimension tiled). --modes: on one 8x8 weight-stationary array,
the same 256 x 256 x 32 GEMM on int8 mac, bit-serial engines at k = 1, 2, 4, 8 bit
planes (pack 8) and a binary xnor engine (pack 8).

Utilization = MACs / (cycles x S x S x the PEs' peak MACs per cycle: 1 for mac, pack
for xnor, pack / k^2 for bit-serial): the fraction of the peak that does useful MACs.

GOPS (2 operations per MAC) = MACs per cycle x clock. The clock of each engine is its
post-route Fmax on --fpga (default ecp5-85k) when `python -m hw.synth --pnr` has cached
one, else a nominal 1000 MHz; --post-route places and routes every engine that has none
first (minutes each); --clock-mhz sets one clock for all. Each line names its clock.

--testbench: instead, the speed of the RTL testbench itself, in engine cycles per second
of wall-clock time, for each --harness (memory: the memory-backed wrapper that hw.regress
uses by default; driver: cocotb drives every stream in every cycle) on the 8x8 int8
weight-stationary engine: one GEMM M x 32 x 32 at M = 512 and at M = 4095 (--m-pair),
with --stall-prob gaps; the figure is the difference of the two runs' cycles over the
difference of their simulation times (so start-up, loading and checking cancel out), in
wall-clock seconds and in CPU seconds of the simulator process (the steadier figure on a
shared machine).
"""

#: The two M of the testbench-speed GEMMs (K = N = 32 on an 8x8 engine).
TESTBENCH_M = (512, 4095)


def throughput_cases(sizes=(4, 8, 16), dataflows=("ws", "os"), m=256):
    """``(label, config, (M, K, N), planes)``: the int8 GEMM ``M x 4S x 4S`` per size, dataflow."""
    cases = []
    for size in sizes:
        for dataflow in dataflows:
            k = n = 4 * size
            config = ArrayConfig(rows=size, cols=size, dataflow=dataflow, max_m=max(m, 4096),
                                 max_k=max(k, 256), max_n=max(n, 256))
            cases.append((f"int8 mac {dataflow}", config, (m, k, n), None))
    return cases


def mode_cases(size=8, shape=(256, 256, 32), pack=8):
    """The same GEMM on int8 mac, bit-serial at k = 1, 2, 4, 8 planes, and binary xnor."""
    base = dict(rows=size, cols=size, dataflow="ws", max_m=4096, max_k=4096, max_n=256)
    cases = [("int8 mac", ArrayConfig(**base), shape, None)]
    bitserial = ArrayConfig(**base, pe_mode="bitserial", pack=pack)
    cases += [(f"bitserial k={k}", bitserial, shape, (k, k)) for k in (1, 2, 4, 8)]
    cases.append(("xnor", ArrayConfig(**base, pe_mode="xnor", pack=pack), shape, None))
    return cases


def bench_clock(config, clock_mhz=None, post_route=False, fpga="ecp5-85k", progress=None):
    """The :class:`~hw.config.Clock` for ``config``'s throughput: ``clock_mhz`` if given,
    else its cached post-route Fmax on ``fpga`` (placed and routed first when
    ``post_route`` and none is cached), else the nominal clock."""
    if clock_mhz is not None:
        return Clock(float(clock_mhz), "given")
    clock = engine_clock(config, fpga)
    if clock.source == "nominal" and post_route:
        from .pnr import place_and_route
        family, device = PNR_FPGAS[fpga]
        record = place_and_route(config, "engine", PnrTarget(family, device),
                                 progress=progress)
        if not record["fits"]:
            raise RuntimeError(f"the {config.default_name} engine has no post-route Fmax on "
                               f"{fpga}: {record['reason']}")
        clock = engine_clock(config, fpga)
    return clock


def run(cases, sim="verilator", seed=0, progress=None, clock_mhz=None, post_route=False,
        fpga="ecp5-85k", pnr_progress=None):
    """Run each case's GEMM stall-free in the RTL simulator; one record per case.

    Records hold the RTL's measured cycle count (command taken to last result taken), the
    cycle model's prediction for it, the utilization of the measured count, and GOPS at
    the engine's clock (:func:`bench_clock`), which the record names.
    """
    from .regress import run_regression
    records = []
    for label, config, (m, k, n), planes in cases:
        entry = {"shape": [m, k, n]}
        if planes:
            entry["planes"] = list(planes)
        result = run_regression(config, sim, seed=seed, gemms=0, stall_prob=0.0,
                                explicit=[entry])
        if not result.ok:
            raise RuntimeError(f"the {config.default_name} engine failed its GEMM ({label}); "
                               f"see {result.work_dir}")
        rec = result.records[0]
        clock = bench_clock(config, clock_mhz, post_route, fpga, pnr_progress)
        macs = m * k * n
        pes = config.rows * config.cols
        records.append({
            "label": label, "name": config.default_name, "rows": config.rows,
            "cols": config.cols, "dataflow": config.dataflow, "pe_mode": config.pe_mode,
            "pack": config.pack, "planes": list(planes) if planes else None,
            "M": m, "K": k, "N": n, "macs": macs, "rtl_cycles": rec["rtl_cycles"],
            "model_cycles": rec["model_cycles"], "macs_per_cycle": macs / rec["rtl_cycles"],
            "utilization": macs / (rec["rtl_cycles"] * pes * config.peak_macs_per_pe(planes)),
            "simulator": sim, "clock": clock.to_dict(),
            "gops": 2 * macs / rec["rtl_cycles"] * clock.mhz / 1e3,
        })
        if progress:
            progress(records[-1])
    return records


def testbench_speed(sim="verilator", harness="memory", size=8, m_pair=TESTBENCH_M, k=32, n=32,
                    stall_prob=0.0, seed=0):
    """Engine cycles per second of the RTL testbench: one record.

    Runs ``hw.regress``'s testbench on one GEMM ``M x k x n`` for each M of ``m_pair``
    and divides the difference of the cycles simulated by the difference of the
    simulation's run times (as the testbench measures them: from reset to the last
    result, without loading the job or checking the cycle model).
    """
    from .regress import run_regression
    config = ArrayConfig(rows=size, cols=size, dataflow="ws", max_m=4096, max_k=max(k, 256),
                         max_n=max(n, 256))
    runs = []
    for m in m_pair:
        result = run_regression(config, sim, seed=seed, gemms=0, stall_prob=stall_prob,
                                explicit=[{"shape": [m, k, n]}], harness=harness)
        if not result.ok:
            raise RuntimeError(f"the {config.default_name} engine failed its {m}x{k}x{n} GEMM "
                               f"in the {harness} harness; see {result.work_dir}")
        runs.append({"M": m, "cycles": result.report["cycles_run"],
                     "rtl_cycles": result.records[0]["rtl_cycles"],
                     "seconds": result.report["run_seconds"],
                     "cpu_seconds": result.report["run_cpu_seconds"],
                     "wall_seconds": result.result.test_seconds})
    cycles = runs[1]["cycles"] - runs[0]["cycles"]
    seconds = runs[1]["seconds"] - runs[0]["seconds"]
    cpu_seconds = runs[1]["cpu_seconds"] - runs[0]["cpu_seconds"]
    return {"simulator": sim, "harness": harness, "name": config.default_name, "K": k, "N": n,
            "stall_prob": stall_prob, "runs": runs, "cycles": cycles, "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "cycles_per_second": cycles / seconds if seconds > 0 else None,
            "cycles_per_cpu_second": cycles / cpu_seconds if cpu_seconds > 0 else None}


def _testbench_main(args, parser):
    print(f"{'simulator':<10} {'harness':<8} {'M':>11} {'cycles':>9} {'seconds':>9} "
          f"{'cycles/s':>10} {'CPU s':>9} {'cycles/CPU s':>12}", flush=True)
    records = []
    for sim in args.sims:
        for harness in args.harnesses:
            try:
                r = testbench_speed(sim, harness, m_pair=tuple(args.m_pair),
                                    stall_prob=args.stall_prob)
            except RuntimeError as error:
                parser.exit(1, f"{parser.prog}: error: {error}\n")
            records.append(r)
            rate, cpu_rate = r["cycles_per_second"], r["cycles_per_cpu_second"]
            print(f"{sim:<10} {harness:<8} {r['runs'][0]['M']:>5}-{r['runs'][1]['M']:<5} "
                  f"{r['cycles']:>9} {r['seconds']:>9.3f} "
                  f"{'n/a' if rate is None else f'{rate:,.0f}':>10} {r['cpu_seconds']:>9.3f} "
                  f"{'n/a' if cpu_rate is None else f'{cpu_rate:,.0f}':>12}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return 0


def _print(r):
    print(f"{r['label']:<16} {r['rows']:>3}x{r['cols']:<3} {r['dataflow']:>4} {r['M']:>5} "
          f"{r['K']:>5} {r['N']:>5} {r['rtl_cycles']:>10} {str(r['model_cycles']):>12} "
          f"{r['macs_per_cycle']:>10.1f} {100 * r['utilization']:>10.2f}% {r['gops']:>8.2f}  "
          f"{Clock(**r['clock']).describe()}", flush=True)


def main(argv=None):
    import argparse
    parser = OneLineErrorParser(prog="python -m hw.bench", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16], metavar="S",
                        help="array sizes of the int8 throughput cases (default: 4 8 16; at "
                             "most 64)")
    parser.add_argument("--m", type=int, default=256, help="M of the GEMM (default: 256)")
    parser.add_argument("--modes", action="store_true",
                        help="instead, compare the PE modes and bit widths on one 8x8 array")
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                        help="simulator (default: verilator)")
    parser.add_argument("--json", metavar="FILE", help="also write the records as JSON")
    parser.add_argument("--testbench", action="store_true",
                        help="instead, measure the RTL testbench's speed in engine cycles per "
                             "second (8x8 int8 ws engine; see above)")
    parser.add_argument("--harnesses", nargs="+", choices=("memory", "driver"),
                        default=["memory", "driver"],
                        help="with --testbench: harnesses to measure (default: both)")
    parser.add_argument("--sims", nargs="+", choices=("verilator", "icarus"),
                        default=["verilator", "icarus"],
                        help="with --testbench: simulators to measure (default: both)")
    parser.add_argument("--m-pair", type=int, nargs=2, default=list(TESTBENCH_M),
                        metavar=("M1", "M2"),
                        help="with --testbench: the two M whose difference is timed "
                             f"(default: {TESTBENCH_M[0]} {TESTBENCH_M[1]}; at most 4096)")
    parser.add_argument("--stall-prob", type=float, default=0.0, metavar="P",
                        help="with --testbench: valid and ready gap probability (default 0)")
    parser.add_argument("--clock-mhz", type=float, default=None, metavar="F",
                        help="one clock for every GOPS figure (default: each engine's cached "
                             "post-route Fmax, else a nominal 1000)")
    parser.add_argument("--post-route", action="store_true",
                        help="place and route (python -m hw.synth --pnr) every engine that has "
                             "no cached post-route Fmax first")
    parser.add_argument("--fpga", choices=tuple(PNR_FPGAS), default="ecp5-85k",
                        help="device of the post-route Fmax (default: ecp5-85k)")
    args = parser.parse_args(argv)
    if args.clock_mhz is not None and not args.clock_mhz > 0:
        parser.error(f"--clock-mhz must be a positive number, not {args.clock_mhz:g}")
    if args.clock_mhz is not None and args.post_route:
        parser.error("--post-route and --clock-mhz both choose the clock; give one")
    if any(not 1 <= s <= 64 for s in args.sizes):
        parser.error(f"--sizes must be in 1..64, not {args.sizes}")
    if args.m < 1:
        parser.error(f"--m must be positive, not {args.m}")
    if args.testbench:
        first, second = args.m_pair
        if not 1 <= first < second <= 4096:
            parser.error(f"--m-pair must be two increasing M in 1..4096, not {first} {second}")
        if not 0.0 <= args.stall_prob < 1.0:
            parser.error(f"--stall-prob must be in [0, 1), not {args.stall_prob:g}")
        return _testbench_main(args, parser)
    cases = (mode_cases(shape=(args.m, 256, 32)) if args.modes
             else throughput_cases(args.sizes, m=args.m))
    print(f"{'case':<16} {'array':>7} {'flow':>4} {'M':>5} {'K':>5} {'N':>5} "
          f"{'rtl cycles':>10} {'model cycles':>12} {'MAC/cycle':>10} {'utilization':>11} "
          f"{'GOPS':>8}  clock", flush=True)
    say = lambda line: print(f"{parser.prog}: {line}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        records = run(cases, sim=args.sim, progress=_print, clock_mhz=args.clock_mhz,
                      post_route=args.post_route, fpga=args.fpga, pnr_progress=say)
    except RuntimeError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
