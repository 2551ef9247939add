"""`iterpref import-pairs`: the error region of an imported pair comes from the code inside the fences only.

Prose around the code is part of the training text but never of the error region: the rejected tokens the focal
loss scores, and the chosen fix lines the held-out metrics read, are code lines."""

import json

import pytest

from iterpref.cli import main
from iterpref.records import Pair, load_records
from iterpref.tasks.paper_pairs import fence_ranges, import_pairs
from iterpref.train.masks import error_spans, fix_spans


def write(tmp_path, records):
    path = tmp_path / "released.json"
    path.write_text(json.dumps(records))
    return path


def lines_of(text, numbers):
    lines = text.split("\n")
    return [lines[k - 1] for k in numbers]


def covered(text, spans):
    return [text[s:e] for s, e in spans]


def region(pair, mode="line", **kw):
    """The rejected text the trainer's mask covers, as the trainer computes it from the stored pair."""
    return covered(pair.rejected, error_spans(pair.rejected, pair.chosen, mode,
                                              rejected_scope=pair.rejected_code_ranges,
                                              chosen_scope=pair.chosen_code_ranges, **kw))


def fixed(pair):
    return covered(pair.chosen, fix_spans(pair.chosen, pair.rejected, chosen_scope=pair.chosen_code_ranges,
                                          rejected_scope=pair.rejected_code_ranges))


PROSE_DIFFERS = {
    "prompt": "Write add(a, b).",
    "rejected": "Here is my solution.\n\n```python\ndef add(a, b):\n    return a - b\n```\nThis subtracts.",
    "chosen": "Here is the corrected solution:\n\n```python\ndef add(a, b):\n    return a + b\n```\n"
              "This adds the two numbers.\nHope it helps!",
}


def test_prose_that_differs_is_not_in_the_error_region(tmp_path):
    (pair,), summary = import_pairs(write(tmp_path, [PROSE_DIFFERS]))
    assert summary.pairs == 1 and summary.unfenced == 0
    assert pair.rejected == PROSE_DIFFERS["rejected"] and pair.chosen == PROSE_DIFFERS["chosen"]  # text unchanged
    assert lines_of(pair.rejected, pair.rejected_lines) == ["    return a - b"]
    assert lines_of(pair.chosen, pair.chosen_lines) == ["    return a + b"]
    assert pair.rejected_code_ranges == [[4, 5]] and pair.chosen_code_ranges == [[4, 5]]
    for mode in ("line", "token", "prefix_suffix", "augmented", "line+trace"):
        got = region(pair, mode)
        assert got in (["    return a - b"], ["-"]), (mode, got)
    # Context lines of the augmented ablation are code lines too: never the fence or the prose around it.
    assert region(pair, "augmented", context_lines=3) == ["def add(a, b):\n    return a - b"]
    assert fixed(pair) == ["    return a + b"]


def test_trainer_masks_only_the_code_line(tmp_path):
    """The same pair through the trainer's tokenizer: the masked rejected tokens are the one code line, and the
    chosen fix mask (the held-out metrics' fix lines) is the one fixed line."""
    transformers = pytest.importorskip("transformers")
    from iterpref.bundled import smollm2_dir
    from iterpref.train.data import PairTokenizer

    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_dir())
    (pair,), _ = import_pairs(write(tmp_path, [PROSE_DIFFERS]))
    out = PairTokenizer(tokenizer, mask="line", layout="plain", fix_mask=True)(pair)
    masked = tokenizer.decode([i for i, m in zip(out.rejected_ids, out.rejected_mask) if m])
    fix = tokenizer.decode([i for i, m in zip(out.chosen_ids, out.chosen_fix_mask) if m])
    assert masked.strip() == "return a - b" and fix.strip() == "return a + b"


