"""Training curves from metrics.jsonl -> one PNG (loss terms, rewards, accuracy, mask size)."""

from __future__ import annotations

from pathlib import Path

from iterpref.records import read_jsonl

PANELS = [
    ("loss", ["loss", "loss/dpo", "loss/nll"]),
    ("rewards", ["rewards/chosen", "rewards/rejected", "rewards/margins"]),
    ("accuracy", ["rewards/accuracies"]),
    ("rejected tokens in mask", ["mask/rejected_tokens"]),
]
# Drawn only when the run measured held-out pairs (--heldout-pairs).
HELDOUT_PANELS = [
    ("held-out displacement", ["heldout/displacement", "heldout/displacement_shared"]),
    ("held-out error-region margin change", ["heldout/margin_change"]),
]


def read_metrics(path: str | Path) -> list[dict]:
    return [record for _, record in read_jsonl(path)]


def plot_curves(metrics_path: str | Path, png_path: str | Path, title: str = "") -> Path:
    """Draw each panel's series against the optimiser step; series absent from the log are skipped."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    panels = PANELS + [p for p in HELDOUT_PANELS if any(k in r for r in records for k in p[1])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (name, keys) in zip(axes, panels):
        for key in keys:
            points = [(r["step"], r[key]) for r in records if key in r]
            if points:
                ax.plot(*zip(*points), marker=".", label=key)
        ax.set_title(name)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
