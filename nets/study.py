"""The accuracy study: quantize or train each method, deploy it as an integer graph, measure it.

``python -m nets.study [--methods ...] [--bits ...] [--net mlp|cnn|dws ...] [--json FILE]
[--plots DIR]`` runs every point of the grid (method x network x bit width x knobs):
trains the float network (cached per network and seed), applies the method, exports the
:class:`nets.export.Plan` as a :class:`nets.Graph`, and measures the test accuracy of
integer inference (:func:`nets.run_graph`, bit-exact with the engine) next to the float accuracy
and the fake-quant accuracy from training. Each point's cycles per image come from the
cycle model (:func:`sim.engine_model.gemm_schedule`) on the engine given by the engine
flags, one GEMM per layer on the layer's PE mode.

Every point is one record (a JSON object holding every knob); records are cached on disk
under a hash of the knobs, so a rerun is free and an interrupted study resumes. Tables and
plots are drawn from the records only.
"""

import argparse
import hashlib
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

import golden
from hw.config import ArrayConfig

from .arch import NETS, input_features

__all__ = ["METHODS", "DEFAULT_BITS", "STUDY_VERSION", "cycles_per_image", "graph_name",
           "grid", "main", "markdown_table", "pivot_table", "plot", "run_point", "run_study"]

#: Bumped when a change alters results, so that old cache entries are not reused.
STUDY_VERSION = 1
#: Methods, in the order tables list them.
METHODS = ("float", "ptq", "qat", "dsq", "binarynet", "xnor_net", "twn", "dorefa", "inq",
           "syq", "elq", "tsq", "clipq", "featq")
DEFAULT_BITS = (2, 3, 4, 5, 6, 8)
#: Methods whose bit width is fixed by the paper (the --bits list does not multiply them).
_FIXED_BITS = {"float": (32, 32), "binarynet": (1, 1), "xnor_net": (1, 1), "inq": (5, 8),
               "featq": (8, 8)}
#: Methods that take weights and activations of the bit width (else activations only).
_BOTH_BITS = ("ptq", "qat", "dsq", "dorefa")
#: Methods with ternary weights (2-bit codes) and ``a_bits`` activations.
_TERNARY = ("twn", "syq", "elq", "tsq")
_LOWBIT_NETS = ("mlp", "cnn")
#: FGSM strengths on [0, 1] pixels for the float and feature-quantized networks.
FGSM_EPS = (0.02, 0.05, 0.1, 0.2)
#: Epochs of each method at ``--epochs-scale 1``.
EPOCHS = {"float": 20, "qat": 6, "dsq": 6, "binarynet": 20, "xnor_net": 20, "twn": 15,
          "dorefa": 15, "inq": 6, "syq": 6, "elq": 6, "tsq": 6, "clipq": 6, "featq": 6}


def grid(methods, nets, bits, granularities=("channel", "tensor"), calibrations=("minmax",)):
    """Every point's knobs (dicts), in a stable order."""
    points = []
    for net in nets:
        for method in methods:
            if method not in METHODS:
                raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
            if method in _FIXED_BITS:
                if method in ("binarynet", "xnor_net", "inq") and net not in _LOWBIT_NETS:
                    continue
                w, a = _FIXED_BITS[method]
                points.append(dict(method=method, net=net, w_bits=w, a_bits=a))
                continue
            if method not in ("ptq", "qat", "dsq", "clipq") and net not in _LOWBIT_NETS:
                continue
            for b in bits:
                if method == "ptq":
                    for g in granularities:
                        for c in calibrations:
                            points.append(dict(method=method, net=net, w_bits=b, a_bits=b,
                                               granularity=g, calibration=c))
                    continue
                if method == "dorefa" and b < 2:
                    continue
                w = 2 if method in _TERNARY else b
                a = 8 if method == "clipq" else b
                points.append(dict(method=method, net=net, w_bits=w, a_bits=a))
    return points


#: Per-method versions, bumped when one method's recipe changes (its cached points only).
METHOD_VERSIONS = {"dsq": 2, "float": 2}


