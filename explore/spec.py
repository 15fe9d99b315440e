"""The sweep specification (TOML): candidate engines, workloads, FPGA target, bandwidth.

A spec names its candidate engines as grids (``[[engine]]`` tables: every key that holds
a list is swept, the cross product of all of them; a table of scalars is one engine), the
workloads every engine runs (``[[workload]]``), the FPGA target (``[target]``) and the
off-chip bandwidth. Every mistake is a :class:`SpecError` whose one-line message names the
key and what is allowed. See the README section "Trade-off explorer" for an example.
"""

import dataclasses
import hashlib
import itertools
import json
import numbers
import tomllib
from pathlib import Path

from hw.config import PNR_FPGAS, ArrayConfig, PnrTarget

__all__ = ["AREA_MODES", "ENGINE_KEYS", "STUDY_NETS", "Spec", "SpecError", "Target", "Workload",
           "load_spec", "parse_spec"]

#: How area and Fmax are obtained: ``pnr`` (Yosys and nextpnr on the target FPGA: area
#: and post-route Fmax), ``synth`` (Yosys's iCE40 counts only, no Fmax), ``none`` (no
#: hardware tools: cycles and bytes only).
AREA_MODES = ("pnr", "synth", "none")
#: Keys of an ``[[engine]]`` table: ArrayConfig's fields, plus ``size`` (rows = cols) and
#: ``bits`` (a_bits = w_bits).
ENGINE_KEYS = tuple(f.name for f in dataclasses.fields(ArrayConfig)) + ("size", "bits")
#: The accuracy study's networks (:mod:`nets.arch`).
STUDY_NETS = ("mlp", "cnn", "dws")
_TOP_KEYS = ("name", "target", "bandwidth", "dram_bytes_per_cycle", "dram_latency",
             "defaults", "engine", "workload")
_TARGET_KEYS = ("fpga", "area", "freq_mhz", "seed", "clock_mhz")
_WORKLOAD_KINDS = ("network", "tflite", "study")
_WORKLOAD_KEYS = _WORKLOAD_KINDS + ("name", "methods", "records")
_ALIASES = {"size": ("rows", "cols"), "bits": ("a_bits", "w_bits")}


class SpecError(ValueError):
    """A bad spec; the message is one line naming the key and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where engines are measured: ``fpga`` (a key of ``hw.config.PNR_FPGAS``), ``area``
    (one of :data:`AREA_MODES`), nextpnr's clock aim ``freq_mhz`` and ``seed``, and
    ``clock_mhz``: the clock of throughput figures when no Fmax is measured (None: those
    figures stay empty)."""

    fpga: str = "ecp5-85k"
    area: str = "pnr"
    freq_mhz: float = 200.0
    seed: int = 1
    clock_mhz: float | None = None

    @property
    def pnr_target(self):
        family, device = PNR_FPGAS[self.fpga]
        return PnrTarget(family, device, freq_mhz=self.freq_mhz, seed=self.seed)

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Workload:
    """One workload every engine runs.

    ``kind`` is ``network`` (a bundled network of ``sim/networks`` or a SCALE-Sim topology
    file; ``layers`` read once), ``tflite`` (a ``.tflite`` model, lowered per engine by
    :func:`nets.lower.perf_layers`, so int8 ``mac`` engines only) or ``study`` (a network of
    the accuracy study: its layers as the study counts them, and accuracy from the study's
    records whose PE mode and bit widths match the engine). ``digest`` hashes everything
    that decides the workload's figures (the file contents, the layers, the records).
    """

    name: str
    kind: str
    source: str
    layers: tuple = ()
    methods: tuple = ()
    records: tuple = ()
    digest: str = ""

    def to_dict(self):
        return {"name": self.name, "kind": self.kind, "source": self.source,
                "methods": list(self.methods)}


