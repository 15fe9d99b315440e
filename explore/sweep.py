"""Run a sweep: every engine of a spec on every workload, in parallel, cached and resumable.

Engines are the unit of work (synthesis, placement and routing dominate); each task also
runs the cycle model for the engine's workloads. Tasks go to a ``concurrent.futures``
executor: local processes by default, or a Dask cluster through
``distributed.Client.get_executor()``, the same code path. Each result is written to the
cache as it arrives, so an interrupted sweep resumes where it stopped.
"""

import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from hw.config import gateware_digest, pnr_cache_dir, pnr_tool_versions

from .evaluate import engine_commands, evaluate_engine

__all__ = ["COLUMNS", "EXPLORE_VERSION", "default_cache_dir", "point_records", "run_sweep"]

#: Bumped when a change alters results, so that old cache entries are not reused.
EXPLORE_VERSION = 2  # 2: cycles and bytes from sim.schedule
#: Version of a point's cycle figures (in its cache key only, so that engines' measured
#: area and Fmax stay cached): 2, a workload's commands under limited bandwidth run back
#: to back in one run of the cycle model (sim.perf), not each alone.
POINT_VERSION = 2

#: Columns of the CSV, in order (the JSON has the same keys).
COLUMNS = ["engine", "workload", "status", "reason", "pe_mode", "dataflow", "rows", "cols",
           "pes", "a_bits", "w_bits", "pack", "max_k", "max_n", "luts", "flip_flops", "dsps",
           "brams", "fmax_mhz", "clock_mhz", "clock_source", "cycles", "macs",
           "inferences_per_s", "gops", "gops_per_klut", "gops_per_dsp", "bytes_per_inference",
           "split_gemms", "stall_cycles", "accuracy", "accuracy_method", "accuracy_record",
           "build_command", "pnr_command"]


def default_cache_dir():
    """``explore`` beside the place-and-route cache: ``$QMAC_CACHE/explore``, else
    ``~/.cache/qmac/explore``."""
    return pnr_cache_dir().parent / "explore"


def _digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _hardware_key(config, target):
    tools = (pnr_tool_versions(target.pnr_target.family) if target.area == "pnr"
             else {"area": target.area})
    return "hw-" + config.default_name + "-" + _digest(
        {"v": EXPLORE_VERSION, "config": config.to_dict(), "target": target.to_dict(),
         "tools": tools, "gateware": gateware_digest()})


def _point_key(config, workload, bandwidth, dram=None):
    return "pt-" + config.default_name + "-" + _digest(
        {"v": EXPLORE_VERSION, "pv": POINT_VERSION, "config": config.to_dict(),
         "workload": workload.digest,
         "kind": workload.kind, "bandwidth": bandwidth,
         "dram": list(dram) if dram is not None else None})


def _read(cache, key):
    try:
        return json.loads((cache / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


def _write(cache, key, value):
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{key}.json"
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, path)


class _Bar:
    """tqdm when it is installed, else one line per finished task on stderr."""

    def __init__(self, total, enabled):
        self.enabled, self.done, self.total, self.bar = enabled, 0, total, None
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="engine", file=sys.stderr)
            except ImportError:
                pass

    def step(self, text):
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.update(1)
        elif self.enabled:
            print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _executor(jobs, dask):
    if dask:
        try:
            from distributed import Client
        except ImportError:
            raise RuntimeError("--dask needs dask.distributed: pip install -e .[explore]") \
                from None
        client = Client(dask)
        return client.get_executor(), client
    return ProcessPoolExecutor(max_workers=jobs), None


