"""``python -m hw.bench``: measured throughput of generated engines, in RTL simulation."""

import json
import sys

from ..config import ArrayConfig, OneLineErrorParser

__all__ = ["main", "run", "throughput_cases", "mode_cases"]

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
"""


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


def run(cases, sim="verilator", seed=0, progress=None):
    """Run each case's GEMM stall-free in the RTL simulator; one record per case.

    Records hold the RTL's measured cycle count (command taken to last result taken), the
    cycle model's prediction for it, and the utilization of the measured count.
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
        macs = m * k * n
        pes = config.rows * config.cols
        records.append({
            "label": label, "name": config.default_name, "rows": config.rows,
            "cols": config.cols, "dataflow": config.dataflow, "pe_mode": config.pe_mode,
            "pack": config.pack, "planes": list(planes) if planes else None,
            "M": m, "K": k, "N": n, "macs": macs, "rtl_cycles": rec["rtl_cycles"],
            "model_cycles": rec["model_cycles"], "macs_per_cycle": macs / rec["rtl_cycles"],
            "utilization": macs / (rec["rtl_cycles"] * pes * config.peak_macs_per_pe(planes)),
            "simulator": sim,
        })
        if progress:
            progress(records[-1])
    return records


def _print(r):
    print(f"{r['label']:<16} {r['rows']:>3}x{r['cols']:<3} {r['dataflow']:>4} {r['M']:>5} "
          f"{r['K']:>5} {r['N']:>5} {r['rtl_cycles']:>10} {str(r['model_cycles']):>12} "
          f"{r['macs_per_cycle']:>10.1f} {100 * r['utilization']:>10.2f}%", flush=True)


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
    args = parser.parse_args(argv)
    if any(not 1 <= s <= 64 for s in args.sizes):
        parser.error(f"--sizes must be in 1..64, not {args.sizes}")
    if args.m < 1:
        parser.error(f"--m must be positive, not {args.m}")
    cases = (mode_cases(shape=(args.m, 256, 32)) if args.modes
             else throughput_cases(args.sizes, m=args.m))
    print(f"{'case':<16} {'array':>7} {'flow':>4} {'M':>5} {'K':>5} {'N':>5} "
          f"{'rtl cycles':>10} {'model cycles':>12} {'MAC/cycle':>10} {'utilization':>11}",
          flush=True)
    records = run(cases, sim=args.sim, progress=_print)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
