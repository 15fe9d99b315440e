"""One engine of a sweep: its area and Fmax, and its cycles and bytes on each workload.

:func:`evaluate_engine` is what a worker runs (a local process or a Dask worker): it takes
and returns plain data, and imports the hardware tools (Amaranth, Yosys, nextpnr) only
when it needs them. :func:`workload_performance` is the one place that turns an engine, a
workload's GEMMs and an off-chip bandwidth into cycles and bytes per inference.
"""

import time
import traceback

from hw.config import ArrayConfig, config_arguments

__all__ = ["hardware_figures", "engine_commands", "evaluate_engine", "workload_performance"]


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


def workload_performance(config, layers, bandwidth=None, dram=None):
    """Cycles and bytes of one inference of ``layers`` (``sim.topology.Layer``) on ``config``.

    The one function of the explorer that computes them: :func:`sim.perf.analyze`, which
    splits every layer into engine commands with the layer scheduler
    (:func:`sim.schedule.schedule_gemm`, the one copy of the tiling rules) and counts each
    command's cycles with the cycle model (exact against the RTL), back to back with one
    idle cycle between commands. ``bandwidth`` (operand beats per cycle) and ``dram``
    (``(bytes_per_cycle, latency)`` of off-chip memory, :mod:`sim.schedule`'s memory
    model) add their stall cycles when given. Bytes per inference are the schedule's
    off-chip bytes (activations, weights and parameters read, results written; partial
    sums of every K block on an engine with raw outputs).

    A layer the scheduler refuses (K over ``max_k`` on an engine with an output stage,
    which cannot carry partial sums) raises ValueError with the scheduler's reason and the
    layer's name: the point fails, it is not estimated.

    Returns a dict: ``cycles``, ``macs`` (useful MACs), ``stall_cycles`` (bandwidth and
    memory), ``gemms`` (engine commands), ``split_gemms`` (commands beyond one per layer
    repeat), ``bytes``.
    """
    from sim.perf import analyze
    from sim.schedule import ScheduleError, schedule_gemm

    for layer in layers:
        try:
            schedule_gemm(config, layer.m, layer.k, layer.n, groups=layer.repeats)
        except ScheduleError as e:
            raise ValueError(f"layer {layer.name!r} ({layer.m}x{layer.k}x{layer.n}) cannot "
                             f"be scheduled on {config.default_name}: {e}") from None
    planes = (config.a_bits, config.w_bits) if config.mode.has_planes else None
    _, totals = analyze(config, layers, 1000.0, bandwidth, progress=False, planes=planes,
                        dram=dram)
    commands = int(totals["commands"])
    return {"cycles": int(totals["cycles"]), "macs": int(totals["macs"]),
            "stall_cycles": int(totals["stall_cycles"]), "gemms": commands,
            "split_gemms": commands - int(sum(layer.repeats for layer in layers)),
            "bytes": int(totals["bytes_total"])}


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


def evaluate_engine(config, target, workloads, bandwidth=None, hardware=None, dram=None):
    """Everything a worker computes for one engine: ``{"hardware": ..., "workloads": ...}``.

    ``config`` is an ArrayConfig (or its dict), ``workloads`` the
    :class:`explore.spec.Workload` s still to compute, ``hardware`` the engine's cached
    :func:`hardware_figures` (None: measure it now). Each workload's result is a dict of
    :func:`workload_performance` plus ``status`` and ``reason`` (e.g. a TFLite model on an
    engine that cannot run int8 layers, or a layer the scheduler refuses), and ``seconds``.
    ``bandwidth`` and ``dram``: as in :func:`workload_performance`. Never raises for a bad
    point.
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
            perf = workload_performance(config, _workload_layers(config, workload), bandwidth,
                                        dram)
            perf.update(status="ok", reason="")
        except Exception as e:  # noqa: BLE001 - a failed point is recorded, not fatal
            perf = {"status": "failed", "reason": _one_line(e),
                    "trace": traceback.format_exc(limit=3)}
        perf["seconds"] = round(time.monotonic() - begin, 2)
        results[workload.name] = perf
    return {"hardware": hardware, "workloads": results}
