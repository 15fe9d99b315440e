"""Pareto fronts: the points that no other point beats in every objective."""

import math

__all__ = ["dominates", "pareto_front"]


def _usable(value):
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def dominates(a, b, maximize):
    """Whether point ``a`` dominates ``b``: at least as good in every objective, better in one.

    ``maximize`` holds one bool per objective (True: larger is better)."""
    better = False
    for x, y, up in zip(a, b, maximize, strict=True):
        if (x < y) if up else (x > y):
            return False
        if x != y:
            better = True
    return better


def pareto_front(points, maximize):
    """Indices (ascending) of the non-dominated ``points``.

    Parameters
    ----------
    points : sequence of sequences
        One tuple of objective values per point. A point with a missing value (None or
        NaN) in any objective is not a candidate (a failed engine has no throughput).
    maximize : sequence of bool
        Per objective, whether larger is better.

    Points are visited in decreasing lexicographic order of their "larger is better"
    values, so that any point that dominates another is visited before it: a point is on
    the front exactly when no point already on the front dominates it. Equal points do
    not dominate each other; both stay on the front.
    """
    maximize = tuple(bool(m) for m in maximize)
    if not maximize:
        raise ValueError("pareto_front needs at least one objective, not none")
    candidates = []
    for i, point in enumerate(points):
        if len(point) != len(maximize):
            raise ValueError(f"point {i} has {len(point)} objectives, not {len(maximize)}")
        if all(_usable(v) for v in point):
            candidates.append(i)

    def oriented(i):
        return tuple(v if up else -v for v, up in zip(points[i], maximize, strict=True))

    front = []
    for i in sorted(candidates, key=oriented, reverse=True):
        if not any(dominates(points[j], points[i], maximize) for j in front):
            front.append(i)
    return sorted(front)