def test_several_fences_are_all_code_and_the_prose_between_them_is_not(tmp_path):
    record = {
        "prompt": "Write helper and main.",
        "rejected": "First a helper:\n```python\ndef helper(x):\n    return x * 2\n```\nThen the main function:\n"
                    "```python\ndef main(xs):\n    return [helper(x) for x in xs[1:]]\n```\nDone.",
        "chosen": "A helper comes first:\n```python\ndef helper(x):\n    return x * 2\n```\nAnd now main, which "
                  "uses it:\n```python\ndef main(xs):\n    return [helper(x) for x in xs]\n```\nAll done!",
    }
    (pair,), _ = import_pairs(write(tmp_path, [record]))
    assert pair.rejected_code_ranges == [[3, 4], [8, 9]]
    assert lines_of(pair.rejected, pair.rejected_lines) == ["    return [helper(x) for x in xs[1:]]"]
    assert lines_of(pair.chosen, pair.chosen_lines) == ["    return [helper(x) for x in xs]"]
    assert region(pair) == ["    return [helper(x) for x in xs[1:]]"]
    # Lines between the first and last hunk are code lines only: prose and fences between blocks stay out.
    two_hunks = dict(record, rejected=record["rejected"].replace("x * 2", "x * 3"))
    (pair,), _ = import_pairs(write(tmp_path, [two_hunks]))
    assert region(pair, "prefix_suffix") == ["    return x * 3", "def main(xs):\n    return [helper(x) for x in xs[1:]]"]
    assert region(pair) == ["    return x * 3", "    return [helper(x) for x in xs[1:]]"]


def test_a_fix_that_only_inserts_marks_the_code_lines_around_it(tmp_path):
    record = {"prompt": "p",
              "rejected": "Try this:\n```python\ndef f(xs):\n    return xs[0]\n```\nIt returns the first.",
              "chosen": "Try this instead:\n```python\ndef f(xs):\n    if not xs:\n        return None\n"
                        "    return xs[0]\n```\nIt copes with an empty list."}
    (pair,), _ = import_pairs(write(tmp_path, [record]))
    assert pair.rejected_lines == [] and lines_of(pair.chosen, pair.chosen_lines) == ["    if not xs:",
                                                                                       "        return None"]
    assert region(pair) == ["def f(xs):\n    return xs[0]"]


def test_a_fence_left_open_runs_to_the_end_of_the_reply():
    assert fence_ranges("Code:\n```python\na = 1\nb = 2") == [[3, 4]]
    assert fence_ranges("```\n```\ntext") == []  # an empty block holds no code line
    assert fence_ranges("~~~~py\nx\n~~~\n~~~~\nafter") == [[2, 3]]  # a shorter fence does not close a longer one
    assert fence_ranges("no fences here") is None


def test_replies_without_fences_are_taken_whole_as_code_and_counted(tmp_path, capsys):
    record = {"prompt": "p", "rejected": "def f():\n    return 1\n", "chosen": "def f():\n    return 2\n"}
    mixed = {"prompt": "q", "rejected": "def g():\n    return 1\n",
             "chosen": "Fixed:\n```python\ndef g():\n    return 0\n```"}
    pairs, summary = import_pairs(write(tmp_path, [record, mixed]))
    assert summary.unfenced == 3 and summary.pairs == 2
    assert pairs[0].rejected_code_ranges is None and region(pairs[0]) == ["    return 1"]
    assert pairs[1].rejected_code_ranges is None and pairs[1].chosen_code_ranges == [[3, 4]]
    assert region(pairs[1]) == ["    return 1"] and fixed(pairs[1]) == ["    return 0"]
    out = tmp_path / "pairs.jsonl"
    assert main(["import-pairs", str(write(tmp_path, [record, mixed])), "-o", str(out)]) == 0
    assert "3 replies without a code fence" in capsys.readouterr().out
    assert [p.rejected_code_ranges for p in load_records(out, Pair)] == [None, None]


def test_pairs_whose_rejected_code_is_empty_are_skipped(tmp_path):
    empty = {"prompt": "p", "rejected": "I cannot solve this.\n```python\n```", "chosen": "```python\nx = 1\n```"}
    pairs, summary = import_pairs(write(tmp_path, [empty]))
    assert pairs == [] and summary.skipped == {"no_rejected_code": 1}
