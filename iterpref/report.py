"""Reports: Markdown text plus PNG plots for a demo run, and the comparison table of the experiment.

Plots: pass rate by repair round (``iterpref.stats.plot``), pass@1 before/after training, failing programs by
error type before/after. Training curves come from the trainer (``curves.png``) and are copied next to them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from iterpref.evaluate import PAPER_ERROR_TYPES, EvalSummary

# Below this many pairs a training run shows that the pipeline works, not whether the method helps.
FEW_PAIRS = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    return plt


def plot_pass_at_1(named: dict[str, EvalSummary], path: str | Path) -> Path:
    """One bar per evaluated model, labelled with its pass@1 in percent."""
    plt = _pyplot()
    names = list(named)
    values = [100 * named[n].pass_at_k.get("1", 0.0) for n in names]
    figure, axis = plt.subplots(figsize=(1.6 + 1.3 * len(names), 3.4))
    bars = axis.bar(names, values, color=["#8c8c8c", "#3b75af", "#e1812c", "#3a923a", "#c03d3e", "#9372b2"][: len(names)])
    for bar, value in zip(bars, values):
        axis.annotate(f"{value:.1f}%", (bar.get_x() + bar.get_width() / 2, value), textcoords="offset points",
                      xytext=(0, 3), ha="center", fontsize=8)
    tasks = next(iter(named.values())).tasks if named else 0
    axis.set_ylabel("held-out pass@1 (%)")
    axis.set_ylim(0, max(values + [10]) * 1.25)
    axis.set_title(f"pass@1 on {tasks} held-out tasks")
    axis.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def error_type_rows(named: dict[str, EvalSummary]) -> list[str]:
    """Every error type seen in any summary plus the paper's four, most frequent first."""
    totals: dict[str, int] = {name: 0 for name in PAPER_ERROR_TYPES}
    for summary in named.values():
        for name, count in summary.error_types.items():
            totals[name] = totals.get(name, 0) + count
    return sorted(totals, key=lambda name: (-totals[name], name))


