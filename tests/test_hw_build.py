"""``python -m hw.build``: rtl/ is reproducible, output deterministic, errors clean, lint clean.

The build runs both as a subprocess (what a user and the nox ``rtl`` session run) and
in-process through ``hw.build.main``. Manifests are checked against the port declarations
of the Verilog they describe.
"""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw import build
from hw.config import DEFAULT_CONFIGS, TIMING_VERSION, ArrayConfig
from hw.emit import lint, waiver_text, write_design

ROOT = Path(__file__).resolve().parent.parent
RTL = ROOT / "rtl"
PROG = "python -m hw.build"


def run_build(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "hw.build", *args], capture_output=True,
                          text=True, cwd=cwd, check=False)


def files_of(directory):
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir())}


# --- (a) rtl/ is what the generator writes --------------------------------------------------

def test_defaults_reproduce_rtl(tmp_path):
    out = tmp_path / "rtl"
    proc = run_build("--out", str(out))
    assert proc.returncode == 0, proc.stderr
    names = [c.default_name for c in DEFAULT_CONFIGS]
    expected = {f"{n}.{ext}" for n in names for ext in ("v", "vlt", "json", "core")}
    assert set(files_of(out)) == expected
    committed = files_of(RTL)
    for filename, text in files_of(out).items():
        assert filename in committed, f"rtl/{filename} is missing"
        assert text == committed[filename], f"rtl/{filename} differs from the generator's output"
    # One progress line per design, naming the Verilog file.
    assert [line.split()[1] for line in proc.stdout.splitlines()] == \
        [str(out / f"{n}.v") for n in names]


def test_rtl_holds_only_the_defaults():
    names = {c.default_name for c in DEFAULT_CONFIGS}
    assert {p.stem for p in RTL.iterdir() if p.suffix in (".v", ".vlt", ".json", ".core")} == names


# --- (b) deterministic ----------------------------------------------------------------------

SMALL = ["--rows", "2", "--cols", "3", "--dataflow", "os", "--max-k", "20", "--name", "small"]


@pytest.mark.parametrize("mode", [[], ["--pe-mode", "xnor", "--pack", "4", "--threshold"],
                                  ["--pe-mode", "bitserial", "--pack", "2", "--a-bits", "3"]],
                         ids=["mac", "xnor", "bitserial"])
def test_same_configuration_same_bytes(mode, tmp_path, capsys):
    flags = [*SMALL, *mode]
    assert build.main([*flags, "--out", str(tmp_path / "one")]) == 0
    assert build.main([*flags, "--out", str(tmp_path / "two")]) == 0
    # And in another process (another hash seed, another import order).
    proc = run_build(*flags, "--out", str(tmp_path / "three"))
    assert proc.returncode == 0, proc.stderr
    one = files_of(tmp_path / "one")
    assert set(one) == {"small.v", "small.vlt", "small.json", "small.core"}
    assert files_of(tmp_path / "two") == one
    assert files_of(tmp_path / "three") == one
    assert "small.v" in capsys.readouterr().out


def test_no_absolute_paths_in_output(tmp_path):
    build.main([*SMALL, "--out", str(tmp_path)])
    for text in files_of(tmp_path).values():
        assert str(ROOT).encode() not in text
        assert str(tmp_path).encode() not in text


# --- (c) bad configurations -----------------------------------------------------------------

