"""The cycle model against the RTL (Amaranth simulation), and its two forms against each other."""

import csv
import json
import re

import numpy as np
import pytest

from hw.beats import StreamCodec
from hw.config import ArrayConfig
from hw.requant import REQUANT_LATENCY
from hw.threshold import THRESHOLD_LATENCY
from sim import perf
from sim.engine_model import (
    MODEL_VERSION,
    Latencies,
    bandwidth_limited,
    gemm_cycles,
    gemm_schedule,
    latencies,
    run_patterns,
)
from sim.schedule import GAP_BETWEEN_COMMANDS, schedule_gemm
from tests.support.engine_sim import StreamPatterns, expected_output, random_gemm, run_engine


def _random_fields(rng, max_side):
    """Random array, dataflow, PE mode and output stage (every mode and stage about equally)."""
    dataflow = "ws" if rng.random() < 0.5 else "os"
    rows, cols = int(rng.integers(1, max_side + 1)), int(rng.integers(1, max_side + 1))
    mode = str(rng.choice(["mac", "xnor", "bitserial"]))
    stage = str(rng.choice(["requant", "requant", "threshold", "raw"]))
    fields = {"rows": rows, "cols": cols, "dataflow": dataflow, "pe_mode": mode,
              "requant": stage == "requant", "threshold": stage == "threshold"}
    if mode != "mac":
        fields["pack"] = int(rng.choice([1, 2, 4, 8]))
    if mode == "bitserial":
        fields.update(a_bits=int(rng.integers(1, 5)), w_bits=int(rng.integers(1, 5)),
                      a_signed=bool(rng.random() < 0.5), w_signed=bool(rng.random() < 0.5))
    return fields


def _random_config(rng, max_side=3):
    fields = _random_fields(rng, max_side)
    fields.update(max_m=64, max_k=16 * fields.get("pack", 1), max_n=16)
    if fields["dataflow"] == "ws" and rng.random() < 0.5:
        fields["block_rows"] = int(rng.integers(1, 7))
    if rng.random() < 0.3:   # a FIFO small enough for credits to throttle the array
        low = ArrayConfig(**fields).out_depth_min
        fields["out_depth"] = int(rng.integers(low, max(low + 1, 10)))
    return ArrayConfig(**fields)


def _planes(config, rng):
    """Random bit planes of a bit-serial GEMM (None elsewhere)."""
    if config.pe_mode != "bitserial":
        return None, None
    return int(rng.integers(1, config.a_bits + 1)), int(rng.integers(1, config.w_bits + 1))


@pytest.mark.parametrize("trial", range(12))
def test_model_matches_rtl_under_random_stalls(rng, trial):
    """Same patterns applied to the RTL and given to the model: the same cycles, GEMM by GEMM."""
    config = _random_config(rng)
    shapes = [(int(rng.integers(1, 13)), int(rng.integers(1, config.max_k + 1)),
               int(rng.integers(1, 9))) for _ in range(3)]
    gemms = [random_gemm(config, rng, *s, planes=_planes(config, rng)) for s in shapes]
    stall = float(rng.choice([0.0, 0.3, 0.6]))
    patterns = StreamPatterns(int(rng.integers(1 << 32)), stall, cycles=20000)
    outputs, records = run_engine(config, gemms, patterns)
    for out, g in zip(outputs, gemms, strict=True):
        assert np.array_equal(out, expected_output(config, g))
    codec = StreamCodec(config)
    model = run_patterns(config, [codec.model_shape(g) for g in gemms], patterns.valid,
                         patterns.ready)
    assert [(r["first"], r["last"]) for r in records] == \
        [(m["first"], m["last"]) for m in model], (config, shapes, stall)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_stall_free_rtl_cycles_equal_gemm_cycles(dataflow):
    config = ArrayConfig(rows=3, cols=2, dataflow=dataflow, max_k=32, max_n=16)
    rng = np.random.default_rng(7)
    for shape in [(1, 1, 1), (7, 13, 5), (20, 6, 2)]:
        g = random_gemm(config, rng, *shape)
        _, records = run_engine(config, [g], StreamPatterns(0, 0.0, cycles=4000))
        assert records[0]["cycles"] == gemm_cycles(config, *shape)


