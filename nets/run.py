"""``python -m nets.run``: a network on qmac, in golden, the cycle model or the RTL.

The network is a TFLite int8 model or a graph saved by :func:`nets.save_graph` (the study's
low-bit networks); each engine op runs on the engine given by the flags or, with
``--derive-engines``, on the engine that :func:`nets.engines_for` derives for it.
"""

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.config import ArrayConfig, OneLineErrorParser, add_config_arguments, config_from_args
from sim.engine_model import gemm_schedule
from sim.perf import GAP_BETWEEN_GEMMS

from .execute import run as run_graph
from .lower import ENGINE_OPS, LoweringError, engine_layer_output, engines_for, plan_network

__all__ = ["LayerResult", "NetworkRun", "SIMS", "main", "run_network"]

SIMS = ("golden", "model", "verilator", "icarus")

DESCRIPTION = """\
Run a full-integer TensorFlow Lite model (int8 activations and weights), or an integer
graph saved by nets.save_graph (GRAPH.npz: e.g. the study's low-bit networks, written by
python -m nets.study --graphs DIR), through qmac.

--sim golden: the whole model in qmac's golden model, op by op exactly as TensorFlow
  Lite's reference kernels compute it.
--sim model: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (mac engine), QMAC_XNOR_*
  (xnor engine) and QMAC_BITSERIAL_* (bitserial engine) run as the engine computes them
  (GEMM commands that fit its buffers, the integer requantizer or threshold compares); the
  other ops stay on the host in golden. Cycles per layer come from the cycle model.
--sim verilator / icarus: as model, and every engine command of the first --images
  images also runs on the generated RTL (the cocotb regression harness, no stalls by
  default): each must be bit-exact with golden and take the cycle model's cycle count.

Each engine layer's output is also compared with golden's TFLite-exact output of the
same op on the same input ("vs TFLite": differing elements). Convolutions and qmac's own
ops agree by construction; an int8 FULLY_CONNECTED may differ in rare elements because
TensorFlow Lite's reference kernel requantizes it in floating point and the engine in
fixed point.

Prints one line per op (GEMM shape, commands, cycles, utilization, match) and the total:
cycles per inference, inferences per second at --clock-mhz, accuracy on the labels and
agreement with out_ref when --data has them. Engine flags are those of hw.build. Without
--derive-engines that one engine runs every engine layer: for an int8 TFLite model it must
requantize int8 (mac mode, 8-bit signed operands and outputs, acc_bits 32); other layers
name what they need (PE mode, widths, output stage). With --derive-engines the flags are a
base: each layer runs on an engine with the base's rows, cols, dataflow and limits and
the PE mode, widths and output stage of its layers, one engine per PE mode and output
stage (nets.engines_for). Either way max_k must cover every layer's K.
Exit status: 0 success, 1 an RTL mismatch (bits or cycles), 2 bad flags or model.
"""


@dataclass
class LayerResult:
    """One op of the network run, with its engine figures when it runs on the engine."""

    index: int
    op: str
    m: int | None = None
    k: int | None = None
    n: int | None = None
    groups: int | None = None
    commands: int | None = None
    macs: int | None = None
    model_cycles: int | None = None
    rtl_cycles: int | None = None
    tflite_mismatches: int | None = None
    rtl_match: bool | None = None
    engine: str | None = None

    @property
    def on_engine(self):
        return self.m is not None

    def as_dict(self):
        d = dict(self.__dict__)
        d["match"] = self.match
        return d

    @property
    def match(self):
        """Engine output == golden's TFLite output (and RTL == golden when it ran)."""
        if not self.on_engine or self.tflite_mismatches is None:
            return None
        return self.tflite_mismatches == 0 and self.rtl_match is not False


@dataclass
class NetworkRun:
    """The outcome of :func:`run_network`."""

    config: ArrayConfig
    sim: str
    images: int
    layers: list
    outputs: np.ndarray
    rtl_images: int = 0
    rtl_errors: list = field(default_factory=list)
    engines: dict = field(default_factory=dict)

    @property
    def model_cycles(self):
        """Cycles of one inference (batch 1) in the cycle model, commands back to back."""
        engine = [r for r in self.layers if r.on_engine]
        if not engine:
            return 0
        commands = sum(r.commands for r in engine)
        return sum(r.model_cycles for r in engine) + GAP_BETWEEN_GEMMS * (commands - 1)