BAD = [
    (["--rows", "0"], r"ArrayConfig\.rows must be an integer in 1\.\.256, not 0"),
    (["--cols", "300"], r"ArrayConfig\.cols must be an integer in 1\.\.256, not 300"),
    (["--rows", "65"], r"ArrayConfig\.rows must be at most 64 for the hardware generator, "
                       r"not 65 \(larger arrays can only be modelled\)"),
    (["--dataflow", "xy"], r"ArrayConfig\.dataflow must be one of ws, os, not 'xy'"),
    (["--pe-mode", "xor"], r"ArrayConfig\.pe_mode must be one of mac, xnor, bitserial, "
                           r"not 'xor'"),
    (["--pe-mode", "xnor", "--pack", "3"], r"ArrayConfig\.pack must be a power of two in "
                                           r"1\.\.64 \(1, 2, 4, 8, 16, 32, 64\), not 3"),
    (["--pack", "8"], r"ArrayConfig\.pack must be 1 for pe_mode 'mac', not 8"),
    (["--threshold", "--requant"], r"ArrayConfig\.requant must be False when threshold is "
                                   r"True \(the threshold compares replace the requantizer\), "
                                   r"not True"),
    (["--acc-bits", "33"], r"ArrayConfig\.acc_bits must be an integer in 2\.\.32, not 33"),
    (["--acc-bits", "1"], r"ArrayConfig\.acc_bits must be an integer in 2\.\.32, not 1"),
    (["--out-bits", "17"], r"ArrayConfig\.out_bits must be an integer in 2\.\.16, not 17"),
    (["--max-k", "0"], r"ArrayConfig\.max_k must be an integer in 1\.\.4096, not 0"),
    (["--dataflow", "os", "--block-rows", "3"],
     r"ArrayConfig\.block_rows must equal rows \(4\) for the output-stationary dataflow, not 3"),
    (["--out-depth", "2"], r"ArrayConfig\.out_depth must be an integer in 3\.\.4096, not 2"),
    (["--rows", "2", "--name", "9bad"],
     r"design name must be a Verilog identifier \(letters, digits, _; not starting with a "
     r"digit\), not '9bad'"),
    (["--rows", "2", "--name", "has-dash"],
     r"design name must be a Verilog identifier \(letters, digits, _; not starting with a "
     r"digit\), not 'has-dash'"),
    (["--name", "alone"],
     r"--name needs configuration flags \(the defaults have their own names\)"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_configuration_in_process(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        build.main([*argv, "--out", str(out)])
    assert exit_info.value.code != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(rf"{re.escape(PROG)}: error: {message}\n", captured.err), captured.err
    assert not out.exists()


@pytest.mark.parametrize(("argv", "message"), [BAD[0], BAD[3], BAD[5], BAD[11]])
def test_bad_configuration_subprocess(argv, message, tmp_path):
    out = tmp_path / "out"
    proc = run_build(*argv, "--out", str(out))
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert re.fullmatch(rf"{re.escape(PROG)}: error: {message}\n", proc.stderr), proc.stderr
    assert not out.exists()


def test_unparsable_flag_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = run_build("--rows", "four", "--out", str(out))
    assert proc.returncode != 0
    assert "--rows" in proc.stderr and "'four'" in proc.stderr
    assert not out.exists()


# --- (d) lint -------------------------------------------------------------------------------

ODD = {
    # Sizes that once made signals zero bits wide (written by Yosys as [-1:0], ASCRANGE):
    # drain counters (rows + cols <= 3), os_elem (rows == 1), one-word memories.
    "ws_1x1": ArrayConfig(rows=1, cols=1),
    "os_1x1": ArrayConfig(rows=1, cols=1, dataflow="os"),
    "ws_2x2_one_tile": ArrayConfig(rows=2, cols=2, max_k=2, max_n=2),
    "os_3x5_raw_acc20": ArrayConfig(rows=3, cols=5, dataflow="os", requant=False, acc_bits=20),
    "ws_2x2_au4w6": ArrayConfig(rows=2, cols=2, a_bits=4, a_signed=False, w_bits=6),
    "ws_2x3_out4_unsigned": ArrayConfig(rows=2, cols=3, out_bits=4, out_signed=False),
    # The smallest output FIFOs (a 2-word one had [-1:0] pointers, found by a Verilator
    # campaign of hw.regress --random-configs).
    "ws_5x1_xnor_fifo3": ArrayConfig(rows=5, cols=1, pe_mode="xnor", pack=1, requant=False,
                                     acc_bits=7, out_depth=3),
    "os_1x2_fifo3": ArrayConfig(rows=1, cols=2, dataflow="os", out_depth=3),
    # Low-bit PE modes at their smallest: one-element words, one-bit planes, one PE.
    "ws_1x1_xnor_p1": ArrayConfig(rows=1, cols=1, pe_mode="xnor", pack=1),
    "os_2x3_xnor_thr": ArrayConfig(rows=2, cols=3, dataflow="os", pe_mode="xnor", pack=4,
                                   threshold=True),
    "os_1x1_bs_a1w1": ArrayConfig(rows=1, cols=1, dataflow="os", pe_mode="bitserial", pack=1,
                                  a_bits=1, w_bits=1, requant=False),
    "ws_2x2_bs_au3w2_thr": ArrayConfig(rows=2, cols=2, pe_mode="bitserial", pack=2, a_bits=3,
                                       a_signed=False, w_bits=2, threshold=True),
}

@pytest.fixture(scope="module")
def odd_designs(tmp_path_factory):
    out = tmp_path_factory.mktemp("odd")
    return {key: write_design(config, config.default_name, out)
            for key, config in ODD.items()}


@pytest.mark.rtl
@pytest.mark.parametrize("name", [c.default_name for c in DEFAULT_CONFIGS])
def test_lint_defaults(name):
    lint(str(RTL / f"{name}.v"), str(RTL / f"{name}.vlt"))


@pytest.mark.rtl
@pytest.mark.parametrize("key", ODD)
def test_lint_odd(key, odd_designs):
    verilog, waivers = odd_designs[key][:2]
    lint(verilog, waivers)


@pytest.mark.rtl
def test_lint_flag_of_the_cli(tmp_path):
    proc = run_build("--rows", "2", "--cols", "2", "--lint", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "lint clean (Verilator" in proc.stdout


def test_waivers_name_only_the_by_construction_rules():
    text = waiver_text("w")
    rules = re.findall(r'^lint_off -rule (\w+) -file "\*w\.v"$', text, re.M)
    assert sorted(rules) == ["PROCASSINIT", "UNUSEDSIGNAL", "WIDTHEXPAND"]
    # Every non-comment line is the header or one of those waivers: no blanket lint_off.
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("//")]
    assert lines[0] == "`verilator_config" and len(lines) == 1 + len(rules)
    for rule in rules:
        assert re.search(rf"^// {rule}: \S.*\.$", text, re.M), f"{rule} has no reason"


# --- (e) manifest ---------------------------------------------------------------------------

_DECL = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
                   r"(?:\[(\d+):(\d+)\]\s+)?\\?([\w$]+)\s*;", re.M)


def verilog_ports(text, name):
    """``{port: (direction, width)}`` from the module header and its port declarations."""
    header = re.search(rf"^module {re.escape(name)}\(([^)]*)\);", text, re.M)
    assert header, f"no module {name} in the Verilog"
    listed = [p.strip() for p in header.group(1).split(",")]
    declared = {}
    for direction, msb, lsb, port in _DECL.findall(text):
        assert port not in declared, f"{port} declared twice"
        width = int(msb) - int(lsb) + 1 if msb else 1
        declared[port] = (direction, width)
    assert sorted(listed) == sorted(declared), "header and declarations disagree"
    assert len(re.findall(r"^module ", text, re.M)) == 1, "more than one module"
    return declared


def check_manifest(config, name, verilog, manifest_text):
    manifest = json.loads(manifest_text)
    ports = verilog_ports(verilog, name)
    listed = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert len(listed) == len(manifest["ports"]), "a port is listed twice"
    assert listed == ports
    assert manifest["timing_version"] == TIMING_VERSION
    assert isinstance(manifest["timing_version"], int)
    assert manifest["name"] == name
    assert manifest["config"] == config.to_dict()
    assert ArrayConfig.from_dict(manifest["config"]).to_dict() == config.to_dict()
    expected_streams = {"cmd": "input", "act": "input", "wgt": "input", "res": "output"}
    if config.has_params:
        expected_streams["par"] = "input"
    assert {s: v["direction"] for s, v in manifest["streams"].items()} == expected_streams
    for stream, info in manifest["streams"].items():
        payload = info["payload"]
        assert ports[f"{stream}__payload"] == (info["direction"], payload["width"])
        # Handshake: valid flows with the payload, ready against it.
        other = "output" if info["direction"] == "input" else "input"
        assert ports[f"{stream}__valid"] == (info["direction"], 1)
        assert ports[f"{stream}__ready"] == (other, 1)
        if payload["kind"] == "struct":
            fields = payload["fields"]
            assert sum(f["width"] for f in fields) == payload["width"]
            assert [f["offset"] for f in fields] == \
                [sum(f["width"] for f in fields[:i]) for i in range(len(fields))]
        elif payload["kind"] == "array":
            assert payload["length"] * payload["element"]["width"] == payload["width"]
    for port in ("clk", "rst"):
        assert ports[port] == ("input", 1)
    for port in ("busy", "error"):
        assert ports[port] == ("output", 1)
    return manifest, ports


@pytest.mark.parametrize("config", DEFAULT_CONFIGS, ids=lambda c: c.default_name)
def test_manifest_of_rtl(config):
    name = config.default_name
    manifest, ports = check_manifest(config, name, (RTL / f"{name}.v").read_text(),
                                     (RTL / f"{name}.json").read_text())
    # Hand-derived widths of the 8x8 defaults. mac a8w8: m 13 bits (max 4096), k and n 9
    # (256), then the 8-bit activation zero point and three 8-bit output fields; 8 lanes of 8
    # bits. xnor (max_k 2048): k 12 bits, no zero point; 8 lanes of 8 one-bit elements.
    # bitserial: two 4-bit plane counts (1..8) for the zero point; 8 lanes of 8 elements of
    # 8 bits. All: bias 32 + m0 32 + shift 6; 8 results of 8 bits.
    cmd, operand = {"mac": (13 + 9 + 9 + 4 * 8, 64), "xnor": (13 + 12 + 9 + 3 * 8, 64),
                    "bitserial": (13 + 9 + 9 + 2 * 4 + 3 * 8, 512)}[config.pe_mode]
    assert ports["cmd__payload"] == ("input", cmd)
    assert ports["act__payload"] == ("input", operand)
    assert ports["wgt__payload"] == ("input", operand)
    assert ports["par__payload"] == ("input", 70)
    assert ports["res__payload"] == ("output", 64)
    assert len(ports) == 2 + 5 * 3 + 2


@pytest.mark.parametrize("key", ["os_3x5_raw_acc20", "ws_2x2_au4w6", "ws_2x3_out4_unsigned"])
def test_manifest_of_odd_designs(key, odd_designs):
    config = ODD[key]
    verilog, _, manifest_path = odd_designs[key][:3]
    manifest, ports = check_manifest(config, config.default_name, Path(verilog).read_text(),
                                     Path(manifest_path).read_text())
    if key == "os_3x5_raw_acc20":
        # Raw accumulators: no parameter stream, 5 lanes of 20 bits; a8 lanes x 3 rows.
        assert "par__payload" not in ports and "par" not in manifest["streams"]
        assert ports["res__payload"] == ("output", 100)
        assert ports["act__payload"] == ("input", 24)
        # m 13, k 9, n 9 and the 8-bit activation zero point only.
        assert ports["cmd__payload"] == ("input", 39)
    elif key == "ws_2x2_au4w6":
        assert ports["act__payload"] == ("input", 8)
        assert ports["wgt__payload"] == ("input", 12)
    else:
        assert ports["res__payload"] == ("output", 12)
        fields = {f["name"]: f for f in manifest["streams"]["cmd"]["payload"]["fields"]}
        assert fields["act_min"]["kind"] == "unsigned" and fields["act_min"]["width"] == 4


@pytest.mark.parametrize("name", [c.default_name for c in DEFAULT_CONFIGS])
def test_manifest_json_is_canonical_text(name):
    text = (RTL / f"{name}.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


# --- (f) help -------------------------------------------------------------------------------

def test_help_mentions_every_field():
    proc = run_build("--help")
    assert proc.returncode == 0
    text = proc.stdout
    for field in dataclasses.fields(ArrayConfig):
        flag = "--" + field.name.replace("_", "-")
        assert re.search(rf"{re.escape(flag)}\b", text), f"{flag} not in --help"
        if field.type is bool or isinstance(field.default, bool):
            assert "--no-" + field.name.replace("_", "-") in text
    for flag in ("--out", "--name", "--lint", "--list"):
        assert flag in text


def test_list_prints_the_defaults(capsys):
    assert build.main(["--list"]) == 0
    assert capsys.readouterr().out.split() == [c.default_name for c in DEFAULT_CONFIGS]


def test_python_m_hw_is_the_build(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hw", "--list"], capture_output=True,
                          text=True, cwd=ROOT, check=False, env={**os.environ})
    assert proc.returncode == 0
    assert proc.stdout.split() == [c.default_name for c in DEFAULT_CONFIGS]
