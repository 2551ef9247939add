"""Statistics of a refine run: cumulative pass rate by round (the paper's Figure 6), filter counts, diff sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from iterpref.errors import DataError
from iterpref.records import Attempt


@dataclass
class RunStats:
    tasks: int
    max_round: int
    passed_at: dict[int, int]  # round -> tasks whose first pass is at that round
    cumulative_pass_rate: list[float]  # index r: share of tasks passing at some round <= r
    attempts: int
    pairs: Optional[dict] = None  # the pairs summary (filters, diff sizes), when given
    diff_sizes: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _size_stats(histogram: dict) -> dict[str, float]:
    sizes = sorted(int(size) for size, count in histogram.items() for _ in range(int(count)))
    if not sizes:
        return {"pairs": 0}
    return {"pairs": len(sizes), "mean": sum(sizes) / len(sizes), "median": float(sizes[len(sizes) // 2]),
            "max": float(sizes[-1])}


def run_stats(trajectories: dict[str, list[Attempt]], pair_summary: Optional[dict] = None) -> RunStats:
    if not trajectories:
        raise DataError("no trajectories: the file holds no attempts")
    max_round = max(a.round for attempts in trajectories.values() for a in attempts)
    passed_at: dict[int, int] = {}
    for attempts in trajectories.values():
        first = next((a.round for a in attempts if a.passed), None)
        if first is not None:
            passed_at[first] = passed_at.get(first, 0) + 1
    total = len(trajectories)
    cumulative, running = [], 0
    for round_ in range(max_round + 1):
        running += passed_at.get(round_, 0)
        cumulative.append(running / total)
    stats = RunStats(tasks=total, max_round=max_round, passed_at=dict(sorted(passed_at.items())),
                     cumulative_pass_rate=cumulative,
                     attempts=sum(len(a) for a in trajectories.values()), pairs=pair_summary)
    if pair_summary:
        sides = ("rejected_lines", "chosen_lines")
        stats.diff_sizes = {side: _size_stats(pair_summary.get(side, {})) for side in sides}
    return stats


def format_table(stats: RunStats) -> str:
    lines = [f"{stats.tasks} tasks, {stats.attempts} attempts", "", "round  passed  cumulative pass rate"]
    for round_, rate in enumerate(stats.cumulative_pass_rate):
        lines.append(f"{round_:>5}  {stats.passed_at.get(round_, 0):>6}  {100 * rate:>6.1f}%")
    if stats.pairs:
        p = stats.pairs
        lines += ["", f"pairs: {p.get('pairs', 0)} kept of {p.get('candidates', 0)} candidates "
                      f"({p.get('passed_first_try', 0)} passed first try, {p.get('never_passed', 0)} never passed)"]
        for name, count in p.get("dropped", {}).items():
            lines.append(f"  dropped {name:<15} {count}")
        for side, sizes in stats.diff_sizes.items():
            if sizes.get("pairs"):
                lines.append(f"  {side:<15} mean {sizes['mean']:.1f}  median {sizes['median']:.0f}  "
                             f"max {sizes['max']:.0f}")
    return "\n".join(lines)


def plot(stats: RunStats, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    rounds = list(range(len(stats.cumulative_pass_rate)))
    rates = [100 * r for r in stats.cumulative_pass_rate]
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot(rounds, rates, marker="o")
    for x, y in zip(rounds, rates):
        axis.annotate(f"{y:.1f}%", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    axis.set_xlabel("repair round")
    axis.set_ylabel("cumulative pass rate (%)")
    axis.set_xticks(rounds)
    axis.set_ylim(0, 105)
    axis.set_title(f"Pass rate by round ({stats.tasks} tasks)")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
