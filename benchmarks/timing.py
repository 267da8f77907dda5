"""Timing helper shared by the benchmarks: interleaved medians, so load hits all runs alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def compare(runs: dict[str, Callable[[], object]], repeats: int, *, warmup: int = 5,
            rounds: int = 5) -> dict[str, float]:  # fmt: skip
    """Median ms per run: after ``warmup`` calls each, ``rounds`` interleaved rounds of
    ``repeats / rounds`` calls each, and the median of the per-round medians."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    per_round: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            per_round[name].append(median_ms(fn, max(1, repeats // rounds)))
    return {name: statistics.median(values) for name, values in per_round.items()}
