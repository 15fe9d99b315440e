"""``python -m sim.bench``: how fast the cycle model sweeps a whole network."""

import json
import sys
import time

from hw.config import ArrayConfig, OneLineErrorParser

from .engine_model import gemm_schedule
from .topology import list_networks, read_topology

__all__ = ["main", "run"]


def _model_network(config, layers):
    cycles = 0
    for layer in layers:
        cycles += gemm_schedule(config, layer.m, layer.k, layer.n).cycles * layer.repeats
    return cycles


def run(network="resnet50", sizes=(16, 128), dataflows=("ws", "os"), repeat=5):
    """Time the model over every layer of ``network``; one record per (size, dataflow).

    The first call of each configuration compiles the numba kernels (JIT warm-up) and is
    not timed; the record holds the best of ``repeat`` timed sweeps.
    """
    layers = read_topology(network)
    records = []
    for size in sizes:
        for dataflow in dataflows:
            config = ArrayConfig(rows=size, cols=size, dataflow=dataflow)
            cycles = _model_network(config, layers)       # warm-up
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                _model_network(config, layers)
                best = min(best, time.perf_counter() - start)
            records.append({"network": network, "rows": size, "cols": size,
                            "dataflow": dataflow, "layers": len(layers),
                            "simulated_cycles": cycles, "seconds": best,
                            "cycles_per_second": cycles / best})
    return records


def main(argv=None):
    parser = OneLineErrorParser(
        prog="python -m sim.bench",
        description="Time the cycle model on every layer of a bundled network, after JIT "
                    "warm-up: the best of --repeat sweeps per array size and dataflow, and "
                    "the simulated engine cycles per second of wall time.")
    parser.add_argument("--network", default="resnet50",
                        help=f"bundled network ({', '.join(list_networks())}; default resnet50)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 128], metavar="S",
                        help="square array sizes (default: 16 128)")
    parser.add_argument("--repeat", type=int, default=5, help="timed sweeps (default: 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the records as JSON")
    args = parser.parse_args(argv)
    try:
        records = run(args.network, args.sizes, repeat=max(1, args.repeat))
    except (TypeError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"cycle model on {args.network} ({records[0]['layers']} layers), best of "
          f"{args.repeat} after JIT warm-up")
    print(f"{'array':>9} {'dataflow':>8} {'seconds':>10} {'engine cycles':>15} {'cycles/s':>12}")
    for r in records:
        print(f"{r['rows']:>4}x{r['cols']:<4} {r['dataflow']:>8} {r['seconds']:>10.5f} "
              f"{r['simulated_cycles']:>15,} {r['cycles_per_second']:>12.3g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