def _key(knobs):
    version = METHOD_VERSIONS.get(knobs.get("method"), 1)
    extra = {} if version == 1 else {"method_version": version}
    text = json.dumps({**knobs, **extra, "version": STUDY_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Context:
    """Data, float networks (cached on disk) and engine settings shared by the points."""

    def __init__(self, cache, seed, epochs_scale, engine):
        from .data import load_digits, shifted
        self.cache, self.seed, self.scale, self.engine = cache, seed, epochs_scale, engine
        self.data = load_digits()
        self.x, self.y = shifted(self.data.x_train, self.data.y_train)
        self._float = {}

    def epochs(self, method):
        return max(1, int(round(EPOCHS[method] * self.scale)))

    def float_net(self, name):
        if name in self._float:
            return self._float[name]
        from .train import train_float
        epochs = self.epochs("float")
        path = self.cache / f"float_{_key(dict(net=name, seed=self.seed, epochs=epochs))}.pkl"
        if path.exists():
            with open(path, "rb") as f:
                params, state = pickle.load(f)
        else:
            params, state = train_float(NETS[name], self.x, self.y, seed=self.seed,
                                        epochs=epochs)
            params = [{k: np.asarray(v) for k, v in p.items()} for p in params]
            state = [{k: np.asarray(v) for k, v in s.items()} for s in state]
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                pickle.dump((params, state), f)
        self._float[name] = (params, state)
        return params, state


def integer_accuracy(graph, x, y):
    """Accuracy of the integer graph's argmax on float images ``x`` (quantized as its input)."""
    from .data import quantize_images
    from .execute import run
    logits = run(graph, quantize_images(graph, x))
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(y)))


def _engine(mode, engine, w_bits):
    rows, cols, dataflow = engine
    big = dict(max_k=4096, max_n=4096, max_m=4096, rows=rows, cols=cols, dataflow=dataflow)
    if mode == "mac":
        return ArrayConfig(**big, w_bits=max(8, w_bits))
    if mode == "xnor":
        return ArrayConfig(**big, pe_mode="xnor")
    return ArrayConfig(**big, pe_mode="bitserial", a_bits=8, w_bits=max(8, w_bits))


def cycles_per_image(plan, engine=(8, 8, "ws")):
    """Cycle-model cycles of one image through the plan's layers: ``(cycles, macs)``.

    Each layer is one GEMM per image on an engine of its PE mode (``engine`` = rows, cols,
    dataflow): convolutions ``M = out_h * out_w``, ``K = kh * kw * C``, ``N`` = filters;
    dense ``M = 1``; a depthwise layer is ``C`` GEMMs of ``(out_h * out_w, kh * kw, 1)`` (a
    naive lowering that shows its poor utilization). Bit-serial layers run ``a_bits x
    w_bits`` planes. Host ops (reshape) cost nothing here.
    """
    from sim.engine_model import gemm_schedule
    total, macs = 0, 0
    h = w = 8
    fans = input_features(plan.net)
    for pl, fan in zip(plan.layers, fans, strict=True):
        layer = pl.layer
        config = _engine(pl.mode, engine, pl.w_bits)
        planes = (pl.a_bits, pl.w_bits) if pl.mode == "bitserial" else (None, None)
        if layer.kind == "dense":
            m, k, n, count = 1, fan, layer.features, 1
        else:
            oh, ow, _, _ = golden.conv_output_shape(h, w, layer.kernel, layer.stride,
                                                    layer.padding)
            if layer.kind == "depthwise":
                m, k, n, count = oh * ow, layer.kernel ** 2, 1, fan
            else:
                m, k, n, count = oh * ow, layer.kernel ** 2 * fan, layer.features, 1
            h, w = oh, ow
        total += count * gemm_schedule(config, m, k, n, *planes).cycles
        macs += count * m * k * n
    return int(total), int(macs)


