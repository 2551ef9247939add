import pytest

from iterpref.train.masks import MASK_MODES, error_spans, fix_spans, region_weights, token_mask


def covered(text, spans):
    return [text[s:e] for s, e in spans]


def masked_text(tokenizer, text, spans):
    """Concatenated text of the tokens the mask selects, using the real tokenizer's offsets."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = token_mask(enc["offset_mapping"], spans)
    return "".join(text[s:e] for (s, e), m in zip(enc["offset_mapping"], mask) if m), mask, enc


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from iterpref.bundled import smollm2_dir

    return AutoTokenizer.from_pretrained(smollm2_dir())


REJ = "def add(a, b):\n    total = a - b\n    return total\n"
CHO = "def add(a, b):\n    total = a + b\n    return total\n"


def test_replace_line_mode_covers_only_the_changed_line():
    assert covered(REJ, error_spans(REJ, CHO, "line")) == ["    total = a - b"]


def test_replace_token_mode_covers_only_the_changed_piece():
    assert covered(REJ, error_spans(REJ, CHO, "token")) == ["-"]


def test_insert_only_marks_lines_around_the_insertion():
    rejected = "def f(xs):\n    s = 0\n    return s\n"
    chosen = "def f(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"
    for mode in ("line", "token", "prefix_suffix"):
        assert covered(rejected, error_spans(rejected, chosen, mode)) == ["    s = 0\n    return s"], mode


def test_delete_only():
    rejected = "x = 1\nprint(x)\ny = 2\n"
    chosen = "x = 1\ny = 2\n"
    for mode in ("line", "token", "prefix_suffix"):
        assert covered(rejected, error_spans(rejected, chosen, mode)) == ["print(x)"], mode


def test_several_hunks_and_prefix_suffix_spans_between_them():
    rejected = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"
    chosen = "a = 1\nb = 20\nc = 3\nd = 40\ne = 5\n"
    assert covered(rejected, error_spans(rejected, chosen, "line")) == ["b = 2", "d = 4"]
    assert covered(rejected, error_spans(rejected, chosen, "token")) == ["2", "4"]
    assert covered(rejected, error_spans(rejected, chosen, "prefix_suffix")) == ["b = 2\nc = 3\nd = 4"]


def test_augmented_adds_context_lines_clipped_at_the_ends():
    rejected = "l1\nl2\nl3\nl4\nl5\nl6\n"
    chosen = "l1\nl2\nL3\nl4\nl5\nl6\n"
    assert covered(rejected, error_spans(rejected, chosen, "augmented", context_lines=1)) == ["l2\nl3\nl4"]
    assert covered(rejected, error_spans(rejected, chosen, "augmented", context_lines=5)) == [rejected[:-1]]
    assert error_spans(rejected, chosen, "augmented", 0) == error_spans(rejected, chosen, "line")


def test_none_covers_everything_and_identical_texts_cover_nothing():
    assert error_spans(REJ, CHO, "none") == [(0, len(REJ))]
    for mode in MASK_MODES[:-1]:
        assert error_spans(REJ, REJ, mode) == []


def test_whitespace_only_change_is_an_error_region():
    rejected = "if x:\n  y()\n"
    chosen = "if x:\n    y()\n"
    assert covered(rejected, error_spans(rejected, chosen, "line")) == ["  y()"]
    assert covered(rejected, error_spans(rejected, chosen, "token")) == ["  "]


def test_blank_line_change_is_covered_by_its_newline():
    rejected = "a\n\nb\n"
    chosen = "a\nb\n"
    assert covered(rejected, error_spans(rejected, chosen, "line")) == ["\n"]


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown mask mode"):
        error_spans(REJ, CHO, "lines")


def test_token_mask_overlap_rules():
    spans = [(5, 10), (20, 22)]
    offsets = [(0, 5), (4, 6), (6, 9), (9, 12), (12, 20), (20, 21), (22, 30), (0, 0), (21, 25)]
    assert token_mask(offsets, spans) == [False, True, True, True, False, True, False, False, True]


def test_real_tokenizer_masks_exactly_the_changed_line(tokenizer):
    text, mask, enc = masked_text(tokenizer, REJ, error_spans(REJ, CHO, "line"))
    # Tokens of the changed line, possibly with the newline/indent token that starts it.
    assert "total = a - b" in text
    assert "return" not in text and "def" not in text
    assert 0 < sum(mask) < len(mask)


def test_unicode_characters_split_across_tokens(tokenizer):
    rejected = 'print("héllo wörld ✓")\nx = "日本語"\n'
    chosen = 'print("héllo wörld ✓")\nx = "中文"\n'
    spans = error_spans(rejected, chosen, "line")
    text, mask, enc = masked_text(tokenizer, rejected, spans)
    # Byte-level pieces of one multibyte character all map onto that character: the line is covered fully.
    ids = [i for i, m in zip(enc["input_ids"], mask) if m]
    assert tokenizer.decode(ids).strip() == 'x = "日本語"'
    assert not any(m for (s, e), m in zip(enc["offset_mapping"], mask) if e <= rejected.index("\nx"))


def test_line_split_across_tokens_and_token_spanning_lines(tokenizer):
    # A long identifier is many tokens; every one of them is on the changed line and masked.
    rejected = "value = compute_the_extraordinarily_long_identifier_name(1)\nok = 1\n"
    chosen = "value = compute_the_extraordinarily_long_identifier_name(2)\nok = 1\n"
    enc = tokenizer(rejected, add_special_tokens=False, return_offsets_mapping=True)
    first_line_end = rejected.index("\n")
    mask = token_mask(enc["offset_mapping"], error_spans(rejected, chosen, "line"))
    on_line = [m for (s, e), m in zip(enc["offset_mapping"], mask) if e <= first_line_end]
    assert len(on_line) > 5 and all(on_line)
    token_mode = token_mask(enc["offset_mapping"], error_spans(rejected, chosen, "token"))
    assert sum(token_mode) == 1  # only the token carrying "1"


def test_line_trace_widens_the_line_region_by_the_trace_lines():
    rejected = "def f(xs):\n    n = len(xs)\n    m = xs[0]\n    return m / n\n"
    chosen = "def f(xs):\n    n = len(xs) or 1\n    m = xs[0]\n    return m / n\n"
    assert covered(rejected, error_spans(rejected, chosen, "line+trace", trace_lines=[4])) == [
        "    n = len(xs)", "    return m / n"]
    # Adjacent trace line joins the run, newline included; a trace line inside the region adds nothing.
    assert covered(rejected, error_spans(rejected, chosen, "line+trace", trace_lines=[3, 2])) == [
        "    n = len(xs)\n    m = xs[0]"]
    # No trace record, or lines outside the text (a trace into the prompt's code): the `line` region.
    line = error_spans(rejected, chosen, "line")
    assert error_spans(rejected, chosen, "line+trace", trace_lines=None) == line
    assert error_spans(rejected, chosen, "line+trace", trace_lines=[0, 9]) == line


def test_fix_spans_cover_the_chosen_fix_lines_and_nothing_for_a_pure_deletion():
    assert covered(CHO, fix_spans(CHO, REJ)) == ["    total = a + b"]
    rejected = "x = 1\nprint(x)\ny = 2\n"
    assert fix_spans("x = 1\ny = 2\n", rejected) == []
    inserted = "def f(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"
    assert covered(inserted, fix_spans(inserted, "def f(xs):\n    s = 0\n    return s\n")) == [
        "    for x in xs:\n        s += x"]


def test_region_weights_soft_mask():
    assert region_weights([True, False, True], 0.0) == [1, 0, 1]
    assert all(isinstance(w, int) for w in region_weights([True, False], 0.0))  # the old 0/1 data, unchanged
    assert region_weights([True, False, True], 0.25) == [1.0, 0.25, 1.0]
    assert region_weights([False, False], 1.0) == [1.0, 1.0]
    with pytest.raises(ValueError):
        region_weights([True], 1.5)


def test_real_tokenizer_line_trace_and_soft_weights(tokenizer):
    from iterpref.records import Pair
    from iterpref.train.data import PairTokenizer

    rejected = "def f(xs):\n    n = len(xs)\n    m = xs[0]\n    return m / n\n"
    chosen = "def f(xs):\n    n = len(xs) or 1\n    m = xs[0]\n    return m / n\n"
    traced = Pair("t", "Mean.", chosen, rejected, [2], [2], rejected_trace_lines=[4])
    untraced = Pair("u", "Mean.", chosen, rejected, [2], [2])
    tok = PairTokenizer(tokenizer, mask="line+trace", layout="plain")
    out, plain = tok(traced), tok(untraced)
    masked = tokenizer.decode([i for i, m in zip(out.rejected_ids, out.rejected_mask) if m])
    assert "n = len(xs)" in masked and "return m / n" in masked and "m = xs[0]" not in masked
    assert plain.rejected_mask == PairTokenizer(tokenizer, mask="line", layout="plain")(untraced).rejected_mask
    assert tok.trace_fallbacks == 1  # only the pair without a trace record fell back
    soft = PairTokenizer(tokenizer, mask="line", layout="plain", outside_weight=0.5)(untraced)
    hard = PairTokenizer(tokenizer, mask="line", layout="plain")(untraced)
    assert soft.rejected_ids == hard.rejected_ids
    assert soft.rejected_mask == [1.0 if m else 0.5 for m in hard.rejected_mask]


SCOPED_CASES = [
    (REJ, CHO),
    ("def f(xs):\n    s = 0\n    return s\n", "def f(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"),
    ("x = 1\nprint(x)\ny = 2\n", "x = 1\ny = 2\n"),
    ("a = 1\nb = 2\nc = 3\nd = 4\ne = 5", "a = 1\nb = 20\nc = 3\nd = 40\ne = 5"),
    ("if x:\n\n  y()\n", "if x:\n  y()\n"),
]


@pytest.mark.parametrize("rejected, chosen", SCOPED_CASES)
def test_a_scope_of_every_line_changes_nothing(rejected, chosen):
    whole_r, whole_c = [[1, rejected.count("\n") + 1]], [[1, chosen.count("\n") + 1]]
    for mode in MASK_MODES:
        assert error_spans(rejected, chosen, mode, 1, [2], rejected_scope=whole_r, chosen_scope=whole_c) == \
            error_spans(rejected, chosen, mode, 1, [2]), mode
    assert fix_spans(chosen, rejected, chosen_scope=whole_c, rejected_scope=whole_r) == fix_spans(chosen, rejected)


def test_scoped_spans_leave_out_lines_outside_the_scope_and_the_newlines_before_them():
    rejected = "Intro.\n```\na = 1\nb = 2\n```\nMiddle.\n```\nc = 3\n```\nEnd."
    chosen = "Other intro.\n```\na = 1\nb = 20\n```\nOther middle.\n```\nc = 30\n```\nThe end."
    scope = [[3, 4], [8, 8]]
    assert covered(rejected, error_spans(rejected, chosen, "line", rejected_scope=scope, chosen_scope=scope)) == [
        "b = 2", "c = 3"]
    assert covered(rejected, error_spans(rejected, chosen, "token", rejected_scope=scope, chosen_scope=scope)) == [
        "2", "3"]
    assert covered(rejected, error_spans(rejected, chosen, "prefix_suffix", rejected_scope=scope,
                                         chosen_scope=scope)) == ["b = 2", "c = 3"]
    # A trace line outside the code is dropped; one inside it widens the region as usual.
    assert covered(rejected, error_spans(rejected, chosen, "line+trace", trace_lines=[1, 3], rejected_scope=scope,
                                         chosen_scope=scope)) == ["a = 1\nb = 2", "c = 3"]
    assert covered(chosen, fix_spans(chosen, rejected, chosen_scope=scope, rejected_scope=scope)) == ["b = 20",
                                                                                                       "c = 30"]
    # The whole-reply diff would have marked the prose lines too.
    assert "Intro." in covered(rejected, error_spans(rejected, chosen, "line"))
    assert error_spans(rejected, chosen, "none", rejected_scope=scope) == [(0, len(rejected))]
