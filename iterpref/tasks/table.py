"""The paper's results table from several evaluations: columns HE, HE+, MBPP, MBPP+, BCB-Full Complete/Instruct,
BCB-Hard Complete/Instruct, LCB and their average, as Markdown and JSON, with each benchmark's error types."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from iterpref.errors import DataError
from iterpref.records import read_json
from iterpref.tasks.benchmarks import TABLE_COLUMNS


def _column_values(summary: dict[str, Any], k: str) -> dict[str, float]:
    """The table columns one evaluation fills (pass@k in percent)."""
    settings = summary.get("settings", {})
    benchmark, split = settings.get("tasks"), settings.get("split") or "complete"
    values = {}
    for column, name, column_split, figure in TABLE_COLUMNS:
        if name != benchmark or (column_split is not None and column_split != split):
            continue
        source = summary.get("base_pass_at_k") if figure == "base" else summary.get("pass_at_k")
        if source and k in source:
            values[column] = 100.0 * float(source[k])
    return values


def combined_table(folders: Sequence[str | Path], k: str = "1") -> tuple[str, dict[str, Any]]:
    """(Markdown, JSON object) of the evaluations in ``folders`` (each holding ``summary.json``)."""
    row: dict[str, float] = {}
    errors: dict[str, dict[str, int]] = {}
    sources: dict[str, str] = {}
    models: set[Optional[str]] = set()
    for folder in folders:
        path = Path(folder) / "summary.json"
        if not path.is_file():
            raise DataError(f"{folder}: no summary.json (run `iterpref eval ... -o {folder}` first)")
        summary = read_json(path)
        values = _column_values(summary, k)
        if not values:
            raise DataError(f"{path}: evaluates {summary.get('settings', {}).get('tasks')!r}, which has no column "
                            f"in the table, or has no pass@{k}")
        for column in values:
            if column in row:
                raise DataError(f"{path}: column {column} is already filled by {sources[column]}")
            sources[column] = str(path)
        row.update(values)
        label = f"{summary['settings'].get('tasks')} ({summary['settings'].get('split') or 'complete'})"
        errors[label] = dict(summary.get("error_types", {}))
        models.add((summary.get("provenance") or {}).get("model") or summary["settings"].get("sampler"))
    columns = [c for c, *_ in TABLE_COLUMNS]
    average = sum(row.values()) / len(row)
    header = "| model | " + " | ".join(columns) + " | Avg |"
    line = "|---|" + "---|" * (len(columns) + 1)
    model = ", ".join(sorted(str(m) for m in models))
    cells = [f"{row[c]:.1f}" if c in row else "-" for c in columns]
    markdown = "\n".join([f"pass@{k} (%)", "", header, line, f"| {model} | " + " | ".join(cells) + f" | {average:.1f} |",
                          "", "Avg is over the filled columns.", "", "Failing samples by error type:", "",
                          "| benchmark | error types |", "|---|---|"]
                         + [f"| {label} | " + ", ".join(f"{name} {count}" for name, count in types.items()) + " |"
                            for label, types in errors.items()])
    table = {"k": int(k), "model": model, "columns": columns, "values": {c: row.get(c) for c in columns},
             "average": average, "error_types": errors, "sources": sources}
    return markdown, table
