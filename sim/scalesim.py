"""SCALE-Sim v2's stall-free compute cycles and utilization of a layer, in closed form.

What is reproduced
------------------
SCALE-Sim v2 (scalesim-project/scale-sim-v2; checked against the PyPI release
``scalesim==2.0.2``) simulates one layer in two steps:

1. ``scalesim/compute/systolic_compute_{os,ws,is}.py``, ``create_*_demand_mat()``: for
   every fold (tile of the operand matrices mapped onto the ``R x C`` array) it builds
   IFMAP, filter and OFMAP *demand matrices*, one row per cycle, padded with ``-1``
   (no request) for the pipeline fill and drain, and skewed by ``skew_matrix``
   (``rows x cols`` becomes ``(rows + cols - 1) x cols``). The three matrices of a layer
   have the same number of rows, ``L``.
2. ``scalesim/memory/double_buffered_scratchpad_mem.py``, ``service_memory_requests()``:
   row ``i`` is issued at cycle ``i + stalls`` and ``total_cycles`` is the service cycle
   of the last OFMAP row. ``write_buffer.service_writes`` returns the issue cycle itself
   when it does not stall, so with no memory stalls ``total_cycles = L - 1``: SCALE-Sim
   reports one cycle less than the rows it generates. (SCALE-Sim issue #125 shows it:
   a 4x4 OS array on a 4x4x4 GEMM has 10 demand rows and reports "Compute cycles: 9".)

``single_layer_sim.calc_report_data()`` then reports ``total_cycles`` ("Compute
cycles" / "Total Cycles"), and, in percent:

* overall utilization ``= num_compute / (total_cycles * R * C)``, where
  ``num_compute = ofmap pixels * filters * window = M * N * K``, the layer's MACs;
* mapping efficiency: the mean over folds of ``rows_used * cols_used / (R * C)``;
* compute utilization: the mean over folds of
  ``rows_used * cols_used * T / (R * C * cycles_this_fold)``.

Operand mapping (``operand_matrix.py`` makes the IFMAP operand ``M x K``, the filter
operand ``K x N``, the OFMAP ``M x N``, with ``M = ofmap_h * ofmap_w`` by
``topology_utils.topo_calc_hyperparams``: ``ofmap = ceil((ifmap - filter + stride) /
stride)``, which is one more than the "valid" ``(ifmap - filter) // stride + 1`` of
:class:`~sim.topology.Layer` when ``stride`` does not divide ``ifmap - filter``; a conv
layer is sized here by SCALE-Sim's rule, and its MACs too. ``set_params`` of each dataflow
picks ``Sr`` (spread over array rows), ``Sc`` (over array columns) and ``T`` (streamed in
time)):

====  ====  ====  ====  ============================  =========================
df    Sr    Sc    T     demand rows per fold ``P``    ``cycles_this_fold`` (util)
====  ====  ====  ====  ============================  =========================
os    M     N     K     ``R + C + T - 2``             ``R + C + T - 2``
ws    K     N     M     ``2R + C + T - 2``            ``2R + 2C + T - 3``
is    K     M     N     ``2R + C + T - 2``            ``2R + 2C + T - 3``
====  ====  ====  ====  ============================  =========================

Derivation of ``P``, from the OFMAP demand of one fold: OS prepends ``T - 1`` empty
rows to the ``R x C`` fold of outputs and skews it: ``(T - 1 + R) + C - 1``. WS and IS
prepend ``2R - 1`` empty rows to the ``T x C`` outputs and skew: ``(2R - 1 + T) + C - 1``.
(The IFMAP and filter demands give the same counts: OS IFMAP ``T`` rows plus ``C - 1``
drain rows, skewed over ``R`` columns; WS IFMAP ``R`` weight-load rows, ``T`` rows,
``C - 1`` drain rows, skewed over ``R`` columns.) ``cycles_this_fold`` is SCALE-Sim's
``this_fold_demand.shape[0] + shape[1] - 1`` taken on the matrix it has at hand: the
unskewed OS OFMAP fold (``T - 1 + R`` by ``C``), and for WS / IS the unskewed filter /
IFMAP fold (``R + (R + C + T - 2)`` by ``C``), which counts ``C - 1`` more.

Closed forms, with ``F = ceil(Sr / R) * ceil(Sc / C)`` folds:

* ``compute_cycles = F * P - 1``
* ``mapping_efficiency = Sr * Sc / (F * R * C)`` (the per-fold used PEs sum to
  ``Sr * Sc`` because the folds are a product of row tiles and column tiles)
* ``compute_utilization = M * N * K / (F * R * C * cycles_this_fold)``
* ``overall_utilization = M * N * K / (compute_cycles * R * C)``

A depthwise :class:`~sim.topology.Layer` is ``repeats = channels`` separate layers in
SCALE-Sim (``topology_utils.load_arrays_conv`` expands a ``DP`` row), each reporting
``F * P - 1``: the cycles and folds here are ``repeats`` times those of one channel, and
the utilizations are those of one channel (every copy has the same).

Limits: no memory stalls (SCALE-Sim's stall cycles are 0 when its SRAMs and bandwidth
suffice), no sparsity, batch 1. When ``F * P - 1 = 0`` (a single MAC on a 1x1 array,
OS) SCALE-Sim divides by zero; here the overall utilization is then ``nan``. The OS
fold of ``R + C + T - 2`` is what the v2 code does; the SCALE-Sim paper gives
``2R + C + T - 2`` and the maintainers agreed to change the code (scale-sim-v3 issue #4),
so later versions may differ: this module follows v2.
"""

