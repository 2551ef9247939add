import random

import pytest

from iterpref.pairs.synthetic import SAMPLER_NAME, inject_bug, synthetic_pairs
from iterpref.tasks import humaneval_tasks

local = pytest.importorskip("sandbox.local")


def test_inject_bug_breaks_one_line_after_the_prompt():
    prompt = 'def add(a, b):\n    """Add."""\n'
    reference = prompt + "    total = a + b\n    return total\n"
    for seed in range(20):
        bug = inject_bug(reference, prompt, random.Random(seed))
        changed = [i for i, (x, y) in enumerate(zip(reference.splitlines(), bug.splitlines())) if x != y]
        assert len(changed) == 1 and changed[0] >= 2  # the prompt's lines are never touched
        line = bug.splitlines()[changed[0]]
        assert "_x" in line or line.strip() == "return None"
    assert inject_bug(prompt + "    pass\n", prompt, random.Random(0)) is None  # nothing to break


def test_synthetic_pairs_are_judged_by_the_executor_and_resume(tmp_path):
    tasks = humaneval_tasks()[:6]
    executor = local.LocalExecutor(workers=2)
    pairs, summary, path = synthetic_pairs(tasks, executor, tmp_path, seed=1, limit=4, progress=False)
    again, _, _ = synthetic_pairs(tasks, executor, tmp_path, seed=1, limit=4, progress=False)
    assert 1 <= len(pairs) <= 4 and summary.tasks == 4
    assert path == tmp_path / "synthetic_pairs.jsonl" and len(path.read_text().splitlines()) == len(pairs)
    by_id = {t.task_id: t for t in tasks}
    for pair in pairs:
        assert pair.chosen.strip() == by_id[pair.task_id].reference.strip() and pair.rejected != pair.chosen
        assert pair.rejected_round == 0 and pair.chosen_round == 1 and pair.rejected_lines
    assert [p.__dict__ for p in again] == [p.__dict__ for p in pairs]
    trajectories = (tmp_path / "synthetic_trajectories.jsonl").read_text().splitlines()
    assert len(trajectories) == 2 * len(pairs) + (4 - len(pairs))  # a mutant that passes ends its task at round 0
    assert all(SAMPLER_NAME in line for line in trajectories)
