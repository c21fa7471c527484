"""``litewf bench``'s figures: what each scenario reports, the sizes it runs at, and the
table that prints each figure next to its bound (``_bench_limits`` measures the bounds).

A figure names the bound it is compared with (``bound``): the machine's bounds measured by
the ``limits`` scenario in the same run (``BOUNDS``), or a figure of the same scenario
(the ``scale`` scenario's "of the empty file"). ``ratio`` is a percentage (the higher the
better) or a multiple (lower is better), as ``BOUNDS`` says.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from ._cli_output import WIDE, table

__all__ = [
    "BOUNDS",
    "FULL",
    "QUICK",
    "Bounds",
    "Figure",
    "Sizes",
    "latency",
    "ms",
    "render",
    "with_ratios",
]


@dataclass(frozen=True, slots=True)
class Figure:
    scenario: str
    measure: str
    value: float
    unit: str
    p50: float | None = None
    p99: float | None = None
    #: What the figure is compared with: a key of ``BOUNDS``, or the text of a figure of
    #: the same run ("% of the empty file"), then with its ``ratio`` already set.
    bound: str | None = None
    ratio: float | None = None


@dataclass(frozen=True, slots=True)
class Sizes:
    workflows: int
    round_trips: int
    messages: int
    recovery: int
    idle_waiters: int
    idle_seconds: float
    #: ``limits``: workflows of the raw-SQL bound; commits timed back to back, after gaps.
    raw_workflows: int = 20_000
    hot_commits: int = 2000
    idle_commits: int = 200
    #: ``scale``: concurrent workflows, steps of one workflow, waiting workflows, and
    #: finished workflows already in the file.
    concurrent: int = 10_000
    steps: int = 20_000
    waiting: int = 100_000
    finished: int = 1_000_000


FULL = Sizes(
    workflows=1000,
    round_trips=200,
    messages=10_000,
    recovery=10_000,
    idle_waiters=1000,
    idle_seconds=5.0,
)
QUICK = Sizes(
    workflows=100,
    round_trips=20,
    messages=300,
    recovery=200,
    idle_waiters=50,
    idle_seconds=0.5,
    raw_workflows=1000,
    hot_commits=100,
    idle_commits=20,
    concurrent=300,
    steps=100,
    waiting=300,
    finished=3000,
)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The machine's bounds, measured by the ``limits`` scenario."""

    raw_sql_workflows_per_s: float
    raw_sql_cpu_us: float
    hot_commit_p50_ms: float
    hot_commits_per_s: float
    idle_commit_p50_ms: float

    @property
    def two_commit_floor_ms(self) -> float:
        """A message into an idle runtime: its send's commit, then the receiver's."""
        return 2 * self.idle_commit_p50_ms

    def as_dict(self) -> dict[str, float]:
        return {**dataclasses.asdict(self), "two_commit_floor_ms": self.two_commit_floor_ms}


#: Each bound: its text in the table, whether the ratio is a percentage of it (else a
#: multiple of it), and the figure of ``Bounds`` it divides by.
BOUNDS: dict[str, tuple[str, bool, str]] = {
    "raw-sql": ("raw-SQL workflows/s", True, "raw_sql_workflows_per_s"),
    "raw-sql-cpu": ("raw-SQL CPU per workflow", False, "raw_sql_cpu_us"),
    "hot-commits": ("hot commits/s", True, "hot_commits_per_s"),
    "hot-commit": ("hot commit p50", False, "hot_commit_p50_ms"),
    "floor": ("two-commit floor", False, "two_commit_floor_ms"),
}


def ms(values: list[float]) -> tuple[float, float]:
    """The p50 and p99 of ``values`` (seconds), in ms."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def latency(
    scenario: str, measure: str, seconds: list[float], bound: str | None = "floor"
) -> Figure:
    """A round-trip figure: its median in ms, with p50 and p99, against ``bound``."""
    p50, p99 = ms(seconds)
    return Figure(scenario, measure, p50, "ms (p50)", p50, p99, bound)


def with_ratios(figures: list[Figure], bounds: Bounds | None) -> list[Figure]:
    """``figures`` with the ratio to their bound set (left None without ``bounds``)."""
    if bounds is None:
        return figures
    done = []
    for f in figures:
        if f.bound in BOUNDS and f.ratio is None:
            _, percent, field = BOUNDS[f.bound]
            limit = float(getattr(bounds, field))
            ratio = f.value / limit * (100 if percent else 1) if limit > 0 else None
            f = dataclasses.replace(f, ratio=ratio)
        done.append(f)
    return done


def _versus(f: Figure) -> str:
    if f.ratio is None or f.bound is None:
        return ""
    # A figure of the same run: a rate as a percentage of it, a latency as a multiple.
    text, percent = BOUNDS[f.bound][:2] if f.bound in BOUNDS else (f.bound, f.unit[:2] != "ms")
    return f"{f.ratio:.0f}% of {text}" if percent else f"{f.ratio:.2f}x {text}"


def render(figures: list[Figure]) -> str:
    """The figures as the CLI's table, with a rule under the headers."""
    headers = ["scenario", "measure", "figure", "unit", "p50 ms", "p99 ms", "vs bound"]
    rows = [
        [f.scenario, f.measure, f"{f.value:,.2f}", f.unit, _two(f.p50), _two(f.p99), _versus(f)]
        for f in figures
    ]
    return table(headers, rows, width=WIDE, rule=True)


def _two(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