@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed spec: ``engines`` (ArrayConfig, in grid order, no repeats), ``workloads``,
    ``target``, ``bandwidth`` (operand beats per cycle, None for unlimited), ``name``,
    ``dram``: ``(bytes_per_cycle, latency)`` of off-chip memory (``sim.schedule``'s memory
    model, ``sim.perf --dram-bytes-per-cycle``), None for operands always there."""

    name: str
    engines: tuple
    workloads: tuple
    target: Target
    bandwidth: float | None = None
    dram: tuple | None = None


def _fail(message):
    raise SpecError(message)


def _check_keys(table, allowed, where):
    if not isinstance(table, dict):
        _fail(f"spec {where} must be a table, not {table!r}")
    for key in table:
        if key not in allowed:
            _fail(f"spec {where}: unknown key {key!r}; allowed: {', '.join(allowed)}")


def _number(value, where, lo=0.0, hi=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > lo or (
            hi is not None and not value < hi):
        bound = f"in ({lo:g}, {hi:g})" if hi is not None else f"above {lo:g}"
        _fail(f"spec {where} must be a number {bound}, not {value!r}")
    return float(value)


def _parse_target(table):
    table = {} if table is None else table
    _check_keys(table, _TARGET_KEYS, "[target]")
    fpga = table.get("fpga", "ecp5-85k")
    if fpga not in PNR_FPGAS:
        _fail(f"spec target.fpga must be one of {', '.join(PNR_FPGAS)}, not {fpga!r}")
    area = table.get("area", "pnr")
    if area not in AREA_MODES:
        _fail(f"spec target.area must be one of {', '.join(AREA_MODES)}, not {area!r}")
    freq = _number(table.get("freq_mhz", 200.0), "target.freq_mhz", 0.0, 2000.0)
    seed = table.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        _fail(f"spec target.seed must be a non-negative integer, not {seed!r}")
    clock = table.get("clock_mhz")
    if clock is not None:
        clock = _number(clock, "target.clock_mhz", 0.0, 2000.0)
    return Target(fpga, area, freq, seed, clock)


def _expand(table, defaults, where):
    """The engines of one ``[[engine]]`` grid (dicts of ArrayConfig fields)."""
    _check_keys(table, ENGINE_KEYS, where)
    merged = dict(defaults)
    for alias, fields in _ALIASES.items():
        given = [f for f in fields if f in table]
        if alias in table and given:
            _fail(f"spec {where}: give {alias!r} or {given[0]!r}, not both")
        if alias in table:
            for f in fields:
                merged.pop(f, None)
        if given:
            merged.pop(alias, None)
    merged.update(table)
    # An alias is one axis (size = [2, 4] gives 2x2 and 4x4, not 2x4).
    keys = list(merged)  # in the order written: the first swept key varies slowest
    axes = []
    for key in keys:
        value = merged[key]
        if isinstance(value, list):
            if not value:
                _fail(f"spec {where}.{key} must be a value or a non-empty list, not []")
            axes.append(value)
        else:
            axes.append([value])
    engines = []
    for combo in itertools.product(*axes):
        fields = dict(zip(keys, combo, strict=True))
        for alias, tied in _ALIASES.items():
            if alias in fields:
                value = fields.pop(alias)
                for f in tied:
                    fields.setdefault(f, value)
        described = ", ".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
        try:
            config = ArrayConfig(**fields).check_generatable()
        except (TypeError, ValueError) as e:
            _fail(f"spec {where} ({described}): {e}")
        engines.append(config)
    return engines


def _hash(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _resolve(path, base):
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p)


def _study_layers(net):
    """The study network's GEMMs as :func:`nets.study.cycles_per_image` counts them: conv
    ``(out_h * out_w, k * k * C, filters)``, dense ``(1, fan in, features)``, depthwise
    ``C`` GEMMs of ``(out_h * out_w, k * k, 1)``, on 8 x 8 x 1 digits images."""
    import golden
    from nets.arch import NETS, input_features
    from sim.topology import Layer

    layers, h, w = [], 8, 8
    arch = NETS[net]
    for i, (layer, fan) in enumerate(zip(arch.layers, input_features(arch), strict=True)):
        name = f"{i}:{layer.kind}"
        if layer.kind == "dense":
            layers.append(Layer.from_gemm(name, 1, fan, layer.features))
            continue
        oh, ow, _, _ = golden.conv_output_shape(h, w, layer.kernel, layer.stride, layer.padding)
        if layer.kind == "depthwise":
            layers.append(Layer.from_gemm(name, oh * ow, layer.kernel ** 2, 1, count=fan))
        else:
            layers.append(Layer.from_gemm(name, oh * ow, layer.kernel ** 2 * fan,
                                          layer.features))
        h, w = oh, ow
    return tuple(layers)


def default_records_path():
    """The study's records shipped with qmac: ``docs/study/records.json``."""
    return Path(__file__).resolve().parent.parent / "docs" / "study" / "records.json"