def _engine_values(graph, plans, x):
    """Every tensor, engine ops as the engine computes them; and mismatches against golden.

    Golden runs every op; an engine op's result is replaced by what the engine computes on
    the same input, so later ops see the engine's values.
    """
    mismatches = {}

    def engine(op, inputs, reference):
        if op.kind not in ENGINE_OPS:
            return reference
        out = engine_layer_output(plans[op.index], inputs(0))
        mismatches[op.index] = int(np.count_nonzero(out != reference))
        return out

    outputs, values = run_graph(graph, x, keep_all=True, hook=engine)
    return outputs, values, mismatches


def _layer_rows(graph, engines, unit_plans):
    rows = []
    for op in graph.ops:
        plan = unit_plans.get(op.index)
        if plan is None:
            rows.append(LayerResult(op.index, op.kind))
            continue
        config = engines[op.index]
        cycles = sum(gemm_schedule(config, *s).cycles for s in plan.model_shapes())
        cycles += GAP_BETWEEN_GEMMS * (len(plan.commands) - 1)
        rows.append(LayerResult(op.index, op.kind, plan.m, plan.k, plan.n, plan.groups,
                                len(plan.commands), plan.macs, cycles,
                                engine=config.default_name))
    return rows


def run_network(graph, config, x, *, sim="model", rtl_images=1, seed=0, stall_prob=0.0,
                progress=None, derive_engines=False):
    """Run ``graph`` on the batch ``x`` (batch first); see ``python -m nets.run --help``.

    ``config`` runs every engine layer, or with ``derive_engines`` is the base from which
    :func:`nets.engines_for` derives each layer's engine. On an RTL simulator each distinct
    engine is built once and runs the commands of all its layers.

    Returns
    -------
    NetworkRun
        Per-op results (shapes, commands, model and RTL cycles of one inference, elements
        that differ from golden's TFLite output) and the network's outputs.
    """
    if sim not in SIMS:
        raise ValueError(f"sim must be one of {', '.join(SIMS)}, not {sim!r}")
    x = np.asarray(x)
    if derive_engines:
        engines = engines_for(graph, config)
    else:
        engines = {op.index: config for op in graph.ops if op.kind in ENGINE_OPS}
    unit_plans = plan_network(graph, config if not derive_engines else engines, batch=1)
    layers = _layer_rows(graph, engines, unit_plans)
    if sim == "golden":
        outputs = run_graph(graph, x)
        for r in layers:
            r.model_cycles = None
        return NetworkRun(config, sim, len(x), layers, outputs, engines=engines)
    plans = plan_network(graph, config if not derive_engines else engines, batch=len(x))
    outputs, values, mismatches = _engine_values(graph, plans, x)
    for r in layers:
        if r.on_engine:
            r.tflite_mismatches = mismatches[r.index]
    result = NetworkRun(config, sim, len(x), layers, outputs, engines=engines)
    if sim in ("verilator", "icarus"):
        _run_rtl(result, graph, unit_plans, values, x, sim, rtl_images, seed, stall_prob)
    return result


def _run_rtl(run, graph, unit_plans, values, x, sim, rtl_images, seed, stall_prob):
    """Every engine command of the first ``rtl_images`` images on the RTL: one regression run
    per distinct engine (each built once), in the order of the engines' first layers."""
    from hw.regress import run_regression

    rtl_images = min(int(rtl_images), len(x))
    jobs = {}
    for image in range(rtl_images):
        for index, plan in unit_plans.items():
            entries, owners = jobs.setdefault(run.engines[index], ([], []))
            layer_input = values[graph.ops[index].inputs[0]][image:image + 1]
            for entry in plan.job_entries(layer_input, label=f"image{image} "):
                entries.append(entry)
                owners.append(index)
    run.rtl_images = rtl_images
    pairs = []
    for config, (entries, owners) in jobs.items():
        regression = run_regression(config, sim, seed=seed, gemms=0, stall_prob=stall_prob,
                                    explicit=entries)
        records = regression.records
        if not regression.result.ok or len(records) != len(entries):
            run.rtl_errors.append(f"RTL run of {config.default_name} failed "
                                  f"({regression.work_dir}): {regression.result.summary()}")
        pairs += zip(owners, records, strict=False)
    by_layer = {}
    for owner, record in pairs:
        layer = by_layer.setdefault(owner, {"cycles": 0, "match": True})
        if not record["match"] or record["rtl_cycles"] != record["model_cycles"]:
            layer["match"] = False
            run.rtl_errors.append(f"{record['label']}: match {record['match']}, RTL "
                                  f"{record['rtl_cycles']} cycles, model "
                                  f"{record['model_cycles']}")
        layer["cycles"] += record["rtl_cycles"] or 0
    for r in run.layers:
        if r.index in by_layer:
            gaps = GAP_BETWEEN_GEMMS * (r.commands - 1)
            r.rtl_cycles = by_layer[r.index]["cycles"] // rtl_images + gaps
            r.rtl_match = by_layer[r.index]["match"] and not run.rtl_errors


