"""Results of a sweep: CSV and JSON of every point, Pareto plots (PNG and SVG), a Markdown report.

Everything here is drawn from the point records only (:func:`explore.sweep.point_records`).
"""

import csv
import json
import math
from pathlib import Path

from .pareto import pareto_front
from .sweep import COLUMNS

__all__ = ["FIGURES", "fronts", "plot_all", "write_csv", "write_json", "write_report",
           "write_outputs"]

#: The figures: name -> (x key, y key, maximize x, maximize y, title).
FIGURES = {
    "throughput_vs_luts": ("luts", "inferences_per_s", False, True,
                           "Inferences per second against LUTs"),
    "accuracy_vs_throughput": ("inferences_per_s", "accuracy", True, True,
                               "Accuracy against inferences per second"),
    "fmax_vs_size": ("pes", "fmax_mhz", True, True, "Post-route Fmax against array size"),
}
_MARKERS = {"mac": "o", "bitserial": "s", "xnor": "^"}
_LABEL = {"luts": "LUT4s", "inferences_per_s": "inferences / s", "accuracy": "accuracy",
          "pes": "PEs (rows x cols)", "fmax_mhz": "post-route Fmax (MHz)"}


def _ok(value):
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def write_csv(points, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for p in points:
            writer.writerow({k: ("" if p.get(k) is None else p[k]) for k in COLUMNS})


def write_json(points, path, meta):
    Path(path).write_text(json.dumps({**meta, "points": points}, indent=1) + "\n")


def _engines(points):
    """One record per engine (Fmax against size does not depend on the workload)."""
    seen = {}
    for p in points:
        seen.setdefault(p["engine"], p)
    return list(seen.values())


def fronts(points, figure):
    """``{group: (points of the group, indices of its Pareto front)}`` for ``figure``:
    groups are workloads (``fmax_vs_size``: one group of every engine)."""
    x, y, up_x, up_y, _ = FIGURES[figure]
    if figure == "fmax_vs_size":
        groups = {"all engines": _engines(points)}
    else:
        groups = {}
        for p in points:
            groups.setdefault(p["workload"], []).append(p)
    out = {}
    for name, group in groups.items():
        usable = [p for p in group if _ok(p.get(x)) and _ok(p.get(y))]
        if usable:
            out[name] = (usable, pareto_front([(p[x], p[y]) for p in usable], (up_x, up_y)))
    return out


def _draw(figure, points, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, up_x, up_y, title = FIGURES[figure]
    groups = fronts(points, figure)
    if not groups:
        return None
    n = len(groups)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.2), squeeze=False)
    for ax, (name, (group, front)) in zip(axes[0], groups.items(), strict=True):
        for mode in sorted({p["pe_mode"] for p in group}):
            mine = sorted((p for p in group if p["pe_mode"] == mode), key=lambda p: p[x])
            dots = ax.scatter([p[x] for p in mine], [p[y] for p in mine], label=mode,
                              alpha=0.8, marker=_MARKERS.get(mode, "o"), s=36)
            if figure == "fmax_vs_size":  # a line per PE mode and bit widths, over sizes
                for bits in sorted({(p["a_bits"], p["w_bits"]) for p in mine}):
                    same = [p for p in mine if (p["a_bits"], p["w_bits"]) == bits]
                    ax.plot([p[x] for p in same], [p[y] for p in same], lw=0.8, alpha=0.6,
                            color=dots.get_facecolor()[0])
        best = sorted((group[i] for i in front), key=lambda p: p[x])
        # The front as the boundary of what is attainable: a staircase through its points.
        ax.plot([p[x] for p in best], [p[y] for p in best], "k--", lw=1, label="Pareto front",
                drawstyle="steps-pre" if up_x else "steps-post")
        ax.scatter([p[x] for p in best], [p[y] for p in best], facecolors="none",
                   edgecolors="k", s=110, lw=1.2)
        for p in best:
            ax.annotate(p["engine"].removeprefix("qmac_"), (p[x], p[y]), fontsize=6,
                        xytext=(4, 3), textcoords="offset points")
        for axis, key in (("x", x), ("y", y)):
            values = [p[key] for p in group]
            if key != "accuracy" and min(values) > 0 and max(values) / min(values) > 20:
                getattr(ax, f"set_{axis}scale")("log")
        ax.set_xlabel(_LABEL[x])
        ax.set_ylabel(_LABEL[y])
        ax.set_title(name, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title + " (Pareto front circled)", fontsize=11)
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        path = Path(out_dir) / f"{figure}.{ext}"
        kwargs = {"metadata": {"Date": None}} if ext == "svg" else {"dpi": 110}
        fig.savefig(path, **kwargs)
        paths.append(path)
    plt.close(fig)
    return paths


