"""``python -m hw.bench``: its cases and its command line (measuring is a benchmark)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw.bench import mode_cases, throughput_cases


def test_throughput_cases_are_the_issue_gemm():
    cases = throughput_cases(sizes=(4, 16))
    assert [(c.rows, c.dataflow, shape) for _, c, shape, _ in cases] == [
        (4, "ws", (256, 16, 16)), (4, "os", (256, 16, 16)),
        (16, "ws", (256, 64, 64)), (16, "os", (256, 64, 64))]
    assert all(c.max_m >= 256 and c.max_k >= shape[1] for _, c, shape, _ in cases)


def test_mode_cases_share_one_array_and_gemm():
    cases = mode_cases()
    assert [label for label, *_ in cases] == [
        "int8 mac", "bitserial k=1", "bitserial k=2", "bitserial k=4", "bitserial k=8", "xnor"]
    assert {(c.rows, c.cols, c.dataflow) for _, c, _, _ in cases} == {(8, 8, "ws")}
    assert {shape for *_, shape, _ in cases} == {(256, 256, 32)}
    assert [planes for *_, planes in cases] == [None, (1, 1), (2, 2), (4, 4), (8, 8), None]


@pytest.mark.parametrize(("args", "message"), [
    (["--sizes", "0"], r"--sizes must be in 1\.\.64, not \[0\]"),
    (["--m", "0"], r"--m must be positive, not 0"),
    (["--sim", "vcs"], r"argument --sim: invalid choice: 'vcs'"),
])
def test_bad_flags_are_one_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "hw.bench", *args], capture_output=True,
                          text=True, check=False, cwd=Path(__file__).parents[1])
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and re.match(rf"^python -m hw\.bench: error: {message}", lines[0])
