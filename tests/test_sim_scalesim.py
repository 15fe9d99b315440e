"""sim.scalesim: SCALE-Sim v2's compute cycles, against the real simulator and its fold loops."""

import math

import numpy as np
import pytest

from sim.scalesim import DATAFLOWS, scalesim_cycles
from sim.topology import Layer, read_topology

# Recorded from the real simulator, SCALE-Sim v2.0.2 (PyPI ``scalesim==2.0.2``): one layer
# per topology file, run through ``single_layer_sim`` with InterfaceBandwidth CALC and
# 8192 kB SRAMs; every run reported 0 stall cycles. Rows are conv rows (name, IFMAP
# height, width, filter height, width, channels, num filter, stride) or GEMM rows (name,
# M, N, K) in SCALE-Sim's column order; a ``DP`` name is expanded by SCALE-Sim into
# ``channels`` layers, whose cycles are summed. Columns: rows, cols, dataflow, total
# cycles, overall utilization %, mapping efficiency %, compute utilization %.
SCALESIM_V2_RUNS = [
    (("C1", 1, 4, 1, 1, 4, 4, 1), 4, 4, "os", 9, 44.44444444, 100, 40),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 4, 4, "ws", 13, 30.76923077, 100, 23.52941176),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 4, 4, "is", 13, 30.76923077, 100, 23.52941176),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 3, 5, "os", 19, 22.45614035, 53.33333333, 21.33333333),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 3, 5, "ws", 25, 17.06666667, 53.33333333, 12.54901961),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 3, 5, "is", 25, 17.06666667, 53.33333333, 12.54901961),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 8, 2, "os", 23, 17.39130435, 50, 16.66666667),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 8, 2, "ws", 39, 10.25641026, 50, 9.523809524),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 8, 2, "is", 39, 10.25641026, 50, 9.523809524),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 1, 6, "os", 35, 30.47619048, 66.66666667, 29.62962963),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 1, 6, "ws", 39, 27.35042735, 66.66666667, 17.77777778),
    (("C1", 1, 4, 1, 1, 4, 4, 1), 1, 6, "is", 39, 27.35042735, 66.66666667, 17.77777778),
    (("C2", 7, 6, 3, 2, 3, 11, 2), 3, 5, "os", 215, 55.25581395, 73.33333333, 55),
    (("C2", 7, 6, 3, 2, 3, 11, 2), 3, 5, "ws", 323, 36.78018576, 73.33333333, 30),
    (("C2", 7, 6, 3, 2, 3, 11, 2), 3, 5, "is", 239, 49.70711297, 90, 41.25),
    (("C2", 7, 6, 3, 2, 3, 11, 2), 8, 2, "os", 311, 35.81189711, 51.5625, 35.69711538),
    (("C2", 7, 6, 3, 2, 3, 11, 2), 8, 2, "ws", 449, 24.80512249, 68.75, 23.79807692),
    (("C2", 7, 6, 3, 2, 3, 11, 2), 8, 2, "is", 404, 27.56806931, 67.5, 26.51785714),
    (("C2", 7, 6, 3, 2, 3, 11, 2), 1, 6, "os", 413, 71.91283293, 91.66666667, 71.73913043),
    (("C2", 7, 6, 3, 2, 3, 11, 2), 1, 6, "ws", 539, 55.10204082, 91.66666667, 41.25),
    (("C2", 7, 6, 3, 2, 3, 11, 2), 1, 6, "is", 611, 48.60883797, 75, 37.5),
    (("C3", 9, 9, 3, 3, 2, 5, 1), 3, 5, "os", 407, 72.23587224, 96.07843137, 72.05882353),
    (("C3", 9, 9, 3, 3, 2, 5, 1), 3, 5, "ws", 347, 84.72622478, 100, 79.03225806),
    (("C3", 9, 9, 3, 3, 2, 5, 1), 3, 5, "is", 839, 35.04171633, 98, 27.22222222),
    (("C3", 9, 9, 3, 3, 2, 5, 1), 8, 2, "os", 545, 50.5733945, 72.91666667, 50.48076923),
    (("C3", 9, 9, 3, 3, 2, 5, 1), 8, 2, "ws", 584, 47.19606164, 62.5, 46.40151515),
    (("C3", 9, 9, 3, 3, 2, 5, 1), 8, 2, "is", 1574, 17.51111817, 73.5, 16.70454545),
    (("C3", 9, 9, 3, 3, 2, 5, 1), 1, 6, "os", 1126, 65.27531083, 83.33333333, 65.2173913),
    (("C3", 9, 9, 3, 3, 2, 5, 1), 1, 6, "ws", 989, 74.31749242, 83.33333333, 68.05555556),
    (("C3", 9, 9, 3, 3, 2, 5, 1), 1, 6, "is", 1781, 41.26895003, 90.74074074, 28.35648148),
    (("C4", 5, 8, 1, 1, 16, 1, 1), 3, 5, "os", 307, 13.89793702, 19.04761905, 13.85281385),
    (("C4", 5, 8, 1, 1, 16, 1, 1), 3, 5, "ws", 293, 14.56200228, 17.77777778, 13.41719078),
    (("C4", 5, 8, 1, 1, 16, 1, 1), 3, 5, "is", 479, 8.907446068, 88.88888889, 6.349206349),
    (("C4", 5, 8, 1, 1, 16, 1, 1), 8, 2, "os", 119, 33.61344538, 50, 33.33333333),
    (("C4", 5, 8, 1, 1, 16, 1, 1), 8, 2, "ws", 111, 36.03603604, 50, 35.0877193),
    (("C4", 5, 8, 1, 1, 16, 1, 1), 8, 2, "is", 679, 5.8910162, 100, 5.555555556),
    (("C4", 5, 8, 1, 1, 16, 1, 1), 1, 6, "os", 839, 12.71354787, 16.66666667, 12.6984127),
    (("C4", 5, 8, 1, 1, 16, 1, 1), 1, 6, "ws", 735, 14.51247166, 16.66666667, 13.07189542),
    (("C4", 5, 8, 1, 1, 16, 1, 1), 1, 6, "is", 783, 13.62281822, 95.23809524, 7.936507937),
    (("C5", 12, 10, 5, 3, 1, 6, 3), 3, 5, "os", 251, 38.24701195, 53.33333333, 38.0952381),
    (("C5", 12, 10, 5, 3, 1, 6, 3), 3, 5, "ws", 249, 38.55421687, 60, 33.10344828),
    (("C5", 12, 10, 5, 3, 1, 6, 3), 3, 5, "is", 299, 32.10702341, 80, 25.26315789),
    (("C5", 12, 10, 5, 3, 1, 6, 3), 8, 2, "os", 137, 65.69343066, 100, 65.2173913),
    (("C5", 12, 10, 5, 3, 1, 6, 3), 8, 2, "ws", 191, 47.12041885, 93.75, 45.45454545),
    (("C5", 12, 10, 5, 3, 1, 6, 3), 8, 2, "is", 351, 25.64102564, 93.75, 24.45652174),
    (("C5", 12, 10, 5, 3, 1, 6, 3), 1, 6, "os", 319, 75.23510972, 100, 75),
    (("C5", 12, 10, 5, 3, 1, 6, 3), 1, 6, "ws", 329, 72.94832827, 100, 59.25925926),
    (("C5", 12, 10, 5, 3, 1, 6, 3), 1, 6, "is", 539, 44.52690167, 88.88888889, 31.37254902),
    (("C6_DP", 8, 8, 3, 3, 3, 1, 1), 3, 5, "os", 537, 12.06703911, 20, 12),
    (("C6_DP", 8, 8, 3, 3, 3, 1, 1), 3, 5, "ws", 402, 16.11940299, 20, 14.69387755),
    (("C6_DP", 8, 8, 3, 3, 3, 1, 1), 3, 5, "is", 717, 9.037656904, 90, 6.428571429),
    (("C6_DP", 8, 8, 3, 3, 3, 1, 1), 8, 2, "os", 252, 24.10714286, 45, 23.82352941),
    (("C6_DP", 8, 8, 3, 3, 3, 1, 1), 8, 2, "ws", 309, 19.66019417, 28.125, 19.10377358),
    (("C6_DP", 8, 8, 3, 3, 3, 1, 1), 8, 2, "is", 1833, 3.314238953, 56.25, 3.125),
    (("C6_DP", 8, 8, 3, 3, 3, 1, 1), 1, 6, "os", 1509, 10.73558648, 16.66666667, 10.71428571),
    (("C6_DP", 8, 8, 3, 3, 3, 1, 1), 1, 6, "ws", 1131, 14.32360743, 16.66666667, 12.76595745),
    (("C6_DP", 8, 8, 3, 3, 3, 1, 1), 1, 6, "is", 1131, 14.32360743, 100, 8.333333333),
    (("C7_DP", 9, 7, 3, 3, 2, 1, 2), 3, 5, "os", 118, 12.20338983, 20, 12),
    (("C7_DP", 9, 7, 3, 3, 2, 1, 2), 3, 5, "ws", 124, 11.61290323, 20, 9.6),
    (("C7_DP", 9, 7, 3, 3, 2, 1, 2), 3, 5, "is", 178, 8.08988764, 80, 5.714285714),
    (("C7_DP", 9, 7, 3, 3, 2, 1, 2), 8, 2, "os", 66, 20.45454545, 37.5, 19.85294118),
    (("C7_DP", 9, 7, 3, 3, 2, 1, 2), 8, 2, "ws", 110, 12.27272727, 28.125, 11.63793103),
    (("C7_DP", 9, 7, 3, 3, 2, 1, 2), 8, 2, "is", 406, 3.325123153, 56.25, 3.125),
    (("C7_DP", 9, 7, 3, 3, 2, 1, 2), 1, 6, "os", 334, 10.77844311, 16.66666667, 10.71428571),
    (("C7_DP", 9, 7, 3, 3, 2, 1, 2), 1, 6, "ws", 322, 11.18012422, 16.66666667, 8.695652174),
    (("C7_DP", 9, 7, 3, 3, 2, 1, 2), 1, 6, "is", 250, 14.4, 100, 8.333333333),
    (("G1", 20, 13, 9), 3, 5, "os", 314, 49.68152866, 82.53968254, 49.52380952),
    (("G1", 20, 13, 9), 3, 5, "ws", 260, 60, 86.66666667, 52.52525253),
    (("G1", 20, 13, 9), 3, 5, "is", 263, 59.31558935, 100, 50),
    (("G1", 20, 13, 9), 8, 2, "os", 356, 41.08146067, 77.38095238, 40.96638655),
    (("G1", 20, 13, 9), 8, 2, "ws", 503, 29.07554672, 52.23214286, 28.23359073),
    (("G1", 20, 13, 9), 8, 2, "is", 579, 25.25906736, 56.25, 24.375),
    (("G1", 20, 13, 9), 1, 6, "os", 839, 46.48390942, 72.22222222, 46.42857143),
    (("G1", 20, 13, 9), 1, 6, "ws", 701, 55.63480742, 72.22222222, 46.59498208),
    (("G1", 20, 13, 9), 1, 6, "is", 683, 57.10102489, 83.33333333, 45.13888889),
    (("G2", 1, 1, 1), 3, 5, "os", 6, 1.111111111, 6.666666667, 0.9523809524),
    (("G2", 1, 1, 1), 3, 5, "ws", 9, 0.7407407407, 6.666666667, 0.4761904762),
    (("G2", 1, 1, 1), 3, 5, "is", 9, 0.7407407407, 6.666666667, 0.4761904762),
    (("G2", 1, 1, 1), 8, 2, "os", 8, 0.78125, 6.25, 0.6944444444),
    (("G2", 1, 1, 1), 8, 2, "ws", 16, 0.390625, 6.25, 0.3472222222),
    (("G2", 1, 1, 1), 8, 2, "is", 16, 0.390625, 6.25, 0.3472222222),
    (("G2", 1, 1, 1), 1, 1, "ws", 1, 100, 100, 50),
    (("G2", 1, 1, 1), 1, 1, "is", 1, 100, 100, 50),
    (("G2", 1, 1, 1), 1, 6, "os", 5, 3.333333333, 16.66666667, 2.777777778),
    (("G2", 1, 1, 1), 1, 6, "ws", 6, 2.777777778, 16.66666667, 1.388888889),
    (("G2", 1, 1, 1), 1, 6, "is", 6, 2.777777778, 16.66666667, 1.388888889),
    (("G3", 33, 2, 17), 3, 5, "os", 252, 29.68253968, 40, 29.56521739),
    (("G3", 33, 2, 17), 3, 5, "ws", 251, 29.80079681, 37.77777778, 27.10144928),
    (("G3", 33, 2, 17), 3, 5, "is", 461, 16.22559653, 89.04761905, 11.87301587),
    (("G3", 33, 2, 17), 8, 2, "os", 124, 56.55241935, 82.5, 56.1),
    (("G3", 33, 2, 17), 8, 2, "ws", 146, 48.03082192, 70.83333333, 46.75),
    (("G3", 33, 2, 17), 8, 2, "is", 917, 7.647219193, 68.75, 7.236842105),
    (("G3", 33, 2, 17), 1, 6, "os", 725, 25.79310345, 33.33333333, 25.75757576),
    (("G3", 33, 2, 17), 1, 6, "ws", 662, 28.24773414, 33.33333333, 25),
    (("G3", 33, 2, 17), 1, 6, "is", 815, 22.94478528, 91.66666667, 14.1025641),
    (("G4", 6, 40, 1), 3, 5, "os", 111, 14.41441441, 100, 14.28571429),
    (("G4", 6, 40, 1), 3, 5, "ws", 119, 13.44537815, 33.33333333, 10.52631579),
    (("G4", 6, 40, 1), 3, 5, "is", 97, 16.49484536, 20, 15.09433962),
    (("G4", 6, 40, 1), 8, 2, "os", 179, 8.379888268, 75, 8.333333333),
    (("G4", 6, 40, 1), 8, 2, "ws", 439, 3.416856492, 12.5, 3.260869565),
    (("G4", 6, 40, 1), 8, 2, "is", 167, 8.982035928, 12.5, 8.771929825),
    (("G4", 6, 40, 1), 1, 6, "os", 251, 15.93625498, 95.23809524, 15.87301587),
    (("G4", 6, 40, 1), 1, 6, "ws", 83, 48.19277108, 95.23809524, 33.61344538),
    (("G4", 6, 40, 1), 1, 6, "is", 45, 88.88888889, 100, 78.43137255),
]