def plot_all(points, out_dir):
    """Draw every figure of :data:`FIGURES` that has points; ``{name: [png, svg]}``."""
    import matplotlib
    matplotlib.rcParams["svg.hashsalt"] = "qmac"
    drawn = {}
    for figure in FIGURES:
        paths = _draw(figure, points, out_dir)
        if paths:
            drawn[figure] = paths
    return drawn


def _fmt(value, spec="{:,.3g}"):
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    return spec.format(value)


def _front_table(group, front):
    lines = ["| engine | LUT4s | DSPs | BRAMs | Fmax MHz | cycles | inferences/s | GOPS | "
             "GOPS/kLUT | bytes/inference | accuracy | rebuild |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for i in sorted(front, key=lambda i: group[i]["luts"] or 0):
        p = group[i]
        acc = "" if p["accuracy"] is None else f"{p['accuracy']:.3f} ({p['accuracy_method']})"
        lines.append(f"| `{p['engine']}` | {_fmt(p['luts'])} | {_fmt(p['dsps'])} | "
                     f"{_fmt(p['brams'])} | {_fmt(p['fmax_mhz'], '{:.1f}')} | "
                     f"{_fmt(p['cycles'])} | {_fmt(p['inferences_per_s'])} | "
                     f"{_fmt(p['gops'])} | {_fmt(p['gops_per_klut'])} | "
                     f"{_fmt(p['bytes_per_inference'])} | {acc} | `{p['build_command']}` |")
    return "\n".join(lines)


def _bandwidth(value):
    return f"{value:g} operand beats per cycle" if value else "unlimited"


def _dram(value):
    if not value:
        return ""
    return f"; off-chip memory: {value[0]:g} bytes per cycle, latency {value[1]} cycles"


def write_report(points, out_dir, meta, drawn):
    """``report.md``: the figures, the Pareto-optimal engines per workload with the commands
    that rebuild them, the failed points, and the command that reran the sweep."""
    out = [f"# Trade-off sweep `{meta['spec_name']}`", "",
           f"Command: `{meta['command']}`", "",
           f"{meta['engines']} engines x {meta['workloads']} workloads = {len(points)} points; "
           f"target {meta['target']['fpga']} (area: {meta['target']['area']}); off-chip "
           f"bandwidth: {_bandwidth(meta['bandwidth'])}{_dram(meta.get('dram'))}; "
           f"{meta['seconds']:.0f} s this run.", ""]
    for figure, paths in drawn.items():
        out += [f"![{FIGURES[figure][4]}]({paths[0].name})", ""]
    for figure, heading in (("throughput_vs_luts", "inferences/s against LUTs"),
                            ("accuracy_vs_throughput", "accuracy against inferences/s")):
        for name, (group, front) in fronts(points, figure).items():
            out += [f"## Pareto-optimal engines, {heading}: {name}", "",
                    _front_table(group, front), ""]
    engines = {p["engine"]: p for p in points}
    out += ["## Rebuild and measure each engine", "", "| engine | build | place and route |",
            "|---|---|---|"]
    out += [f"| `{e}` | `{p['build_command']}` | `{p['pnr_command']}` |"
            for e, p in engines.items()]
    bad = [p for p in points if p["status"] != "ok"]
    if bad:
        out += ["", "## Points without a full result", "",
                "| engine | workload | status | reason |", "|---|---|---|---|"]
        out += [f"| `{p['engine']}` | {p['workload']} | {p['status']} | "
                f"{p['reason'].replace('|', '/')} |" for p in bad]
    out += ["", "Columns of every point: `points.csv`, `points.json`. Bytes per inference: "
            "the beats that cross the engine's streams (no reuse between GEMMs); accuracy: "
            "the best study record with the engine's PE mode and bit widths.", ""]
    path = Path(out_dir) / "report.md"
    path.write_text("\n".join(out))
    return path


def write_outputs(points, out_dir, meta):
    """Write ``points.csv``, ``points.json``, the figures and ``report.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(points, out_dir / "points.csv")
    write_json(points, out_dir / "points.json", meta)
    drawn = plot_all(points, out_dir)
    report = write_report(points, out_dir, meta, drawn)
    return {"csv": out_dir / "points.csv", "json": out_dir / "points.json",
            "figures": drawn, "report": report}
