"""Tasks: one record (``iterpref.records.Task``) in one file format, ``tasks.jsonl`` (:mod:`.jsonl`), and one
module per benchmark that exports into it (:mod:`.humaneval`). A new benchmark is a new module here."""

from iterpref.tasks.humaneval import humaneval_tasks
from iterpref.tasks.jsonl import load_tasks, to_request, validate_task, write_tasks

__all__ = ["humaneval_tasks", "load_tasks", "to_request", "validate_task", "write_tasks"]