import math
import numbers

from .topology import Layer

__all__ = ["DATAFLOWS", "scalesim_cycles"]

DATAFLOWS = ("os", "ws", "is")


def _check_dim(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value}")
    return int(value)


def _scalesim_out(ifmap, filt, stride):
    # topology_utils.topo_calc_hyperparams: int(math.ceil((ifmap - filt + stride) / stride))
    return -(-(ifmap - filt + stride) // stride)


def _gemm(layer_or_mnk):
    if isinstance(layer_or_mnk, Layer):
        layer = layer_or_mnk
        m = layer.m
        if layer.is_conv:
            m = (_scalesim_out(layer.ifmap_h, layer.filter_h, layer.stride)
                 * _scalesim_out(layer.ifmap_w, layer.filter_w, layer.stride))
        return m, layer.k, layer.n, layer.repeats
    if isinstance(layer_or_mnk, (tuple, list)) and len(layer_or_mnk) == 3:
        m, k, n = (_check_dim(name, v) for name, v in zip("mkn", layer_or_mnk, strict=True))
        return m, k, n, 1
    raise TypeError(f"layer_or_mnk must be a Layer or an (m, k, n) tuple, not {layer_or_mnk!r}")


def scalesim_cycles(layer_or_mnk, rows, cols, dataflow):
    """SCALE-Sim v2's compute cycles and utilization of one layer, without memory stalls.

    Parameters
    ----------
    layer_or_mnk : Layer or tuple of int
        A :class:`~sim.topology.Layer`, or ``(m, k, n)`` for the GEMM
        ``(m x k) @ (k x n)`` (``m`` output pixels, ``k`` reduction, ``n`` filters).
    rows, cols : int
        Array height ``R`` and width ``C`` (SCALE-Sim's ``ArrayHeight``, ``ArrayWidth``).
    dataflow : str
        ``"os"``, ``"ws"`` or ``"is"`` (SCALE-Sim's ``Dataflow``).

    Returns
    -------
    dict
        ``compute_cycles`` (SCALE-Sim's "Total Cycles" with 0 stall cycles), ``folds``,
        ``row_folds``, ``col_folds``, ``fold_cycles`` (demand rows per fold ``P``),
        ``repeats``, ``m``, ``k``, ``n`` (the GEMM as SCALE-Sim sizes it), ``macs``
        (SCALE-Sim's ``num_compute``), ``sr``, ``sc``, ``t``, and as fractions (SCALE-Sim prints
        percent) ``utilization`` (= ``overall_utilization``), ``mapping_efficiency``,
        ``compute_utilization``. Counts are over all ``repeats`` of a depthwise layer.

    Raises
    ------
    TypeError, ValueError
        An array size that is not a positive integer, an unknown dataflow, or a shape
        that is not a Layer or a tuple of three positive integers.
    """
    m, k, n, repeats = _gemm(layer_or_mnk)
    rows = _check_dim("Array rows", rows)
    cols = _check_dim("Array cols", cols)
    if dataflow not in DATAFLOWS:
        raise ValueError(f"Dataflow must be one of {', '.join(map(repr, DATAFLOWS))}, "
                         f"not {dataflow!r}")
    sr, sc, t = {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[dataflow]
    row_folds = -(-sr // rows)
    col_folds = -(-sc // cols)
    folds = row_folds * col_folds
    if dataflow == "os":
        fold_cycles = rows + cols + t - 2
        util_fold_cycles = fold_cycles
    else:
        fold_cycles = 2 * rows + cols + t - 2
        util_fold_cycles = fold_cycles + cols - 1
    cycles = folds * fold_cycles - 1
    macs = m * k * n
    pes = rows * cols
    overall = macs / (cycles * pes) if cycles else math.nan
    return {
        "compute_cycles": repeats * cycles,
        "folds": repeats * folds,
        "row_folds": row_folds,
        "col_folds": col_folds,
        "fold_cycles": fold_cycles,
        "repeats": repeats,
        "m": m,
        "k": k,
        "n": n,
        "macs": repeats * macs,
        "sr": sr,
        "sc": sc,
        "t": t,
        "utilization": overall,
        "overall_utilization": overall,
        "mapping_efficiency": sr * sc / (folds * pes),
        "compute_utilization": macs / (folds * pes * util_fold_cycles),
    }
