"""Golden inference against TensorFlow Lite's reference kernels (LiteRT), every tensor.

Seeded random models (tests/support/nets.py) go graph -> .tflite bytes (nets.tflite_bytes)
-> LiteRT with ``OpResolverType.BUILTIN_REF`` and ``experimental_preserve_all_tensors``;
the golden executor runs the same graph, and every activation tensor must be equal bit
for bit (float32 ones too). The bytes read back (nets.read_tflite) give the same graph.
Reproduce a failure with ``pytest --seed N``; ``QMAC_LITERT_CASES=N`` sets the number of
random cases per op kind (240 by default, a multiple of 40).
"""

import os

import numpy as np
import pytest

import golden
import nets
from nets import Quant
from tests.support.nets import (
    CASES,
    GraphBuilder,
    assert_same_graph,
    chain_case,
    first_difference,
    litert_tensors,
    random_inputs,
)

#: Random single-op cases per op kind, and how many share one model (one interpreter).
CASES_PER_OP = int(os.environ.get("QMAC_LITERT_CASES", "240"))
CASES_PER_MODEL = 40


def _differences(graph, golden_values, litert_values):
    producer = {t: op for op in graph.ops for t in op.outputs}
    report = []
    for index, want in litert_values.items():
        diff = first_difference(golden_values[index], want)
        if diff:
            op = producer.get(index)
            where = f"op {op.index} ({op.kind}) output" if op else "input"
            report.append(f"{where} tensor {index}: {diff}; options "
                          f"{op.options if op else {}}")
    return report


def check_against_litert(graph, inputs):
    """Golden == LiteRT on every activation; the written bytes read back to ``graph``."""
    model = nets.tflite_bytes(graph)
    assert_same_graph(nets.read_tflite(model, name=graph.name), graph)
    want = litert_tensors(model, inputs, graph)
    _, got = nets.run_graph(graph, inputs if len(inputs) > 1 else inputs[0], keep_all=True)
    assert set(got) == set(want)
    report = _differences(graph, got, want)
    assert not report, f"{len(report)} tensors differ:\n" + "\n".join(report[:10])
    return len(want)


@pytest.mark.parametrize("kind", list(CASES))
def test_random_single_ops_match_litert(kind, rng):
    for first in range(0, CASES_PER_OP, CASES_PER_MODEL):
        builder = GraphBuilder()
        for _ in range(CASES_PER_MODEL):
            builder.output(CASES[kind](rng, builder))
        graph = builder.graph(f"{kind.lower()}_cases_{first}")
        assert [op.kind for op in graph.ops] == [kind] * CASES_PER_MODEL
        check_against_litert(graph, random_inputs(rng, graph))


def test_random_networks_match_litert(rng):
    for first in range(0, 40, 10):
        builder = GraphBuilder()
        for _ in range(10):
            builder.output(chain_case(rng, builder))
        graph = builder.graph(f"networks_{first}")
        check_against_litert(graph, random_inputs(rng, graph))


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD",
                                  "AVERAGE_POOL_2D", "SOFTMAX"])
def test_batches_match_litert(kind, rng):
    """A graph written for batch 1 runs a batch of 5 in LiteRT (resized) and in golden."""
    builder = GraphBuilder()
    while len(builder.ops) < 20:
        size = len(builder.tensors)
        out = CASES[kind](rng, builder)
        graph = builder.graph()
        if not nets.execute.batch_free(graph):      # e.g. an FC output of several rows
            builder = _drop_from(builder, size)
            continue
        builder.output(out)
    graph = builder.graph(f"{kind.lower()}_batch")
    check_against_litert(graph, random_inputs(rng, graph, batch=5))


def _drop_from(builder, size):
    kept = GraphBuilder()
    kept.tensors = builder.tensors[:size]
    kept.ops = builder.ops[:-1]
    kept.inputs = [i for i in builder.inputs if i < size]
    kept.outputs = list(builder.outputs)
    return kept


def test_graph_batch_equals_image_by_image(rng):
    """One golden run of a batch equals the runs of its images one at a time."""
    builder = GraphBuilder()
    builder.output(chain_case(rng, builder))
    graph = builder.graph()
    (x,) = random_inputs(rng, graph, batch=6)
    together = nets.run_graph(graph, x)
    one_by_one = np.concatenate([nets.run_graph(graph, x[i:i + 1]) for i in range(6)])
    np.testing.assert_array_equal(together.view(np.uint32), one_by_one.view(np.uint32))


def test_fully_connected_rounds_in_double_where_two_step_rounding_differs():
    """Exact ties of FULLY_CONNECTED: LiteRT and golden round half away from zero in double;
    gemmlowp's two-step rounding (CONV_2D's) rounds some of them the other way."""
    builder = GraphBuilder()
    k = np.arange(-40, 41)
    x = builder.input((k.size, 1), quant=Quant(2.0 ** -4, 3))
    # Multipliers 1/2, 1/4 and 1/8: every accumulator k lands on a multiple of 1/8.
    w_quant = Quant(2.0 ** -np.array([4, 5, 6]), np.zeros(3, np.int64), 0)
    w = builder.tensor((3, 1), "int8", w_quant, np.ones((3, 1), np.int8))
    y = builder.tensor((k.size, 3), quant=Quant(2.0 ** -7, 0))
    builder.output(builder.op("FULLY_CONNECTED", (x, w), (y,), keep_num_dims=False,
                              activation="linear"))
    graph = builder.graph("fc_ties")
    codes = (k + 3).astype(np.int8)[:, None]
    check_against_litert(graph, [codes])
    out = nets.run_graph(graph, codes)
    exact = k[:, None] / 2.0 ** np.array([1, 2, 3])
    np.testing.assert_array_equal(out, golden.round_half_away(exact))
    two_step = golden.quantized_fully_connected_two_step(
        codes, np.ones((3, 1), np.int8), None, x_scale=2.0 ** -4, x_zero_point=3,
        w_scale=w_quant.scale, w_zero_point=0, y_scale=2.0 ** -7, y_zero_point=0)
    assert np.count_nonzero(two_step != out) > 20