def plot_error_types(named: dict[str, EvalSummary], path: str | Path) -> Path:
    """Grouped horizontal bars: failing programs per error type, one colour per evaluated model."""
    plt = _pyplot()
    rows = error_type_rows(named)
    height = 0.8 / max(len(named), 1)
    figure, axis = plt.subplots(figsize=(6.5, 1.2 + 0.32 * len(rows) * max(len(named), 1) ** 0.5))
    for index, (name, summary) in enumerate(named.items()):
        positions = [r + index * height for r in range(len(rows))]
        axis.barh(positions, [summary.error_types.get(row, 0) for row in rows], height=height, label=name)
    axis.set_yticks([r + height * (len(named) - 1) / 2 for r in range(len(rows))])
    axis.set_yticklabels([f"{row} *" if row in PAPER_ERROR_TYPES else row for row in rows], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("failing programs (* = counted in the IterPref paper)")
    axis.set_title("Failures by error type")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def pass_table(named: dict[str, EvalSummary]) -> str:
    lines = ["| model | pass@1 | solved | tasks |", "|---|---:|---:|---:|"]
    for name, summary in named.items():
        lines.append(f"| {name} | {100 * summary.pass_at_k.get('1', 0.0):.1f}% | {summary.solved} | {summary.tasks} |")
    return "\n".join(lines)


def error_table(named: dict[str, EvalSummary]) -> str:
    names = list(named)
    lines = ["| error type | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for row in error_type_rows(named):
        label = f"{row} *" if row in PAPER_ERROR_TYPES else row
        lines.append(f"| {label} | " + " | ".join(str(named[n].error_types.get(row, 0)) for n in names) + " |")
    lines.append("\n\\* the error types the IterPref paper counts.")
    return "\n".join(lines)


def pairs_meaning(pairs: int, synthetic: int = 0) -> str:
    """What a pair count lets a reader conclude, in plain words; ``synthetic`` pairs were added for training."""
    if synthetic:
        own = ("No training task went from failing to passing within the repair rounds" if pairs == 0 else
               f"Only {pairs} training task{'s' if pairs != 1 else ''} went from failing to passing")
        return (f"**{pairs} preference pair{'s' if pairs != 1 else ''} from the model's own repairs, topped up with "
                f"{synthetic} synthetic pairs.** {own}, which is expected for a 135M-parameter model on a handful "
                "of HumanEval tasks: it rarely writes a passing program at all. The synthetic pairs are reference "
                "solutions with one injected bug (a misspelt name or a `return None`) against the reference itself, "
                "judged by the same executor. They let training and the second evaluation run end to end, but they "
                "are not the paper's data: a change in held-out pass@1 here says nothing about the method. Scale up "
                "with `--train-tasks`, `--rounds`, a stronger `--model` or `--sampler openai --base-url`.")
    if pairs == 0:
        return ("**No preference pairs.** No training task went from failing to passing within the repair rounds "
                "(or every candidate was filtered out), so there was nothing to train on: training and the second "
                "evaluation were skipped, and this run says nothing about the method. That is expected for a "
                "135M-parameter model on a handful of HumanEval tasks: it rarely writes a passing program at all. "
                "Scale up with `--train-tasks`, `--rounds`, a stronger `--model` or `--sampler openai --base-url`.")
    if pairs < FEW_PAIRS:
        return (f"**{pairs} preference pair{'s' if pairs != 1 else ''}.** That is enough to show that every stage "
                "runs end to end, and far too few to show anything about the method: training here is a smoke "
                "run, and a change in held-out pass@1 of a task or two is noise, not evidence. The paper trains on "
                "tens of thousands of pairs.")
    return (f"**{pairs} preference pairs.** Enough for training to move the model; compare held-out numbers "
            "against a baseline trained on the same pairs (`benchmarks/experiment.py`) before drawing conclusions.")


@dataclass
class DemoFacts:
    """Everything the demo report shows; missing parts (skipped stages) are None."""

    settings: dict[str, object]
    executor_note: str
    refine_table: Optional[str] = None
    refine_plot: Optional[str] = None
    pair_summary: Optional[dict] = None
    train_curves: Optional[str] = None
    train_note: Optional[str] = None
    before: Optional[EvalSummary] = None
    after: Optional[EvalSummary] = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    synthetic_pairs: int = 0  # added to the model's pairs for training (iterpref.pairs.synthetic)
    mechanism: Optional[dict] = None  # the training's heldout_metrics.json (iterpref.train.heldout)


def write_demo_report(facts: DemoFacts, out_dir: str | Path) -> Path:
    """Write report.md (and its PNGs) into ``out_dir``; returns the report's path."""
    out = Path(out_dir)
    pairs = int((facts.pair_summary or {}).get("pairs", 0))
    parts = ["# IterPref demo report", "", pairs_meaning(pairs, facts.synthetic_pairs), "", "## Setup", "",
             facts.executor_note, ""]
    parts += ["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts.settings.items()]
    if facts.stage_seconds:
        parts += ["", "| stage | seconds |", "|---|---:|"]
        parts += [f"| {k} | {v:.0f} |" for k, v in facts.stage_seconds.items()]
        parts += [f"| total | {sum(facts.stage_seconds.values()):.0f} |"]

    parts += ["", "## Debugging loop on the training tasks", ""]
    if facts.refine_table:
        parts += ["```", facts.refine_table, "```", ""]
    if facts.refine_plot:
        parts += [f"![pass rate by repair round]({facts.refine_plot})", ""]
    if facts.pair_summary:
        p = facts.pair_summary
        dropped = ", ".join(f"{k} {v}" for k, v in p.get("dropped", {}).items() if v) or "none"
        parts += [f"Pairs: {p.get('pairs', 0)} kept of {p.get('candidates', 0)} candidates "
                  f"({p.get('passed_first_try', 0)} tasks passed at the first try and give no pair, "
                  f"{p.get('never_passed', 0)} never passed); dropped by filters: {dropped}.", ""]
    if facts.synthetic_pairs:
        parts += [f"Synthetic pairs added for training: {facts.synthetic_pairs} (`synthetic_pairs.jsonl`; the "
                  "training set is `train_pairs.jsonl`).", ""]

    parts += ["## Training", ""]
    if facts.train_note:
        parts += [facts.train_note, ""]
    if facts.train_curves:
        parts += [f"![training curves]({facts.train_curves})", ""]
    if facts.mechanism:
        parts += mechanism_section(facts.mechanism)

    parts += ["## Held-out evaluation", ""]
    named = {name: s for name, s in (("before training", facts.before), ("after training", facts.after)) if s}
    if named:
        parts += [pass_table(named), "", f"![pass@1]({plot_pass_at_1(named, out / 'pass_at_1.png').name})", ""]
        parts += [error_table(named), "", f"![error types]({plot_error_types(named, out / 'error_types.png').name})", ""]
        tasks = next(iter(named.values())).tasks
        parts += [f"With {tasks} held-out tasks one task is {100 / tasks:.1f} points of pass@1.", ""]
    else:
        parts += ["No evaluation ran.", ""]
    path = out / "report.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


MECHANISM_ROWS = [
    ("heldout/displacement", "likelihood displacement of chosen (mean per-token log-prob, change from start)"),
    ("heldout/displacement_shared", "the same, chosen tokens outside the fix lines (shared with rejected)"),
    ("heldout/margin", "error-region margin (chosen fix lines minus rejected error lines, summed log-prob)"),
    ("heldout/margin_positive", "share of held-out pairs with a positive margin"),
]


def mechanism_section(report: dict) -> list[str]:
    """Markdown lines for the held-out mechanism metrics of one training run (its heldout_metrics.json)."""
    start, final = report.get("start", {}), report.get("final", {})

    def cell(values: dict, key: str) -> str:
        return f"{values[key]:.4f}" if key in values else "-"

    lines = ["### What training did to likelihoods on held-out pairs", "",
             f"Measured on {report.get('pairs', 0)} pairs of held-out tasks (never trained on) with the trainer's own "
             f"masked log-prob code, every {report.get('every_steps')} steps; the curves are the two right-hand "
             "panels above. Negative displacement means the correct program became less likely.", "",
             "| metric | start | after training |", "|---|---:|---:|"]
    lines += [f"| {label} | {cell(start, key)} | {cell(final, key)} |" for key, label in MECHANISM_ROWS]
    return lines + [""]


def copy_into(source: Optional[str | Path], out_dir: str | Path, name: str) -> Optional[str]:
    """Copy a file next to the report (so the folder is self-contained); returns its relative name."""
    if not source or not Path(source).is_file():
        return None
    shutil.copyfile(source, Path(out_dir) / name)
    return name


@dataclass
class ExperimentRow:
    name: str
    loss: str  # "-" for the untrained model
    mask: str
    alpha: str
    summary: EvalSummary
    final_loss: Optional[float] = None
    train_seconds: Optional[float] = None


def experiment_table(rows: Sequence[ExperimentRow], types: Optional[Sequence[str]] = None) -> str:
    """One Markdown table: held-out pass@1, tasks solved and failing programs per error type for each method."""
    named = {row.name: row.summary for row in rows}
    types = list(types) if types is not None else error_type_rows(named)
    head = ["method", "loss", "mask", "alpha", "pass@1", "solved", "final train loss"] + types
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|---:|---:|---:|" + "---:|" * len(types)]
    for row in rows:
        s = row.summary
        loss = "-" if row.final_loss is None else f"{row.final_loss:.4f}"
        cells = [row.name, row.loss, row.mask, row.alpha, f"{100 * s.pass_at_k.get('1', 0.0):.1f}%",
                 f"{s.solved}/{s.tasks}", loss] + [str(s.error_types.get(t, 0)) for t in types]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the experiment: intervals and settings


def bootstrap(values: Sequence[Sequence[Sequence[float]]], reps: int = 2000, seed: int = 0,
              level: float = 0.95) -> list[tuple[float, float, float]]:
    """Mean and a two-level bootstrap interval for each of several methods measured on the same items.

    ``values[m][s][i]`` is method ``m``'s value on item ``i`` (a held-out pair or task) under seed ``s``; NaN
    marks an item without a value. The statistic is the mean over seeds of the mean over items. Each replicate
    resamples seeds and items with replacement, with the *same* draws for every method, so the interval of a
    difference between methods (see :func:`bootstrap_differences`) is paired. Returns ``(mean, low, high)`` per
    method.
    """
    import numpy as np

    data = np.asarray(values, dtype=np.float64)  # (M, S, N)
    return [_interval(row, level) for row in _replicates(data, reps, seed)]


def bootstrap_differences(values: Sequence[Sequence[Sequence[float]]], against: int, reps: int = 2000,
                          seed: int = 0, level: float = 0.95) -> list[tuple[float, float, float]]:
    """Like :func:`bootstrap`, for each method minus method ``against`` (paired: the same resampled seeds and
    items on both sides)."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    draws = _replicates(data, reps, seed)
    return [_interval(row - draws[against], level, point=row[0] - draws[against][0]) for row in draws]


def _replicates(data, reps: int, seed: int):
    """(M, reps + 1) statistics: column 0 on the data itself, the rest on resampled seeds and items."""
    import warnings

    import numpy as np

    _, n_seeds, n_items = data.shape
    rng = np.random.default_rng(seed)
    seeds = np.concatenate([np.arange(n_seeds)[None], rng.integers(0, n_seeds, (reps, n_seeds))])
    items = np.concatenate([np.arange(n_items)[None], rng.integers(0, n_items, (reps, n_items))])
    picked = data[:, seeds[:, :, None], items[:, None, :]]  # (M, reps + 1, S, N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN replicates stay NaN
        return np.nanmean(np.nanmean(picked, axis=3), axis=2)


def _interval(row, level: float, point=None) -> tuple[float, float, float]:
    import numpy as np

    rest = row[1:][~np.isnan(row[1:])]
    tail = (1 - level) / 2 * 100
    low, high = (np.percentile(rest, [tail, 100 - tail]) if len(rest) else (np.nan, np.nan))
    return float(row[0] if point is None else point), float(low), float(high)


def settings_changes(saved: dict, current: dict) -> list[str]:
    """Names of the settings that differ between a folder's saved run and this one (either side missing counts)."""
    return sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
