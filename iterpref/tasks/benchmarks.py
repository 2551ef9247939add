"""The benchmarks `iterpref tasks`, `iterpref eval` and `iterpref grade` know by name, and where each one's data
file comes from. Each loader lives in its own module; this is only the index."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Optional

from iterpref.errors import ConfigError
from iterpref.records import Task

NAMES = ("humaneval", "humaneval+", "mbpp+", "bigcodebench", "bigcodebench-hard", "livecodebench")
# The paper's table: column -> (benchmark, split, figure) where figure "base" is EvalPlus's base inputs only.
TABLE_COLUMNS = (
    ("HE", "humaneval+", None, "base"), ("HE+", "humaneval+", None, "all"),
    ("MBPP", "mbpp+", None, "base"), ("MBPP+", "mbpp+", None, "all"),
    ("BCB-Full Complete", "bigcodebench", "complete", "all"), ("BCB-Full Instruct", "bigcodebench", "instruct", "all"),
    ("BCB-Hard Complete", "bigcodebench-hard", "complete", "all"),
    ("BCB-Hard Instruct", "bigcodebench-hard", "instruct", "all"),
    ("LCB", "livecodebench", None, "all"),
)


def is_benchmark(name: str) -> bool:
    return name in NAMES


def benchmark_tasks(name: str, source: Optional[str] = None, *, split: str = "complete", limit: Optional[int] = None,
                    options: Optional[dict[str, Any]] = None) -> list[Task]:
    """The tasks of benchmark ``name`` read from ``source`` (or its environment variable); ``options`` are the
    loader's own keyword arguments (time factor, release filters, ...)."""
    options = dict(options or {})
    if split not in ("complete", "instruct"):
        raise ConfigError(f"--split must be complete or instruct, not {split!r}")
    if name == "humaneval":
        from iterpref.tasks.humaneval import humaneval_tasks

        return humaneval_tasks(limit=limit)
    if name in ("humaneval+", "mbpp+"):
        from iterpref.tasks.evalplus import evalplus_tasks

        return evalplus_tasks(name, source, limit=limit, **options)
    if name in ("bigcodebench", "bigcodebench-hard"):
        from iterpref.tasks.bigcodebench import bigcodebench_tasks

        return bigcodebench_tasks(source, hard=name.endswith("hard"), split=split, limit=limit, **options)
    if name == "livecodebench":
        from iterpref.tasks.livecodebench import livecodebench_tasks

        return livecodebench_tasks(source, limit=limit, **options)
    raise ConfigError(f"unknown benchmark {name!r}; one of {', '.join(NAMES)}, or a tasks JSONL file")


def program_builder(name: str, source: Optional[str] = None) -> Optional[Callable[[str, str], str]]:
    """How benchmark ``name``'s harness turns a sample's code into the program it runs, as a function of
    ``(task_id, code)``; None when the code runs as it is."""
    if name == "livecodebench":
        from iterpref.tasks.livecodebench import program

        return lambda _task_id, code: program(code)
    if name in ("bigcodebench", "bigcodebench-hard"):
        from iterpref.tasks.bigcodebench import code_prompts
        from iterpref.tasks.bigcodebench import program as calibrated

        prompts = code_prompts(source)
        return lambda task_id, code: calibrated(prompts[task_id], code)
    return None


def data_file(name: str, source: Optional[str] = None) -> Optional[Path]:
    """The file a benchmark's tasks were read from (for provenance), when there is one."""
    if name in ("humaneval+", "mbpp+"):
        from iterpref.tasks.evalplus import source_path

        return source_path(name, source)
    if name in ("bigcodebench", "bigcodebench-hard"):
        from iterpref.tasks.bigcodebench import source_path as bcb_path

        return bcb_path(source)
    if name == "livecodebench":
        from iterpref.tasks.livecodebench import source_path as lcb_path

        return lcb_path(source)
    return Path(name) if name not in NAMES and Path(name).is_file() else None


def sha256_of(path: Optional[Path]) -> Optional[str]:
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
