"""One engine of a sweep: its area and Fmax, and its cycles and bytes on each workload.

:func:`evaluate_engine` is what a worker runs (a local process or a Dask worker): it takes
and returns plain data, and imports the hardware tools (Amaranth, Yosys, nextpnr) only
when it needs them. :func:`workload_performance` is the one place that turns an engine, a
workload's GEMMs and an off-chip bandwidth into cycles and bytes per inference.
"""

import time
import traceback

from hw.config import ArrayConfig, config_arguments

__all__ = ["hardware_figures", "engine_commands", "evaluate_engine", "split_layers",
           "workload_performance"]


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}" if not isinstance(error, ValueError) else text


def hardware_figures(config, target):
    """Area and Fmax of the engine ``config`` on ``target`` (a :class:`explore.spec.Target`).

    ``area = "pnr"``: :func:`hw.flow.pnr.place_and_route` (cached in ``$QMAC_CACHE/pnr``);
    LUTs etc. are nextpnr's placed counts (``luts``: every LUT4 slot used). A design that
    does not fit is ``status = "does not fit"`` with the tool's reason. ``area = "synth"``:
    Yosys's iCE40 counts of the engine (:func:`hw.synth.synthesize`, DSPs on), no Fmax.
    ``area = "none"``: nothing measured. Tool failures are ``status = "failed"``.
    """
    result = {"status": "ok", "reason": "", "luts": None, "flip_flops": None, "dsps": None,
              "brams": None, "fmax_mhz": None, "area_source": target.area, "tool_seconds": {}}
    if target.area == "none":
        return result
    try:
        if target.area == "synth":
            from hw.flow.synth import synthesize
            start = time.monotonic()
            counts = synthesize(config, "engine", "ice40", dsp=True)
            result["tool_seconds"] = {"synthesis": round(time.monotonic() - start, 1)}
            for key in ("luts", "flip_flops", "dsps", "brams"):
                result[key] = counts[key]
            return result
        from hw.flow.pnr import place_and_route
        record = place_and_route(config, "engine", target.pnr_target)
    except Exception as e:  # noqa: BLE001 - a failed point is recorded, not fatal
        result.update(status="failed", reason=_one_line(e))
        return result
    result["tool_seconds"] = record.get("seconds", {})
    result["from_cache"] = record.get("from_cache", False)
    used = {k: v["used"] for k, v in record["resources"].items() if "used" in v}
    if not record.get("fits"):
        result.update(status="does not fit", reason=record.get("reason", "does not fit"))
        for key in ("luts", "flip_flops", "dsps", "brams"):
            result[key] = used.get(key)
        return result
    placed = record.get("utilization", {})
    for key in ("luts", "flip_flops", "dsps", "brams"):
        result[key] = placed[key]["used"] if key in placed else used.get(key)
    result["fmax_mhz"] = record.get("fmax_mhz")
    return result


def _cuts(size, cap):
    """``{piece size: how many}`` of ``size`` cut into pieces of at most ``cap``."""
    whole, rest = divmod(size, cap)
    pieces = {cap: whole} if whole else {}
    if rest:
        pieces[rest] = 1
    return pieces


def split_layers(config, layers):
    """The GEMMs that ``config`` runs for ``layers``: each layer cut into pieces that fit the
    engine's ``max_m``, ``max_k`` and ``max_n`` (row groups, K slices whose partial sums the
    host adds, column groups). Pieces of one shape are one row run ``count`` times (at most
    eight shapes per layer). Returns ``(layers, extra)``, ``extra`` counting the GEMMs the
    cuts added."""
    from sim.topology import Layer

    out, extra = [], 0
    for layer in layers:
        if layer.m <= config.max_m and layer.k <= config.max_k and layer.n <= config.max_n:
            out.append(layer)
            continue
        total = 0
        for m, cm in _cuts(layer.m, config.max_m).items():
            for k, ck in _cuts(layer.k, config.max_k).items():
                for n, cn in _cuts(layer.n, config.max_n).items():
                    count = cm * ck * cn
                    total += count
                    out.append(Layer.from_gemm(f"{layer.name} [{m}x{k}x{n}]", m, k, n,
                                               count=layer.repeats * count))
        extra += (total - 1) * layer.repeats
    return out, extra


def _beat_bits(config):
    """Bits of one beat of each stream (from the engine's own stream layouts)."""
    from hw.interfaces import act_layout, par_layout, res_layout, wgt_layout
    return {"act": act_layout(config).size, "wgt": wgt_layout(config).size,
            "par": par_layout(config).size if config.has_params else 0,
            "res": res_layout(config).size}


