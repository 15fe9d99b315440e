"""The latency table beside ``ArrayConfig``: pinned values, and the generator and the cycle
model both built on it."""

import numpy as np
import pytest
from amaranth.sim import Simulator

import sim.engine_model
from hw import requant, threshold
from hw.config import STAGE_LATENCY, ArrayConfig, Latencies, latencies
from hw.requant import Requantizer
from hw.threshold import ThresholdUnit


def test_stage_latencies_are_pinned():
    # A change here changes the engine's timing: TIMING_VERSION and the model with it.
    assert dict(STAGE_LATENCY) == {"requant": 5, "threshold": 1, "raw": 0, "fifo": 2}
    with pytest.raises(TypeError):
        STAGE_LATENCY["requant"] = 4


@pytest.mark.parametrize(("fields", "expected"), [
    (dict(rows=3, cols=5), Latencies(output_stage=5, ws_tag=6, ws_row=14, ws_drain=5,
                                     os_token=8, os_row0=15, fifo=2)),
    (dict(rows=1, cols=1, threshold=True), Latencies(output_stage=1, ws_tag=0, ws_row=4,
                                                     ws_drain=0, os_token=2, os_row0=5,
                                                     fifo=2)),
    (dict(rows=2, cols=4, requant=False), Latencies(output_stage=0, ws_tag=4, ws_row=7,
                                                    ws_drain=3, os_token=6, os_row0=8,
                                                    fifo=2)),
])
def test_derived_latencies(fields, expected):
    assert latencies(ArrayConfig(**fields)) == expected


def test_generator_and_model_read_the_table():
    assert requant.REQUANT_LATENCY == STAGE_LATENCY["requant"]
    assert threshold.THRESHOLD_LATENCY == STAGE_LATENCY["threshold"]
    assert sim.engine_model.latencies is latencies
    assert sim.engine_model.Latencies is Latencies


def _first_out_valid(dut, drive):
    """Cycle in which ``out_valid`` first rises after ``valid`` is high in cycle 0 only."""
    seen = []

    async def bench(ctx):
        for t in range(12):
            drive(ctx)
            ctx.set(dut.valid, t == 0)
            seen.append(ctx.get(dut.out_valid))
            await ctx.tick()

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return int(np.argmax(seen))


def test_requantizer_takes_its_table_latency():
    config = ArrayConfig(rows=2, cols=2)
    dut = Requantizer(config)
    assert _first_out_valid(dut, lambda ctx: None) == STAGE_LATENCY["requant"]


def test_threshold_unit_takes_its_table_latency():
    config = ArrayConfig(rows=2, cols=2, threshold=True)
    dut = ThresholdUnit(config)
    assert _first_out_valid(dut, lambda ctx: None) == STAGE_LATENCY["threshold"]