def layer_of(row):
    if len(row) == 4:
        name, m, n, k = row
        return Layer.from_gemm(name, m, k, n)
    return Layer.from_conv(*row, depthwise="DP" in row[0])


@pytest.mark.parametrize(("row", "rows", "cols", "dataflow", "cycles", "overall", "mapping",
                          "compute"), SCALESIM_V2_RUNS)
def test_matches_scalesim_v2(row, rows, cols, dataflow, cycles, overall, mapping, compute):
    result = scalesim_cycles(layer_of(row), rows, cols, dataflow)
    assert result["compute_cycles"] == cycles
    assert 100 * result["overall_utilization"] == pytest.approx(overall, rel=1e-9)
    assert 100 * result["mapping_efficiency"] == pytest.approx(mapping, rel=1e-9)
    assert 100 * result["compute_utilization"] == pytest.approx(compute, rel=1e-9)
    assert result["utilization"] == result["overall_utilization"]


def test_scalesim_issue_125():
    # A 4x4x4 GEMM on a 4x4 OS array: 10 demand rows, and SCALE-Sim v2 reports 9 cycles.
    result = scalesim_cycles((4, 4, 4), 4, 4, "os")
    assert (result["compute_cycles"], result["folds"], result["fold_cycles"]) == (9, 1, 10)