def workload_performance(config, layers, bandwidth=None):
    """Cycles and bytes of one inference of ``layers`` (``sim.topology.Layer``) on ``config``.

    The one function of the explorer that computes them, so that a memory scheduler can
    replace it. Today: layers larger than the buffers are cut (:func:`split_layers`); the
    cycle model (:func:`sim.perf.analyze`, exact against the RTL) counts every GEMM back to
    back, limited to ``bandwidth`` operand beats per cycle if given. Bytes per inference
    are the beats that cross the engine's streams, at their widths: every GEMM streams its
    activations once per K slice (``M x ceil(K / (rows x pack))`` beats) and its whole
    weight matrix (``N x`` as many), one parameter word per output channel, and its
    results (``M x ceil(N / cols)`` beats); nothing is reused between GEMMs. That is the
    off-chip traffic of a host that feeds the engine straight from DRAM, without the
    on-chip reuse a scheduler would add.

    An estimate where a layer's K is cut: adding the slices' partial sums on the host needs
    them raw (an engine built without its requantizer, or a scheduler that keeps them on
    chip); the figures here are those of the configured engine, results at its output
    width. ``nets.lower`` (TFLite workloads) refuses such a layer instead.

    Returns a dict: ``cycles``, ``macs`` (useful MACs), ``stall_cycles`` (bandwidth),
    ``gemms``, ``split_gemms``, ``bytes``.
    """
    from sim.perf import analyze

    pieces, extra = split_layers(config, layers)
    planes = (config.a_bits, config.w_bits) if config.mode.has_planes else None
    _, totals = analyze(config, pieces, 1000.0, bandwidth, progress=False, planes=planes)
    widths = _beat_bits(config)
    bits = 0
    for layer in pieces:
        words = -(-layer.k // config.pack)
        k_beats = -(-words // config.rows)
        bits += layer.repeats * (layer.m * k_beats * widths["act"]
                                 + layer.n * k_beats * widths["wgt"]
                                 + layer.n * widths["par"]
                                 + layer.m * -(-layer.n // config.cols) * widths["res"])
    return {"cycles": int(totals["cycles"]), "macs": int(sum(layer.macs for layer in layers)),
            "stall_cycles": int(totals["stall_cycles"]),
            "gemms": int(sum(layer.repeats for layer in pieces)), "split_gemms": int(extra),
            "bytes": -(-bits // 8)}


def _workload_layers(config, workload):
    if workload.kind == "tflite":
        from nets.lower import perf_layers
        from nets.tflite_import import load_tflite
        return perf_layers(load_tflite(workload.source), config)
    return list(workload.layers)


def engine_commands(config, target):
    """Shell commands that rebuild the engine ``config`` and measure it on ``target``."""
    flags = " ".join(config_arguments(config))
    family, device = target.pnr_target.family, target.pnr_target.device
    build = f"python -m hw.build {flags} --out build/{config.default_name}".replace("  ", " ")
    pnr = f"python -m hw.synth --pnr {family} --device {device} {flags}".rstrip()
    return {"build": build, "pnr": pnr}


def evaluate_engine(config, target, workloads, bandwidth=None, hardware=None):
    """Everything a worker computes for one engine: ``{"hardware": ..., "workloads": ...}``.

    ``config`` is an ArrayConfig (or its dict), ``workloads`` the
    :class:`explore.spec.Workload` s still to compute, ``hardware`` the engine's cached
    :func:`hardware_figures` (None: measure it now). Each workload's result is a dict of
    :func:`workload_performance` plus ``status`` and ``reason`` (e.g. a TFLite model on an
    engine that cannot run int8 layers), and ``seconds``. Never raises for a bad point.
    """
    config = config if isinstance(config, ArrayConfig) else ArrayConfig.from_dict(config)
    start = time.monotonic()
    if hardware is None:
        hardware = hardware_figures(config, target)
        hardware["seconds"] = round(time.monotonic() - start, 1)
    results = {}
    for workload in workloads:
        begin = time.monotonic()
        try:
            perf = workload_performance(config, _workload_layers(config, workload), bandwidth)
            perf.update(status="ok", reason="")
        except Exception as e:  # noqa: BLE001 - a failed point is recorded, not fatal
            perf = {"status": "failed", "reason": _one_line(e),
                    "trace": traceback.format_exc(limit=3)}
        perf["seconds"] = round(time.monotonic() - begin, 2)
        results[workload.name] = perf
    return {"hardware": hardware, "workloads": results}