def test_tile_schedule_equals_cycle_by_cycle_replay(rng):
    """The fast per-tile schedule and the per-cycle replay are two descriptions of one rule."""
    for _ in range(400):
        fields = _random_fields(rng, 9)
        dataflow = fields["dataflow"]
        if dataflow == "ws" and rng.random() < 0.5:
            fields["block_rows"] = int(rng.integers(1, 40))
        if rng.random() < 0.3:
            fields["out_depth"] = int(rng.integers(ArrayConfig(**fields).out_depth_min, 40))
        config = ArrayConfig(**fields)
        shape = (int(rng.integers(1, 90)), int(rng.integers(1, 70)), int(rng.integers(1, 40)))
        if config.pe_mode == "bitserial":
            shape += _planes(config, rng)
        replay = run_patterns(config, [shape], {}, np.ones(0, dtype=bool))[0]["cycles"]
        s = gemm_schedule(config, *shape)
        assert s.cycles == replay, (config, shape)
        assert s.load + s.compute + s.idle + s.drain == s.cycles
        assert s.macs == shape[0] * shape[1] * shape[2]


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_issue_cycles_are_the_tiles_work(dataflow):
    """Compute cycles count rows (WS: one per row, K chunk and column tile) or steps (OS)."""
    config = ArrayConfig(rows=4, cols=3, dataflow=dataflow)
    m, k, n = 37, 10, 7
    s = gemm_schedule(config, m, k, n)
    chunks, tiles_n = -(-k // 4), -(-n // 3)
    expected = m * tiles_n * chunks if dataflow == "ws" else -(-m // 4) * tiles_n * k
    assert s.compute == expected


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_low_bit_issue_cycles(dataflow):
    """xnor: K counts bits, ``pack`` per PE word. Bit-serial: every word once per pair of
    bit planes."""
    m, k, n = 37, 45, 7
    chunks_of = lambda words: -(-words // 4)  # noqa: E731
    tiles_m, tiles_n = -(-m // 4), -(-n // 3)
    xnor = ArrayConfig(rows=4, cols=3, dataflow=dataflow, pe_mode="xnor", pack=8)
    words = -(-k // 8)
    s = gemm_schedule(xnor, m, k, n)
    assert s.compute == (m * tiles_n * chunks_of(words) if dataflow == "ws"
                         else tiles_m * tiles_n * words)
    bs = ArrayConfig(rows=4, cols=3, dataflow=dataflow, pe_mode="bitserial", pack=2,
                     a_bits=5, w_bits=3)
    words = -(-k // 2)
    for ap, wp in ((1, 1), (5, 3), (2, 3)):
        s = gemm_schedule(bs, m, k, n, ap, wp)
        assert s.compute == ap * wp * (m * tiles_n * chunks_of(words) if dataflow == "ws"
                                       else tiles_m * tiles_n * words)
    assert gemm_schedule(bs, m, k, n).compute == gemm_schedule(bs, m, k, n, 5, 3).compute


def test_planes_are_checked():
    bs = ArrayConfig(pe_mode="bitserial", a_bits=4, w_bits=2)
    with pytest.raises(ValueError, match=r"^a_planes must be in 1\.\.4, not 5$"):
        gemm_cycles(bs, 4, 4, 4, 5, 1)
    with pytest.raises(ValueError, match=r"^w_planes must be in 1\.\.2, not 0$"):
        run_patterns(bs, [(4, 4, 4, 1, 0)], {}, np.ones(0, dtype=bool))
    with pytest.raises(ValueError, match=r"^shapes must be a list of \(M, K, N\) integer "):
        run_patterns(ArrayConfig(), [(4, 4, 4, 1, 1)], {}, np.ones(0, dtype=bool))


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_large_gemm_reaches_high_utilization(dataflow):
    """The issue's throughput case: M = 256, K = N = 4 x the array, stall-free."""
    for side in (4, 8, 16):
        config = ArrayConfig(rows=side, cols=side, dataflow=dataflow)
        s = gemm_schedule(config, 256, 4 * side, 4 * side)
        assert s.macs / (s.cycles * side * side) >= 0.9


def test_bandwidth_limit_adds_stalls_monotonically():
    config = ArrayConfig(rows=4, cols=4, dataflow="os")
    shape = (64, 32, 16)
    free = gemm_cycles(config, *shape)
    cycles = [bandwidth_limited(config, [shape], b)[0]["cycles"] for b in (0.25, 0.5, 1, 3)]
    assert cycles == sorted(cycles, reverse=True)
    assert cycles[-1] == free          # three streams at one beat each: no limit at all
    assert cycles[0] > cycles[1] > free


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_latency_table_follows_the_output_stages(dataflow):
    # The table's output-stage share is the hardware's own stage latency (hw.requant,
    # hw.threshold); the rest is the same for all three stages.
    tables = {stage: latencies(ArrayConfig(rows=3, cols=5, dataflow=dataflow,
                                           requant=stage == "requant",
                                           threshold=stage == "threshold"))
              for stage in ("raw", "requant", "threshold")}
    for stage, extra in (("requant", REQUANT_LATENCY), ("threshold", THRESHOLD_LATENCY)):
        assert tables[stage].ws_row - tables["raw"].ws_row == extra
        assert tables[stage].os_row0 - tables["raw"].os_row0 == extra
        assert (tables[stage].fifo, tables[stage].ws_drain) == (tables["raw"].fifo,
                                                                tables["raw"].ws_drain)
    assert isinstance(tables["raw"], Latencies)


def test_model_version_matches_engine():
    from hw.config import TIMING_VERSION
    assert MODEL_VERSION == TIMING_VERSION


def test_bad_shapes_are_refused():
    config = ArrayConfig()
    with pytest.raises(ValueError, match=r"^GEMM sizes must be positive, not \(M, K, N\) = "
                                         r"\(0, 3, 4\)$"):
        gemm_cycles(config, 0, 3, 4)
    with pytest.raises(ValueError, match=r"^words_per_cycle must be a positive number, not 0$"):
        bandwidth_limited(config, [(1, 1, 1)], 0)
    with pytest.raises(ValueError, match=r"^valid pattern 'act' must have the length of the "
                                         r"ready pattern \(3\), not shape \(2,\)$"):
        run_patterns(config, [(1, 1, 1)], {"act": [True, True]}, [True] * 3)


# ---- python -m sim.perf ----

def test_perf_json_and_csv(tmp_path, capsys):
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    assert perf.main(["--network", "resnet50", "--rows", "16", "--cols", "16", "--json",
                      str(js), "--csv", str(cs), "--no-progress"]) == 0
    doc = json.loads(js.read_text())
    assert len(doc["layers"]) == 54
    config = ArrayConfig(rows=16, cols=16)
    for layer in doc["layers"]:
        # Throughput comes from the model's count, nothing else: the commands of the layer's
        # schedule back to back, or (a layer that cannot be split) one GEMM of its shape.
        if layer["fits_buffers"]:
            shapes = schedule_gemm(config, layer["M"], layer["K"], layer["N"]).shapes()
        else:
            shapes = [(layer["M"], layer["K"], layer["N"])]
        assert layer["commands"] == len(shapes)
        assert layer["cycles"] == sum(gemm_cycles(config, *s) for s in shapes) \
            + GAP_BETWEEN_COMMANDS * (len(shapes) - 1)
        assert layer["utilization"] == pytest.approx(layer["macs"] / (layer["cycles"] * 256))
        assert layer["load_cycles"] + layer["compute_cycles"] + layer["idle_cycles"] \
            + layer["drain_cycles"] == layer["cycles"]
    total = doc["total"]
    assert total["macs"] == sum(layer["macs"] for layer in doc["layers"])
    assert total["utilization"] == pytest.approx(total["macs"] / (total["cycles"] * 256))
    rows = list(csv.reader(cs.open()))
    assert rows[0][:7] == ["LayerID", "Layer", "Total Cycles", "Stall Cycles",
                           "Overall Util %", "Mapping Efficiency %", "Compute Util %"]
    assert len(rows) == 55
    assert "GOPS" in capsys.readouterr().out


def test_perf_gemm_throughput_follows_clock(tmp_path):
    js = tmp_path / "g.json"
    perf.main(["--gemm", "64,32,16", "--clock-mhz", "250", "--json", str(js), "--no-progress"])
    layer = json.loads(js.read_text())["layers"][0]
    assert layer["macs_per_s"] == pytest.approx(64 * 32 * 16 / (layer["cycles"] / 250e6))
    assert layer["gops"] == pytest.approx(2 * layer["macs_per_s"] / 1e9)


def test_perf_low_bit_engines(tmp_path):
    # Utilization is against the PEs' peak: pack MACs per cycle (xnor), pack / planes^2
    # (bit-serial); the cycles are the model's for the given planes.
    js = tmp_path / "b.json"
    assert perf.main(["--gemm", "64,96,16", "--rows", "4", "--cols", "4", "--pe-mode",
                      "bitserial", "--pack", "4", "--a-bits", "6", "--planes", "3,2",
                      "--json", str(js), "--no-progress"]) == 0
    doc = json.loads(js.read_text())
    layer = doc["layers"][0]
    config = ArrayConfig(rows=4, cols=4, pe_mode="bitserial", pack=4, a_bits=6)
    assert layer["cycles"] == gemm_cycles(config, 64, 96, 16, 3, 2)
    assert layer["utilization"] == pytest.approx(layer["macs"] / (layer["cycles"] * 16 * 4 / 6))
    assert layer["macs_per_cycle"] == pytest.approx(64 * 96 * 16 / layer["cycles"])
    assert doc["planes"] == [3, 2]
    xnor = ArrayConfig(rows=4, cols=4, pe_mode="xnor", pack=4)
    assert perf.main(["--gemm", "64,96,16", "--rows", "4", "--cols", "4", "--pe-mode", "xnor",
                      "--pack", "4", "--json", str(js), "--no-progress"]) == 0
    layer = json.loads(js.read_text())["layers"][0]
    assert layer["cycles"] == gemm_cycles(xnor, 64, 96, 16)
    assert layer["utilization"] == pytest.approx(layer["macs"] / (layer["cycles"] * 16 * 4))


def test_compare_modes_rows_are_the_model_counts():
    base = ArrayConfig(rows=4, cols=4, dataflow="os")
    rows = perf.compare_modes(base, 64, 100, 12, pack=4)
    assert [(r["mode"], r["bits"]) for r in rows] == \
        [("mac", 8)] + [("bitserial", b) for b in range(1, 9)] + [("xnor", 1)]
    mac = ArrayConfig(rows=4, cols=4, dataflow="os")
    assert rows[0]["cycles"] == gemm_cycles(mac, 64, 100, 12)
    bs = ArrayConfig(rows=4, cols=4, dataflow="os", pe_mode="bitserial", pack=4)
    for r in rows[1:9]:
        assert r["cycles"] == gemm_cycles(bs, 64, 100, 12, r["bits"], r["bits"])
        assert r["peak_macs_per_cycle"] == pytest.approx(16 * 4 / r["bits"] ** 2)
    # One plane each: the same schedule as the binary engine with the same words.
    assert rows[1]["cycles"] == rows[-1]["cycles"]
    cycles = [r["cycles"] for r in rows[1:9]]
    assert cycles == sorted(cycles)


@pytest.mark.parametrize(("args", "message"), [
    (["--gemm", "0,1,1"], r"--gemm must be M,K,N \(three positive integers\), not '0,1,1'"),
    (["--gemm", "1,1,1", "--planes", "2,2"], r"--planes needs --pe-mode bitserial, not mac"),
    (["--gemm", "1,1,1", "--pe-mode", "bitserial", "--a-bits", "4", "--planes", "5,1"],
     r"--planes A must be at most the engine's a_bits \(4\), not 5"),
    (["--gemm", "1,1,1", "--pe-mode", "bitserial", "--planes", "0,1"],
     r"--planes must be A,W \(two positive integers\), not '0,1'"),
    (["--network", "resnet50", "--compare-modes"], r"--compare-modes needs --gemm M,K,N"),
    (["--network", "nope"], r"Network must be one of .*, not 'nope'"),
    (["--gemm", "1,1,1", "--clock-mhz", "-5"], r"--clock-mhz must be a positive number"),
    (["--gemm", "1,1,1", "--rows", "0"], r"ArrayConfig\.rows must be an integer in 1\.\.256"),
])
def test_perf_bad_input(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        perf.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(message, err), err