# A direct transcription of SCALE-Sim v2's demand-matrix construction (the fold loops of
# systolic_compute_{os,ws,is}.create_*_demand_mat and skew_matrix), counting rows; the
# memory system then reports the service cycle of the last row, rows - 1, when it never
# stalls (double_buffered_scratchpad_mem.service_memory_requests).

def skew(mat):
    rows, cols = mat.shape
    out = np.full((rows + cols - 1, cols), -1)
    for c in range(cols):
        out[c:c + rows, c] = mat[:, c]
    return out


def used(r_used, c_used, rows, cols):
    """An r_used x c_used block of requests padded with -1 to rows x cols."""
    mat = np.full((rows, cols), -1)
    mat[:r_used, :c_used] = 1
    return mat


def empty(rows, cols):
    return np.full((rows, cols), -1)


def reference(m, k, n, R, C, dataflow):
    sr, sc, t = {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[dataflow]
    ifmap, filt, ofmap = [], [], []
    mapping, compute = [], []
    for fc in range(math.ceil(sc / C)):
        for fr in range(math.ceil(sr / R)):
            r_used = min(R, sr - fr * R)
            c_used = min(C, sc - fc * C)
            if dataflow == "os":
                ifmap.append(skew(np.concatenate((used(t, r_used, t, R), empty(C - 1, R)))))
                filt.append(skew(np.concatenate((used(t, c_used, t, C), empty(R - 1, C)))))
                out = np.concatenate((empty(t - 1, C), np.flip(used(r_used, c_used, R, C), 0)))
                fold_cycles = out.shape[0] + out.shape[1] - 1
                ofmap.append(skew(out))
            else:
                stationary = np.concatenate((np.flip(used(r_used, c_used, R, C), 0),
                                             empty(R + C + t - 2, C)))
                fold_cycles = stationary.shape[0] + stationary.shape[1] - 1
                streamed = skew(np.concatenate((empty(R, R), used(t, r_used, t, R),
                                                empty(C - 1, R))))
                out = skew(np.concatenate((empty(2 * R - 1, C), used(t, c_used, t, C))))
                # WS keeps the filter and streams the IFMAP; IS the other way round.
                ifmap.append(stationary if dataflow == "is" else streamed)
                filt.append(streamed if dataflow == "is" else stationary)
                ofmap.append(out)
            mapping.append(r_used * c_used / (R * C))
            compute.append(r_used * c_used * t / (R * C * fold_cycles))
    lines = [sum(part.shape[0] for part in parts) for parts in (ifmap, filt, ofmap)]
    assert lines[0] == lines[1] == lines[2]
    cycles = lines[2] - 1
    return {
        "compute_cycles": cycles,
        "folds": len(mapping),
        "overall_utilization": m * k * n / (cycles * R * C) if cycles else math.nan,
        "mapping_efficiency": sum(mapping) / len(mapping),
        "compute_utilization": sum(compute) / len(compute),
    }


def check_against_reference(m, k, n, rows, cols, dataflow):
    expected = reference(m, k, n, rows, cols, dataflow)
    result = scalesim_cycles((m, k, n), rows, cols, dataflow)
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(result[key]), (key, m, k, n, rows, cols, dataflow)
        else:
            assert result[key] == pytest.approx(value, rel=1e-12), (
                key, m, k, n, rows, cols, dataflow)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize(("m", "k", "n", "rows", "cols"), [
    (1, 1, 1, 1, 1),        # 1 MAC on one PE (OS: 0 cycles, SCALE-Sim divides by zero)
    (1, 1, 1, 4, 4),
    (4, 4, 4, 4, 4),        # exact fit
    (5, 4, 4, 4, 4),        # one over in each operand in turn
    (4, 5, 4, 4, 4),
    (4, 4, 5, 4, 4),
    (3, 3, 3, 4, 4),        # one under
    (7, 1, 9, 3, 5),        # K = 1
    (1, 13, 6, 3, 5),       # M = 1
    (17, 11, 1, 1, 8),      # N = 1, one-row array
    (12, 9, 10, 8, 1),      # one-column array
    (30, 2, 17, 16, 16),    # everything smaller than the array but one side
])
def test_edges_match_reference(m, k, n, rows, cols, dataflow):
    check_against_reference(m, k, n, rows, cols, dataflow)


def test_random_shapes_match_reference(rng):
    for _ in range(150):
        m, k, n = (int(v) for v in rng.integers(1, 40, size=3))
        rows, cols = (int(v) for v in rng.integers(1, 10, size=2))
        check_against_reference(m, k, n, rows, cols, str(rng.choice(DATAFLOWS)))


# Layers

def test_depthwise_is_channels_times_one_channel():
    layer = Layer.from_conv("Conv_DP", 10, 10, 3, 3, 24, 1, 1, depthwise=True)
    for dataflow in DATAFLOWS:
        whole = scalesim_cycles(layer, 8, 8, dataflow)
        one = scalesim_cycles((64, 9, 1), 8, 8, dataflow)
        assert whole["compute_cycles"] == 24 * one["compute_cycles"]
        assert whole["folds"] == 24 * one["folds"]
        assert whole["macs"] == layer.macs == 24 * 64 * 9
        assert whole["repeats"] == 24
        for key in ("overall_utilization", "mapping_efficiency", "compute_utilization"):
            assert whole[key] == one[key]


def test_uneven_stride_uses_scalesim_ofmap_rule():
    # (12 - 5) % 3 != 0: the "valid" conv has 3 output rows, SCALE-Sim's
    # ceil((12 - 5 + 3) / 3) counts 4 (a window hanging over the edge).
    layer = Layer.from_conv("C5", 12, 10, 5, 3, 1, 6, 3)
    assert (layer.out_h, layer.out_w, layer.m) == (3, 3, 9)
    result = scalesim_cycles(layer, 4, 4, "os")
    assert (result["m"], result["k"], result["n"]) == (16, 15, 6)
    assert result["macs"] == 16 * 15 * 6
    assert result["compute_cycles"] == scalesim_cycles((16, 15, 6), 4, 4, "os")["compute_cycles"]


def test_gemm_layer_is_its_tuple():
    layer = Layer.from_gemm("G", 20, 9, 13)
    for dataflow in DATAFLOWS:
        assert scalesim_cycles(layer, 8, 4, dataflow) == scalesim_cycles((20, 9, 13), 8, 4,
                                                                          dataflow)


# SCALE-Sim v2.0.2's own loader (topologies.load_arrays, get_num_layers, get_all_mac_ops)
# on each bundled file with its "#" comment lines removed: the layers it simulates (a DP
# row expanded into one layer per channel) and its MAC count.
@pytest.mark.parametrize(("name", "scalesim_layers", "scalesim_macs"), [
    ("resnet50", 54, 3_479_536_384),
    ("mobilenet_v1", 4975, 568_740_352),
    ("mobilenet_v2", 7172, 300_774_272),
    ("bert_base", 30, 931_135_488),
])
def test_bundled_network_as_scalesim_loads_it(name, scalesim_layers, scalesim_macs):
    results = [scalesim_cycles(layer, 8, 8, "os") for layer in read_topology(name)]
    assert sum(r["repeats"] for r in results) == scalesim_layers
    assert sum(r["macs"] for r in results) == scalesim_macs


# Whole bundled networks, each layer summed, against the real simulator (as above) run on
# the bundled file with its "#" comment lines removed.
@pytest.mark.parametrize(("name", "rows", "cols", "dataflow", "total"), [
    ("bert_base", 32, 32, "os", 980_706),
    ("bert_base", 32, 32, "ws", 1_577_058),
    ("bert_base", 32, 32, "is", 1_017_570),
    ("resnet50", 128, 128, "os", 611_561),
])
def test_bundled_network_matches_scalesim_v2(name, rows, cols, dataflow, total):
    layers = read_topology(name)
    assert sum(scalesim_cycles(layer, rows, cols, dataflow)["compute_cycles"]
               for layer in layers) == total


# Bad arguments

def test_bad_array_size():
    with pytest.raises(ValueError, match=r"^Array rows must be a positive integer, not 0$"):
        scalesim_cycles((1, 1, 1), 0, 4, "os")
    with pytest.raises(TypeError, match=r"^Array cols must be a positive integer, not True$"):
        scalesim_cycles((1, 1, 1), 4, True, "os")


def test_bad_dataflow():
    with pytest.raises(ValueError, match=r"^Dataflow must be one of 'os', 'ws', 'is', "
                                         r"not 'OS'$"):
        scalesim_cycles((1, 1, 1), 4, 4, "OS")


def test_bad_shape():
    with pytest.raises(TypeError, match=r"^layer_or_mnk must be a Layer or an \(m, k, n\) "
                                        r"tuple, not \(1, 2\)$"):
        scalesim_cycles((1, 2), 4, 4, "os")
    with pytest.raises(ValueError, match=r"^k must be a positive integer, not 0$"):
        scalesim_cycles((1, 0, 1), 4, 4, "os")
