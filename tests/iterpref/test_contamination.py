"""Training/evaluation overlap: a problem evaluated on must not hide among the training prompts unannounced."""

from __future__ import annotations

from iterpref.commands.train import _contamination
from iterpref.evaluate import pairs_containing
from iterpref.records import Pair, Task, to_json_line
from iterpref.tasks import write_tasks
from iterpref.train.config import TrainConfig

ADD = Task("HumanEval/53", 'def add(x: int, y: int):\n    """Add two numbers x and y"""\n', [{"kind": "assert",
                                                                                          "code": "pass"}])
SUB = Task("Mine/sub", "def sub(a, b):\n    '''a minus b'''\n", [{"kind": "assert", "code": "pass"}])


def pair(task_id: str, prompt: str) -> Pair:
    return Pair(task_id, prompt, "chosen", "rejected", [1], [1])


def test_a_problem_inside_a_training_prompt_is_found_whatever_its_spacing_and_case():
    wrapped = "Complete this function.\n\nDEF add(x: int,  y: int):\n\t'''add two numbers X and Y'''\n\nReply in a fence."
    prompts = [("t1", wrapped), ("t2", "Write a function that reverses a list.")]
    assert pairs_containing(prompts, [ADD, SUB]) == [("t1", "HumanEval/53")]
    assert pairs_containing(prompts[1:], [ADD, SUB]) == []


def test_train_warns_naming_both_files_and_the_overlap(tmp_path):
    pairs_path, tasks_path = tmp_path / "pairs.jsonl", tmp_path / "eval.jsonl"
    pairs_path.write_text(to_json_line(pair("t1", "Please solve:\n" + ADD.prompt)) + "\n"
                          + to_json_line(pair("t2", "unrelated")) + "\n")
    write_tasks([ADD, SUB], tasks_path)
    warning = _contamination(TrainConfig(pairs=str(pairs_path), eval_tasks=str(tasks_path)))
    assert warning and "1 of the 2 problems" in warning and "t1 ~ HumanEval/53" in warning
    assert str(tasks_path) in warning and str(pairs_path) in warning

    write_tasks([SUB], tasks_path)
    assert _contamination(TrainConfig(pairs=str(pairs_path), eval_tasks=str(tasks_path))) is None
