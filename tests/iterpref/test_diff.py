from hypothesis import given, settings
from hypothesis import strategies as st

from iterpref.pairs.diff import line_diff, line_spans, seq_diff, split_lines


def lcs_length(a, b):
    """Textbook LCS length, independent of the module's prefix/suffix trimming."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def _matched(a, b):
    """The index pairs seq_diff keeps in common: the i-th element of `a` it keeps against the i-th of `b`."""
    diff = seq_diff(a, b)
    assert len(set(diff.a_only)) == len(diff.a_only) and len(set(diff.b_only)) == len(diff.b_only)
    kept_a = [i for i in range(len(a)) if i not in set(diff.a_only)]
    kept_b = [j for j in range(len(b)) if j not in set(diff.b_only)]
    assert len(kept_a) == len(kept_b)
    return list(zip(kept_a, kept_b))


def test_split_lines_trailing_newline_ends_last_line():
    assert split_lines("a\nb\n") == ["a", "b"]
    assert split_lines("a\nb") == ["a", "b"]
    assert split_lines("a\n\nb\n") == ["a", "", "b"]
    assert split_lines("") == []
    assert split_lines("x\r\ny\u2028z") == ["x\r", "y\u2028z"]


def test_line_spans_cover_lines_and_blank_newlines():
    text = "ab\n\ncd\n"
    spans = line_spans(text)
    assert spans == [(0, 2), (3, 4), (4, 6)]
    assert [text[s:e] for s, e in spans] == ["ab", "\n", "cd"]


def test_replace_one_line():
    d = line_diff("def f(x):\n    return x - 1\n", "def f(x):\n    return x + 1\n")
    assert d.rejected_lines == [2]
    assert d.chosen_lines == [2]
    assert d.anchors == []
    assert d.error_lines == [2]


def test_insert_only_gives_anchors():
    rejected = "def f(xs):\n    total = 0\n    return total\n"
    chosen = "def f(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n"
    d = line_diff(rejected, chosen)
    assert d.rejected_lines == []
    assert d.chosen_lines == [3, 4]
    assert d.anchors == [2, 3]
    assert d.error_lines == [2, 3]


def test_insert_at_end_anchors_last_line_only():
    d = line_diff("a\nb\n", "a\nb\nc\n")
    assert d.rejected_lines == [] and d.chosen_lines == [3] and d.anchors == [2]


def test_delete_only():
    d = line_diff("a\nprint('debug')\nb\n", "a\nb\n")
    assert d.rejected_lines == [2]
    assert d.chosen_lines == []
    assert d.anchors == []


def test_several_hunks():
    rejected = "a\nX\nc\nd\nY\nf\n"
    chosen = "a\nb\nc\nd\ne\nf\ng\n"
    d = line_diff(rejected, chosen)
    assert d.rejected_lines == [2, 5]
    assert d.chosen_lines == [2, 5, 7]
    assert d.anchors == [6]
    assert d.hunks == [(2, 2, 2, 2), (5, 5, 5, 5), (7, 6, 7, 7)]


def test_whitespace_changes_count():
    d = line_diff("if x:\n  y()\n", "if x:\n    y()\n")
    assert d.rejected_lines == [2]
    d = line_diff("a \nb\n", "a\nb\n")
    assert d.rejected_lines == [1]


def test_identical_texts_have_no_diff():
    d = line_diff("a\nb\n", "a\nb\n")
    assert d.rejected_lines == d.chosen_lines == d.anchors == [] and d.hunks == []


def test_exact_lcs_where_greedy_matching_fails():
    # A repeated line: the LCS keeps both "x" lines, not one.
    a = ["x", "y", "x", "z"]
    b = ["y", "x", "z", "x"]
    assert len(_matched(a, b)) == lcs_length(a, b) == 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abcd"), max_size=12), st.lists(st.sampled_from("abcd"), max_size=12))
def test_seq_diff_is_an_exact_lcs_partition(a, b):
    pairs = _matched(a, b)
    assert len(pairs) == lcs_length(a, b)
    assert all(a[i] == b[j] for i, j in pairs)
    assert all(p[0] < q[0] and p[1] < q[1] for p, q in zip(pairs, pairs[1:]))
    diff = seq_diff(a, b)
    assert sorted(diff.a_only + [i for i, _ in pairs]) == list(range(len(a)))
    assert sorted(diff.b_only + [j for _, j in pairs]) == list(range(len(b)))
    # A non-identical pair always has an error region on the rejected side unless rejected is empty.
    if a != b and a:
        assert diff.a_only or diff.anchors