# --- command line ----------------------------------------------------------------------------

def _load_data(path, graph, images, seed, digits=False):
    """``x`` (and ``y``, ``out_ref`` when present) from an npz, scikit-learn's digits, or
    random inputs."""
    tensor = graph.tensors[graph.inputs[0]]
    if digits:
        from .data import load_digits, quantize_images
        data = load_digits()
        x, y = quantize_images(graph, data.x_test), data.y_test
        if images is not None:
            if images > len(x):
                raise ValueError(f"--images must be at most the {len(x)} digits test images, "
                                 f"not {images}")
            x, y = x[:images], y[:images]
        return x, y, None
    if path is None:
        rng = np.random.default_rng(seed)
        count = images or 1
        lo, hi = tensor.code_range
        x = rng.integers(lo, hi + 1, (count,) + tuple(tensor.shape[1:]))
        if tensor.quant is not None and tensor.quant.bits == 1:
            x = np.where(x > 0, 1, -1)
        return x.astype(tensor.dtype), None, None
    with np.load(path) as data:
        if "x_test" not in data:
            raise ValueError(f"--data {path} has no x_test array (it has "
                             f"{', '.join(sorted(data.files)) or 'none'})")
        x = data["x_test"]
        y = data["y_test"] if "y_test" in data else None
        ref = data["out_ref"] if "out_ref" in data else None
    if images is not None:
        if images > len(x):
            raise ValueError(f"--images must be at most the {len(x)} images of {path}, not "
                             f"{images}")
        x = x[:images]
        y = None if y is None else y[:images]
        ref = None if ref is None else ref[:images]
    return x, y, ref


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def _probability(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), not {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), not {value}")
    return value


def _parser():
    parser = OneLineErrorParser(prog="python -m nets.run", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL.tflite|GRAPH.npz",
                        help="a full-integer TFLite model, or a graph of nets.save_graph")
    parser.add_argument("--data", metavar="FILE.npz",
                        help="inputs x_test (the input's dtype, batch first), optional labels "
                             "y_test and expected outputs out_ref (default: random inputs)")
    parser.add_argument("--digits", action="store_true",
                        help="inputs: scikit-learn's digits test images (nets.data's split), "
                             "quantized as the graph's input, with their labels")
    parser.add_argument("--derive-engines", action="store_true",
                        help="run each layer on the engine nets.engines_for derives from the "
                             "engine flags (PE mode, widths and output stage from the layers)")
    parser.add_argument("--images", type=_positive_int, metavar="N",
                        help="run the first N images (default: all of --data, else 1)")
    parser.add_argument("--sim", choices=SIMS, default="model",
                        help="golden, the cycle model, or an RTL simulator (default: model)")
    parser.add_argument("--rtl-images", type=_positive_int, default=1, metavar="N",
                        help="with an RTL simulator: images whose engine commands run on the "
                             "RTL (default: 1)")
    parser.add_argument("--stall-prob", type=_probability, default=0.0, metavar="P",
                        help="RTL runs: probability of a stall on every stream per cycle "
                             "(default: 0, so that cycles are stall-free)")
    parser.add_argument("--seed", type=int, default=1, help="seed of random inputs and RTL "
                        "stalls (default: 1)")
    parser.add_argument("--clock-mhz", type=float, default=1000.0, metavar="F",
                        help="clock for inferences per second (default: 1000, nominal)")
    parser.add_argument("--json", metavar="FILE", help="write the layers and totals as JSON")
    add_config_arguments(parser)
    return parser


def _fmt(value, spec=",", none="-"):
    return none if value is None else format(value, spec)