def run_point(knobs, ctx, graph_path=None):
    """Run one point: a record (dict) with every knob and the measured accuracies.

    ``graph_path``: also write the deployed integer graph there (:func:`nets.save_graph`).
    """
    from . import lowbit_methods as lb
    from . import methods as mt
    from .export import to_graph
    from .train import accuracy

    start = time.monotonic()
    net = NETS[knobs["net"]]
    method = knobs["method"]
    d = ctx.data
    params, state = ctx.float_net(knobs["net"])
    float_acc = accuracy(net, params, state, d.x_test, d.y_test)
    common = dict(x_test=d.x_test, y_test=d.y_test)
    epochs = ctx.epochs(method) if method in EPOCHS else 0
    seed = ctx.seed
    w_bits, a_bits = knobs["w_bits"], knobs["a_bits"]
    train = dict(seed=seed, epochs=epochs, **common)
    record = dict(knobs)
    if method == "float":
        result = mt.ptq(net, params, state, d.x_calibration, w_bits=8, a_bits=8)
        result.fake_quant_accuracy = float_acc
    elif method == "ptq":
        result = mt.ptq(net, params, state, d.x_calibration, w_bits=w_bits, a_bits=a_bits,
                        granularity=knobs["granularity"], calibration=knobs["calibration"],
                        **common)
    elif method == "qat":
        result = mt.qat(net, params, state, ctx.x, ctx.y, d.x_calibration, w_bits=w_bits,
                        a_bits=a_bits, **train)
    elif method == "dsq":
        result = mt.dsq(net, params, state, ctx.x, ctx.y, d.x_calibration, w_bits=w_bits,
                        a_bits=a_bits, **train)
    elif method in ("binarynet", "xnor_net"):
        result = lb.binarynet(net, ctx.x, ctx.y, d.x_calibration,
                              xnor_scaling=method == "xnor_net", **train)
    elif method == "twn":
        result = lb.twn(net, ctx.x, ctx.y, d.x_calibration, a_bits=a_bits, **train)
    elif method == "dorefa":
        result = lb.dorefa(net, ctx.x, ctx.y, d.x_calibration, w_bits=w_bits, a_bits=a_bits,
                           **train)
    elif method == "inq":
        result = lb.inq(net, params, state, ctx.x, ctx.y, d.x_calibration, w_bits=w_bits,
                        a_bits=a_bits, **train)
    elif method in ("syq", "elq", "tsq"):
        fn = getattr(lb, method)
        result = fn(net, params, state, ctx.x, ctx.y, d.x_calibration, a_bits=a_bits, **train)
    elif method == "clipq":
        result = lb.clipq(net, params, state, ctx.x, ctx.y, d.x_calibration, w_bits=w_bits,
                          a_bits=a_bits, **train)
    else:
        result = lb.feature_quantization(net, params, state, ctx.x, ctx.y, d.x_calibration,
                                         **train)
    graph = to_graph(result.plan)
    if graph_path is not None:
        from .graph_file import save_graph
        Path(graph_path).parent.mkdir(parents=True, exist_ok=True)
        save_graph(graph, graph_path)
    cycles, macs = cycles_per_image(result.plan, ctx.engine)
    # The float network has no integer graph of its own: its accuracy is the float one, and
    # its cycles are those of its int8 PTQ graph (the mac engine's cycles do not depend on
    # the operand width).
    measured = float_acc if method == "float" else integer_accuracy(graph, d.x_test, d.y_test)
    record.update(
        granularity=knobs.get("granularity", "channel" if any(
            pl.w_scale.size > 1 for pl in result.plan.layers) else "tensor"),
        float_accuracy=float_acc,
        fake_quant_accuracy=_num(result.fake_quant_accuracy),
        accuracy=measured,
        pe_mode=_main_mode(result.plan), pe_modes=list(result.plan.pe_modes),
        cycles_per_image=cycles, macs_per_image=macs,
        engine=dict(rows=ctx.engine[0], cols=ctx.engine[1], dataflow=ctx.engine[2]),
        seed=seed, epochs=epochs, epochs_scale=ctx.scale,
        extra={k: _num(v) for k, v in result.extra.items()
               if k not in ("scheme", "params", "state")},
    )
    if method in ("float", "featq"):
        record["fgsm"] = _fgsm(net, ctx, graph, method, result, params, state)
    record["seconds"] = round(time.monotonic() - start, 2)
    return record


def _fgsm(net, ctx, graph, method, result, params, state):
    """Accuracy on FGSM images made with the network's own gradient (the STE's through
    quantizers): the float network's float accuracy, the feature-quantized network's
    integer-graph accuracy."""
    from . import lowbit_methods as lb
    from .train import accuracy
    d = ctx.data
    if method == "float":
        scheme, p, s = None, params, state
    else:
        scheme, p, s = result.extra["scheme"], result.extra["params"], result.extra["state"]
    out = {}
    for eps in FGSM_EPS:
        adv = lb.fgsm(net, p, s, d.x_test, d.y_test, eps, scheme)
        out[str(eps)] = (accuracy(net, p, s, adv, d.y_test) if method == "float"
                         else integer_accuracy(graph, adv, d.y_test))
    return out


def _main_mode(plan):
    modes = [layer.mode for layer in plan.layers]
    return max(set(modes), key=modes.count) if len(set(modes)) > 1 else modes[0]