def run_sweep(spec, *, cache=None, jobs=None, dask=None, executor=None, progress=True,
              fresh=False, compute=True):
    """Evaluate every engine of ``spec`` on every workload; return the point records.

    Parameters
    ----------
    spec : explore.spec.Spec
    cache : path-like or None
        Where results are kept (default :func:`default_cache_dir`). Results found there are
        not computed again (``fresh`` ignores them); an engine whose tools failed is tried
        again on the next run, one that does not fit is not.
    jobs : int or None
        Local worker processes (default: the number of CPUs, at most the number of tasks).
    dask : str or None
        Address of a Dask scheduler (``tcp://HOST:PORT``): tasks run on its workers, which
        need qmac installed and the spec's files at the same paths.
    executor : concurrent.futures.Executor or None
        Run the tasks on this executor instead (it is not shut down).
    progress : bool
        Show a progress bar on stderr.
    compute : bool
        False: compute nothing, only read what the cache holds (points not computed yet say
        ``not run``), e.g. to look at a sweep that still runs elsewhere.

    Returns
    -------
    list of dict
        :func:`point_records` of every engine x workload, in spec order.
    """
    cache = Path(cache) if cache is not None else default_cache_dir()
    target, bandwidth, dram = spec.target, spec.bandwidth, spec.dram
    tasks = []
    for config in spec.engines:
        hw_key = _hardware_key(config, target)
        hardware = None if fresh else _read(cache, hw_key)
        todo = [w for w in spec.workloads
                if fresh or _read(cache, _point_key(config, w, bandwidth, dram)) is None]
        if hardware is None or todo:
            tasks.append((config, hw_key, hardware, todo))
    client = None
    own = executor is None
    if tasks and compute:
        if own:
            executor, client = _executor(jobs or min(len(tasks), os.cpu_count() or 1), dask)
        bar = _Bar(len(tasks), progress)
        futures = {}
        try:
            for config, hw_key, hardware, todo in tasks:
                future = executor.submit(evaluate_engine, config, target, todo, bandwidth,
                                         hardware, dram)
                futures[future] = (config, hw_key, todo)
            for future in as_completed(futures):
                config, hw_key, todo = futures[future]
                try:
                    result = future.result()
                except Exception as e:  # noqa: BLE001 - a lost worker fails its point only
                    reason = " ".join(f"{type(e).__name__}: {e}".split())
                    result = {"hardware": {"status": "failed", "reason": reason},
                              "workloads": {}}
                hardware = result["hardware"]
                if hardware.get("status") != "failed":
                    _write(cache, hw_key, hardware)
                else:
                    _write(cache, hw_key + ".failed", hardware)
                for workload in todo:
                    perf = result["workloads"].get(workload.name)
                    if perf is not None:
                        _write(cache, _point_key(config, workload, bandwidth, dram), perf)
                bar.step(f"{config.default_name}: {hardware.get('status')}")
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            bar.close()
            if client is not None:
                client.close()  # cancels what is left on the cluster
            elif own:
                executor.shutdown(wait=False, cancel_futures=True)
    return point_records(spec, cache)


def _accuracy(workload, config):
    """The best study record of ``workload`` whose PE mode and bit widths are the engine's."""
    if workload.kind != "study":
        return None
    match = [r for r in workload.records if r.get("pe_mode") == config.pe_mode
             and r.get("a_bits") == config.a_bits and r.get("w_bits") == config.w_bits]
    return max(match, key=lambda r: r["accuracy"]) if match else None


def point_records(spec, cache):
    """The records of every engine x workload of ``spec`` from ``cache`` (what
    :func:`run_sweep` wrote): area, Fmax, cycles, derived throughput, accuracy, commands."""
    cache = Path(cache)
    target, bandwidth, dram = spec.target, spec.bandwidth, spec.dram
    points = []
    for config in spec.engines:
        hw_key = _hardware_key(config, target)
        hardware = _read(cache, hw_key) or _read(cache, hw_key + ".failed") or {
            "status": "not run", "reason": "not computed yet"}
        commands = engine_commands(config, target)
        for workload in spec.workloads:
            perf = _read(cache, _point_key(config, workload, bandwidth, dram)) or {
                "status": "not run", "reason": "not computed yet"}
            p = {c: None for c in COLUMNS}
            p.update(engine=config.default_name, workload=workload.name,
                     pe_mode=config.pe_mode, dataflow=config.dataflow, rows=config.rows,
                     cols=config.cols, pes=config.rows * config.cols, a_bits=config.a_bits,
                     w_bits=config.w_bits, pack=config.pack, max_k=config.max_k,
                     max_n=config.max_n, build_command=commands["build"],
                     pnr_command=commands["pnr"])
            for key in ("luts", "flip_flops", "dsps", "brams", "fmax_mhz"):
                p[key] = hardware.get(key)
            if perf.get("status") == "ok":
                p.update(cycles=perf["cycles"], macs=perf["macs"], split_gemms=perf["split_gemms"],
                         stall_cycles=perf["stall_cycles"], bytes_per_inference=perf["bytes"])
            if hardware.get("status") != "ok":
                p.update(status=hardware["status"], reason=hardware.get("reason", ""))
            elif perf.get("status") != "ok":
                p.update(status=perf.get("status"), reason=perf.get("reason", ""))
            else:
                p.update(status="ok", reason="")
            clock, source = None, None
            if p["fmax_mhz"]:
                clock, source = p["fmax_mhz"], f"post-route Fmax, {spec.target.fpga}"
            elif spec.target.clock_mhz and hardware.get("status") == "ok":
                clock, source = spec.target.clock_mhz, "given clock"
            p.update(clock_mhz=clock, clock_source=source)
            if clock and p["cycles"]:
                ips = clock * 1e6 / p["cycles"]
                gops = 2 * p["macs"] * ips / 1e9
                p.update(inferences_per_s=ips, gops=gops)
                if p["luts"]:
                    p["gops_per_klut"] = gops / (p["luts"] / 1000)
                if p["dsps"]:
                    p["gops_per_dsp"] = gops / p["dsps"]
            best = _accuracy(workload, config)
            if best is not None:
                p.update(accuracy=best["accuracy"], accuracy_method=best.get("method"),
                         accuracy_record=best.get("key"))
            points.append(p)
    return points