def _parse_workload(table, base, where):
    _check_keys(table, _WORKLOAD_KEYS, where)
    kinds = [k for k in _WORKLOAD_KINDS if k in table]
    if len(kinds) != 1:
        _fail(f"spec {where} must have exactly one of {', '.join(_WORKLOAD_KINDS)}, not "
              f"{', '.join(kinds) or 'none'}")
    kind = kinds[0]
    source = table[kind]
    if not isinstance(source, str) or not source:
        _fail(f"spec {where}.{kind} must be a non-empty string, not {source!r}")
    name = table.get("name", Path(source).stem if kind != "study" else f"study-{source}")
    if not isinstance(name, str) or not name:
        _fail(f"spec {where}.name must be a non-empty string, not {name!r}")
    methods = table.get("methods", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        _fail(f"spec {where}.methods must be a list of method names, not {methods!r}")
    if kind != "study":
        for key in ("methods", "records"):
            if key in table:
                _fail(f"spec {where}.{key} is only for study workloads, not {kind}")
    if kind == "network":
        from sim.topology import list_networks, read_topology
        path = _resolve(source, base)
        where_from = source if source in list_networks() else path
        if source not in list_networks() and not path.is_file():
            _fail(f"spec {where}.network must be a bundled network "
                  f"({', '.join(list_networks())}) or a SCALE-Sim topology file, not "
                  f"{source!r}")
        try:
            layers = tuple(read_topology(str(where_from)))
        except (OSError, ValueError) as e:
            _fail(f"spec {where}.network {source!r}: {e}")
        digest = _hash([dataclasses.asdict(layer) for layer in layers])
        return Workload(name, kind, str(where_from), layers, digest=digest)
    if kind == "tflite":
        path = _resolve(source, base)
        if not path.is_file():
            _fail(f"spec {where}.tflite must be a .tflite file, not {source!r} (no such file "
                  f"{path})")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return Workload(name, kind, str(path.resolve()), digest=digest)
    if source not in STUDY_NETS:
        _fail(f"spec {where}.study must be one of {', '.join(STUDY_NETS)}, not {source!r}")
    from nets.study import METHODS
    for m in methods:
        if m not in METHODS:
            _fail(f"spec {where}.methods: {m!r} is not a study method; methods: "
                  f"{', '.join(METHODS)}")
    records_path = (_resolve(table["records"], base) if "records" in table
                    else default_records_path())
    try:
        records = json.loads(Path(records_path).read_text())
    except (OSError, ValueError) as e:
        _fail(f"spec {where}.records: cannot read study records {str(records_path)!r}: {e}")
    if not isinstance(records, list):
        _fail(f"spec {where}.records must be a JSON list of study records: {records_path}")
    keep = tuple(r for r in records if isinstance(r, dict) and r.get("net") == source
                 and "accuracy" in r and (not methods or r.get("method") in methods))
    layers = _study_layers(source)
    digest = _hash([[dataclasses.asdict(layer) for layer in layers], keep])
    return Workload(name, kind, source, layers, tuple(methods), keep, digest)


def _parse_dram(doc):
    """``(bytes_per_cycle, latency)`` from the top-level ``dram_*`` keys, or None."""
    rate, latency = doc.get("dram_bytes_per_cycle"), doc.get("dram_latency")
    if rate is None:
        if latency is not None:
            _fail("spec dram_latency needs dram_bytes_per_cycle (off-chip bytes per cycle)")
        return None
    rate = _number(rate, "dram_bytes_per_cycle (off-chip bytes per cycle)")
    if rate == float("inf"):
        _fail(f"spec dram_bytes_per_cycle (off-chip bytes per cycle) must be finite, "
              f"not {rate!r}; omit it for operands always there")
    latency = 0 if latency is None else latency
    if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
        _fail(f"spec dram_latency must be a non-negative integer of cycles, not {latency!r}")
    return (rate, latency)


def parse_spec(doc, base=".", name="spec"):
    """A :class:`Spec` from a parsed TOML document (a dict); relative paths are read from
    ``base`` (the spec file's folder)."""
    base = Path(base)
    _check_keys(doc, _TOP_KEYS, "top level")
    name = doc.get("name", name)
    if not isinstance(name, str) or not name:
        _fail(f"spec name must be a non-empty string, not {name!r}")
    target = _parse_target(doc.get("target"))
    bandwidth = doc.get("bandwidth")
    if bandwidth is not None:
        bandwidth = _number(bandwidth, "bandwidth (operand beats per cycle)")
    dram = _parse_dram(doc)
    defaults = doc.get("defaults", {})
    _check_keys(defaults, ENGINE_KEYS, "[defaults]")
    grids = doc.get("engine")
    if not isinstance(grids, list) or not grids:
        _fail("spec needs at least one [[engine]] table (a grid of ArrayConfig fields)")
    engines = []
    for i, table in enumerate(grids):
        for config in _expand(table, defaults, f"engine[{i}]"):
            if config not in engines:
                engines.append(config)
    tables = doc.get("workload")
    if not isinstance(tables, list) or not tables:
        _fail(f"spec needs at least one [[workload]] table ({', '.join(_WORKLOAD_KINDS)})")
    workloads = []
    for i, table in enumerate(tables):
        workload = _parse_workload(table, base, f"workload[{i}]")
        if any(w.name == workload.name for w in workloads):
            _fail(f"spec workload[{i}].name {workload.name!r} is used twice; give each "
                  f"workload its own name")
        workloads.append(workload)
    return Spec(name, tuple(engines), tuple(workloads), target, bandwidth, dram)


def load_spec(path):
    """Read and parse a spec file (TOML)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"spec {str(path)!r} cannot be read: {e.strerror}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"spec {str(path)!r} is not valid TOML: {e}") from None
    return parse_spec(doc, path.parent, path.stem)
