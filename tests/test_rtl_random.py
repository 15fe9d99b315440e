"""Random engine configurations of ``python -m hw.regress --random-configs``: drawn valid,
reproducible from the seed, covering every field, PE mode, dataflow and output stage."""

import dataclasses
import re

import pytest

from hw.config import DATAFLOWS, PE_MODES, ArrayConfig, config_from_args
from hw.regress import _parser, config_flags, config_seed, main, random_config


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