def _num(v):
    if isinstance(v, dict):
        return {k: _num(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_num(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def graph_name(record):
    """The file name (without ``.npz``) of a point's deployed graph: its knobs."""
    parts = [record["net"], record["method"], f"w{record['w_bits']}a{record['a_bits']}"]
    parts += [record[k] for k in ("granularity", "calibration") if k in record and
              record["method"] == "ptq"]
    return "_".join(str(p) for p in parts)


def run_study(points, *, cache, seed=0, epochs_scale=1.0, engine=(8, 8, "ws"), progress=True,
              graphs=None):
    """Records of ``points``, each from the cache when it holds one with the same knobs.

    Each computed point's integer graph is cached too (``<cache>/graphs/<key>.npz``);
    ``graphs``: a directory to copy every point's graph to, as ``graph_name(record).npz``
    (a cached record without a cached graph is computed again).
    """
    import shutil

    from tqdm import tqdm
    cache = Path(cache)
    ctx = None
    records = []
    bar = tqdm(points, disable=not progress, unit="point", file=sys.stderr)
    for knobs in bar:
        full = {**knobs, "seed": seed, "epochs_scale": epochs_scale,
                "engine": list(engine)}
        path = cache / "points" / f"{_key(full)}.json"
        bar.set_description(f"{knobs['net']} {knobs['method']} w{knobs['w_bits']}"
                            f"a{knobs['a_bits']}")
        graph_path = cache / "graphs" / f"{_key(full)}.npz"
        if path.exists() and (graphs is None or graph_path.exists()):
            record = json.loads(path.read_text())
            records.append(record)
            if graphs is not None:
                Path(graphs).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(graph_path, Path(graphs) / f"{graph_name(record)}.npz")
            continue
        ctx = ctx or _Context(cache, seed, epochs_scale, engine)
        record = run_point(knobs, ctx, graph_path)
        record["key"] = _key(full)
        if graphs is not None:
            Path(graphs).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(graph_path, Path(graphs) / f"{graph_name(record)}.npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, sort_keys=True))
        os.replace(tmp, path)  # atomic: an interrupted run never leaves half a record
        records.append(record)
    return records


def markdown_table(records):
    """A markdown table of the records: one row per point."""
    head = ("| net | method | W bits | A bits | granularity | PE mode | float | fake-quant | "
            "integer | cycles/image |\n|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in records:
        fq = "" if r.get("fake_quant_accuracy") is None else f"{r['fake_quant_accuracy']:.4f}"
        rows.append(f"| {r['net']} | {r['method']} | {r['w_bits']} | {r['a_bits']} | "
                    f"{r.get('granularity', '')} | {'+'.join(r['pe_modes'])} | "
                    f"{r['float_accuracy']:.4f} | {fq} | {r['accuracy']:.4f} | "
                    f"{r['cycles_per_image']:,} |")
    return "\n".join([head, *rows])


def _bits_column(r):
    """The grid's bit-width knob of a record: what its method varies (None when fixed)."""
    if r["method"] in _FIXED_BITS:
        return None
    return r["w_bits"] if r["method"] == "clipq" else r["a_bits"]


def _row_label(r):
    m = r["method"]
    if m == "ptq":
        return f"ptq, per {r['granularity']}"
    if m in _FIXED_BITS and m != "float":
        return f"{m} (w{r['w_bits']}a{r['a_bits']})"
    if m in _TERNARY:
        return f"{m} (ternary w, a = bits)"
    if m == "clipq":
        return "clipq (w = bits, a8)"
    return m


def pivot_table(records, value="accuracy", fmt="{:.3f}"):
    """Markdown tables, one per network: a row per method, a column per bit width."""
    out = []
    for net in [n for n in NETS if any(r["net"] == n for r in records)]:
        rs = [r for r in records if r["net"] == net]
        cols = sorted({c for c in map(_bits_column, rs) if c is not None})
        out.append(f"**{net}** (float: {rs[0]['float_accuracy']:.3f})\n")
        out.append("| method | " + " | ".join([f"{c} bits" for c in cols] + ["fixed"]) + " |")
        out.append("|---" * (len(cols) + 2) + "|")
        rows = {}
        for r in rs:
            rows.setdefault(_row_label(r), {})[_bits_column(r)] = r[value]
        for label, cells in rows.items():
            text = [fmt.format(cells[c]) if c in cells else "" for c in cols + [None]]
            out.append(f"| {label} | " + " | ".join(text) + " |")
        out.append("")
    return "\n".join(out)


def _label(r):
    if r["method"] == "ptq":
        return f"ptq {r['granularity']}"
    return r["method"]


def plot(records, out_dir):
    """Write ``accuracy_vs_bits.png`` and ``accuracy_vs_cycles.png`` from the records.

    Bits: each method against the bit width it varies (fixed-width methods at their weight
    bits); cycles: every point at its cycles per image. The float network is a dashed line.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nets = sorted({r["net"] for r in records}, key=list(NETS).index)
    labels = list(dict.fromkeys(_label(r) for r in records if r["method"] != "float"))
    colors = plt.get_cmap("tab20").colors
    style = {label: (colors[i % len(colors)], "osD^v<>ph*"[i % 10])
             for i, label in enumerate(labels)}
    paths = []
    for name, xlabel, logx in (
            ("accuracy_vs_bits.png", "bits the method varies (fixed-width methods: their "
             "weight bits)", False),
            ("accuracy_vs_cycles.png", "cycles per image (cycle model, 8x8 engines)", True)):
        fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4.8), squeeze=False)
        for ax, net in zip(axes[0], nets, strict=True):
            rs = [r for r in records if r["net"] == net]
            for r in rs:
                if r["method"] == "float":
                    ax.axhline(r["accuracy"], color="k", ls="--", lw=0.8, label="float")
            for label in labels:
                pts = sorted((_x(r, logx), r["accuracy"]) for r in rs if _label(r) == label)
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                color, marker = style[label]
                ax.plot(xs, ys, marker=marker, color=color, ls="-" if not logx else "none",
                        label=label)
            ax.set_title(net)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy (integer graph)")
            if logx:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        paths.append(out_dir / name)
    return paths


def _x(r, cycles):
    if cycles:
        return r["cycles_per_image"]
    column = _bits_column(r)
    return r["w_bits"] if column is None else column


def _read_records(paths):
    """Records of several ``--json`` files, each key once, in the grid's order."""
    seen = {}
    for path in paths:
        for record in json.loads(Path(path).read_text()):
            seen.setdefault(record["key"], record)
    order = {name: i for i, name in enumerate(METHODS)}
    return sorted(seen.values(), key=lambda r: (list(NETS).index(r["net"]), order[r["method"]],
                                                r.get("granularity", ""), r["w_bits"],
                                                r["a_bits"]))


def main(argv=None):
    """Command line: see ``python -m nets.study --help``."""
    parser = argparse.ArgumentParser(prog="python -m nets.study", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), metavar="METHOD",
                        help=f"methods to run ({', '.join(METHODS)}); default all")
    parser.add_argument("--bits", nargs="+", type=int, default=list(DEFAULT_BITS),
                        help="bit widths (2..8)")
    parser.add_argument("--net", nargs="+", default=list(NETS), choices=list(NETS),
                        help="networks (default all)")
    parser.add_argument("--granularity", nargs="+", default=["channel", "tensor"],
                        choices=["channel", "tensor"], help="PTQ weight granularities")
    parser.add_argument("--calibration", nargs="+", default=["minmax"],
                        choices=["minmax", "percentile", "mse"],
                        help="PTQ activation calibrations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="multiply every method's epochs (CI uses a small value)")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--dataflow", choices=["ws", "os"], default="ws")
    parser.add_argument("--cache", default=".study_cache", help="record cache directory")
    parser.add_argument("--json", metavar="FILE", help="write the records (a JSON list)")
    parser.add_argument("--plots", metavar="DIR", help="write the PNG figures there")
    parser.add_argument("--graphs", metavar="DIR",
                        help="write each point's deployed integer graph there (NET_METHOD_"
                             "wWaA[_GRANULARITY_CALIBRATION].npz, nets.save_graph), for "
                             "python -m nets.run GRAPH.npz --derive-engines")
    parser.add_argument("--table", action="store_true", help="print a markdown table")
    parser.add_argument("--pivot", action="store_true",
                        help="print accuracy and cycles per image as method x bits tables")
    parser.add_argument("--from-json", nargs="+", metavar="FILE",
                        help="draw the table and plots from these record files (written by "
                             "--json) instead of running a grid; records with the same key "
                             "count once")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")
    args = parser.parse_args(argv)
    for b in args.bits:
        if not 2 <= b <= 8:
            parser.error(f"--bits must be in 2..8, not {b}")
    if args.epochs_scale <= 0:
        parser.error(f"--epochs-scale must be positive, not {args.epochs_scale}")
    for m in args.methods:
        if m not in METHODS:
            parser.error(f"--methods must be among {', '.join(METHODS)}, not {m!r}")
    ArrayConfig(rows=args.rows, cols=args.cols, dataflow=args.dataflow)  # validates
    if args.from_json:
        records = _read_records(args.from_json)
    else:
        points = grid(args.methods, args.net, args.bits, args.granularity, args.calibration)
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        records = run_study(points, cache=args.cache, seed=args.seed,
                            epochs_scale=args.epochs_scale,
                            engine=(args.rows, args.cols, args.dataflow), progress=progress,
                            graphs=args.graphs)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    if args.plots:
        for path in plot(records, args.plots):
            print(f"wrote {path}")
    if args.pivot:
        print(pivot_table(records))
        print(pivot_table(records, "cycles_per_image", "{:,}"))
    if args.table or not (args.json or args.pivot):
        print(markdown_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
