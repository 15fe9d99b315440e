"""Random engine configurations of ``python -m hw.regress --random-configs``: drawn valid,
reproducible from the seed, covering every field, PE mode, dataflow and output stage; a
few run in Icarus, with the one-bit result payloads that the first campaign found broken."""

import dataclasses
import json
import re

import numpy as np
import pytest

from hw.config import DATAFLOWS, PE_MODES, ArrayConfig, config_from_args
from hw.regress import (
    _parser,
    config_flags,
    config_seed,
    cycle_model_summary,
    design_key,
    main,
    random_config,
    run_regression,
)

#: Engines whose result payload is one bit (one column of threshold bits), and a mac
#: engine with threshold outputs: configurations the first random campaign found failing
#: in the testbench (a 1-bit payload reads as a cocotb ``Logic``; the mac edge cases gave
#: the requantizer's clamp to the threshold parameters).
ONE_BIT_AND_MAC_THRESHOLD = {
    "ws1x1_xnor_p4_thr": ArrayConfig(rows=1, cols=1, pe_mode="xnor", pack=4, threshold=True,
                                     max_m=12, max_k=20, max_n=4),
    "os5x1_xnor_p2_thr": ArrayConfig(rows=5, cols=1, dataflow="os", pe_mode="xnor", pack=2,
                                     threshold=True, max_m=16, max_k=40, max_n=4),
    "os4x2_a7w8_thr": ArrayConfig(rows=4, cols=2, dataflow="os", a_bits=7, threshold=True,
                                  max_m=21, max_k=20, max_n=3),
}


def test_random_configs_reproduce_from_the_seed(seed):
    for index in range(20):
        assert random_config(seed, index) == random_config(seed, index)
        assert config_seed(seed, index) == config_seed(seed, index)
    assert len({random_config(seed, i) for i in range(20)}) > 15


def test_random_configs_cover_every_mode_dataflow_stage_and_field(seed):
    configs = [random_config(seed, i) for i in range(300)]
    assert {c.pe_mode for c in configs} == set(PE_MODES)
    assert {c.dataflow for c in configs} == set(DATAFLOWS)
    assert {(c.requant, c.threshold) for c in configs} == {(True, False), (False, True),
                                                            (False, False)}
    defaults = ArrayConfig()
    for field in dataclasses.fields(ArrayConfig):
        values = {getattr(c, field.name) for c in configs}
        assert len(values) > 1, f"{field.name} is never varied"
    assert any(c.out_depth != c.out_depth_default for c in configs)
    assert any(c.block != defaults.replace(rows=c.rows, cols=c.cols).block for c in configs
               if c.dataflow == "ws")
    for c in configs:   # small enough to build and run in seconds
        assert max(c.rows, c.cols) <= 5 and c.max_k <= 4 * c.chunk + 8


def test_config_flags_give_the_config_back(seed):
    for index in range(30):
        config = random_config(seed, index)
        args = _parser().parse_args(config_flags(config))
        assert config_from_args(args).to_dict() == config.to_dict()


def test_random_configs_refuse_config_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--random-configs", "2", "--rows", "3"])
    assert exit_info.value.code == 2
    assert re.fullmatch(r"python -m hw.regress: error: --random-configs draws every "
                        r"configuration field; give no configuration flags \(got --rows\)\n",
                        capsys.readouterr().err)


def _report(records, cycle_model=True):
    return {"records": records, "cycle_model": cycle_model}


def test_cycle_model_summary_says_what_happened():
    done = [{"rtl_cycles": 40, "model_cycles": 40}, {"rtl_cycles": 41, "model_cycles": 40}]
    assert cycle_model_summary(_report(done)) == "cycle model agrees on 1/2"
    assert re.fullmatch(r"no records: the testbench stopped before writing them \(see the "
                        r"log\)", cycle_model_summary(None))
    assert cycle_model_summary(_report(done, cycle_model=False)).startswith(
        "cycle model: sim.engine_model not found")
    hung = [{"rtl_cycles": 40, "model_cycles": None}]
    assert cycle_model_summary(_report(hung)) == (
        "cycle model compared on 0/1 (the run did not finish)")


@pytest.mark.rtl
@pytest.mark.parametrize("name", ONE_BIT_AND_MAC_THRESHOLD)
def test_one_bit_results_and_mac_thresholds_in_icarus(name, tmp_path, seed):
    config = ONE_BIT_AND_MAC_THRESHOLD[name]
    print(f"{name}: seed {seed}")
    run = run_regression(config, "icarus", seed=seed, gemms=14, stall_prob=0.3,
                         build_dir=tmp_path / design_key(config), work_dir=tmp_path / "run")
    errors = "\n".join((run.report or {}).get("errors", [])[:10])
    assert run.ok, f"{run.result.summary()}\n{errors}\n{run.result.log_tail(30)}"
    assert "threshold-edges" in {r["label"] for r in run.records}
    assert all(r["rtl_cycles"] == r["model_cycles"] for r in run.records)


@pytest.mark.rtl
def test_random_campaign_in_icarus(tmp_path, seed, capsys, monkeypatch):
    monkeypatch.setenv("QMAC_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "campaign.json"
    status = main(["--random-configs", "3", "--seed", str(seed), "--sim", "icarus",
                   "--gemms", "8", "--json", str(out)])
    text = capsys.readouterr().out
    print(text)
    assert status == 0, text
    lines = text.splitlines()
    assert lines[0] == f"seed {seed} (reproduce with --seed {seed}); 3 random configurations; " \
                       "icarus; stall_prob 0.3"
    for index in range(3):
        assert re.match(rf"^ {{3}}{index}  PASS  {random_config(seed, index).default_name}: ",
                        lines[1 + index])
    assert lines[-1] == f"PASS: 3/3 random configurations passed (seed {seed}, icarus)"
    report = json.loads(out.read_text())
    assert [c["config"] for c in report["configs"]] == [random_config(seed, i).to_dict()
                                                        for i in range(3)]
    assert all(c["ok"] and c["exact"] == c["gemms"] == c["cycles"] for c in report["configs"])


@pytest.mark.parametrize("mode", ["mac", "bitserial"])
def test_edge_cases_of_a_tiny_requantizing_accumulator(mode, seed):
    # The first campaign drew a 3-bit requantizing accumulator: the left-shift edge case
    # then asked for biases (-20..20) that the accumulator cannot hold.
    from tests.support import gemm_jobs

    config = ArrayConfig(rows=4, cols=4, pe_mode=mode, acc_bits=3, max_m=12, max_k=20,
                         max_n=9)
    cases = gemm_jobs.generate_cases(config, seed, 20)
    assert "left-shift" in {c.label for c in cases}
    for case in cases:
        assert np.abs(case.gemm.bias).max() <= 4
