"""Python literals as the runner reads them: the expected values and arguments of `cases` tests.

The runner (sandbox/runner.py) is stdlib-only, Linux-only and shipped alone into the runner image, so callers
cannot import it; this module is its reader, restated word for word for the contract (sandbox.models) and the
task loaders. tests/sandbox/test_contract.py checks that the two copies are the same code.
"""

from __future__ import annotations

_LITERAL_NAMES = {"nan": float("nan"), "inf": float("inf")}  # repr's spellings with no literal syntax


def read_literal(text: str):
    """A Python literal via ``ast.literal_eval`` plus ``nan``/``inf``: the ``repr`` of plain data (numbers of any
    size, str, bytes, tuples, lists, dicts, sets, bool, None, complex, NaN, infinities) reads back to an equal value
    of the same type, which JSON cannot do. Raises ValueError."""
    import ast

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a Python literal: {exc}") from None
    for node in ast.walk(tree):
        for name, child in ast.iter_fields(node):
            if isinstance(child, ast.Name) and child.id in _LITERAL_NAMES:
                setattr(node, name, ast.Constant(_LITERAL_NAMES[child.id]))
            elif isinstance(child, list):
                child[:] = [ast.Constant(_LITERAL_NAMES[c.id]) if isinstance(c, ast.Name) and c.id in _LITERAL_NAMES
                            else c for c in child]
    try:
        return ast.literal_eval(tree)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a Python literal: {exc}") from None