def _print_report(run, totals, out):
    config = run.config
    pes = config.rows * config.cols
    names = list(dict.fromkeys(c.default_name for c in run.engines.values()))
    names = names or [config.default_name]
    print(f"engine{'s' if len(names) > 1 else ''}: {', '.join(names)} ({config.rows}x"
          f"{config.cols} {config.dataflow}), sim {run.sim}, {run.images} image(s)" +
          (f", {run.rtl_images} on the RTL" if run.rtl_images else ""), file=out)
    if len(names) > 1:
        for name in names:
            ops = [str(i) for i, c in run.engines.items() if c.default_name == name]
            print(f"  {name}: ops {', '.join(ops)}", file=out)
    header = (f"{'#':>3} {'op':<18} {'M x K x N':>16} {'groups':>6} {'cmds':>5} "
              f"{'model cyc':>10} {'RTL cyc':>10} {'util':>7} {'vs TFLite':>9} {'RTL':>5}")
    print(header, file=out)
    for r in run.layers:
        if not r.on_engine:
            print(f"{r.index:>3} {r.op:<18} {'host':>16}", file=out)
            continue
        util = (f"{100 * r.macs / (r.model_cycles * pes):.1f}%" if r.model_cycles else "-")
        rtl = {None: "-", True: "ok", False: "FAIL"}[r.rtl_match]
        print(f"{r.index:>3} {r.op:<18} {f'{r.m}x{r.k}x{r.n}':>16} {r.groups:>6} "
              f"{r.commands:>5} {_fmt(r.model_cycles):>10} {_fmt(r.rtl_cycles):>10} "
              f"{util:>7} {_fmt(r.tflite_mismatches):>9} {rtl:>5}", file=out)
    if totals.get("cycles"):
        print(f"cycles per inference: {totals['cycles']:,} (cycle model, batch 1, engine "
              f"layers back to back)", file=out)
        print(f"inferences per second at {totals['clock_mhz']:g} MHz (nominal clock): "
              f"{totals['inferences_per_second']:,.0f}", file=out)
    if totals.get("accuracy") is not None:
        print(f"accuracy: {totals['accuracy']:.4f} ({totals['correct']}/{run.images})",
              file=out)
    if totals.get("reference_elements"):
        differ = totals["reference_elements"] - totals["reference_elements_equal"]
        print(f"equal to out_ref: {totals['reference_elements_equal']}/"
              f"{totals['reference_elements']} elements ({differ} differ)", file=out)


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        from .graph_file import load_graph
        from .tflite_import import load_tflite

        if args.data is not None and args.digits:
            raise ValueError("--data and --digits are two sources of inputs: give one")
        config = config_from_args(args) or ArrayConfig()
        graph = (load_graph(args.model) if str(args.model).endswith(".npz")
                 else load_tflite(args.model))
        x, y, ref = _load_data(args.data, graph, args.images, args.seed, args.digits)
        run = run_network(graph, config, x, sim=args.sim, rtl_images=args.rtl_images,
                          seed=args.seed, stall_prob=args.stall_prob,
                          derive_engines=args.derive_engines)
    except (LoweringError, ValueError, TypeError, OSError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    totals = {"cycles": run.model_cycles if run.sim != "golden" else None}
    if totals["cycles"]:
        totals["inferences_per_second"] = args.clock_mhz * 1e6 / totals["cycles"]
        totals["clock_mhz"] = args.clock_mhz
    if y is not None:
        totals["correct"] = int(np.count_nonzero(np.argmax(run.outputs, axis=-1) == y))
        totals["accuracy"] = totals["correct"] / len(y)
    if ref is not None:
        equal = int(np.count_nonzero(run.outputs == ref))
        totals["matches_reference"] = bool(equal == ref.size)
        totals["reference_elements_equal"] = equal
        totals["reference_elements"] = int(ref.size)
    totals["rtl_errors"] = run.rtl_errors
    _print_report(run, totals, sys.stdout)
    for error in run.rtl_errors:
        print(f"RTL: {error}", file=sys.stdout)
    if args.json:
        engines = {c.default_name: c.to_dict() for c in dict.fromkeys(run.engines.values())}
        doc = {"model": str(Path(args.model)), "config": run.config.to_dict(),
               "engines": engines, "sim": run.sim,
               "images": run.images, "rtl_images": run.rtl_images,
               "layers": [r.as_dict() for r in run.layers], "total": totals}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 1 if run.rtl_errors else 0


if __name__ == "__main__":
    sys.exit(main())
