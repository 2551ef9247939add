"""Pull the program out of a model's reply.

Replies come as a fenced block with prose around it, several blocks (an example call, the shell command to
run it), an unterminated fence when generation stopped at the token limit, or bare code. We pick the block
that defines the entry point, else the longest Python-looking block, and fall back to the reply's code lines.
"""

from __future__ import annotations

import ast
import re
from typing import Optional

# An opening fence: three or more backticks or tildes, optional language tag, end of line.
_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*$", re.MULTILINE)
_NOT_PYTHON = {"bash", "sh", "shell", "console", "text", "txt", "output", "json", "yaml", "plaintext", "cpp", "c",
               "java", "javascript", "js", "rust", "go"}
_CODE_START = re.compile(r"^(def |class |import |from |async def |@|if __name__|[A-Za-z_][\w.]*\s*=)")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block as (language tag, body); an unterminated last fence runs to the end of the text."""
    blocks = []
    position = 0
    while True:
        opening = _FENCE.search(text, position)
        if opening is None:
            return blocks
        fence = opening.group("fence")
        body_start = opening.end() + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        end = closing.search(text, body_start)
        body = text[body_start : end.start() if end else len(text)]
        blocks.append((opening.group("lang").lower(), body))
        if end is None:
            return blocks
        position = end.end()


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def _bare_code(text: str) -> str:
    """Code in a reply without fences: from the first code-looking line, dropping trailing prose."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return text.strip("\n")
    lines = lines[start:]
    # Trim trailing lines until it parses (prose after the code); keep everything if nothing parses.
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        if _parses(candidate):
            return candidate
    return "\n".join(lines)


def _prompt_imports(prompt: str) -> list[str]:
    return [line for line in prompt.splitlines() if re.match(r"^(import |from \S+ import )", line)]


def extract_code(text: str, entry_point: Optional[str] = None, prompt: Optional[str] = None) -> str:
    """The program in ``text``; see the module docstring for how a block is chosen.

    With ``prompt`` and ``entry_point`` given, a reply holding only the function's indented body is appended to
    the prompt. With ``prompt`` given, import lines of the prompt that the code lacks are prepended (a HumanEval prompt
    imports ``List``; models often restate only the function).
    """
    blocks = [body for lang, body in fenced_blocks(text) if lang not in _NOT_PYTHON and body.strip()]
    if blocks:
        defining = [b for b in blocks if entry_point and defines(b, entry_point)]
        pool = defining or blocks
        # Prefer blocks that parse, then the longest: an example call is short, the solution is long.
        code = max(pool, key=lambda b: (_parses(b), len(b.strip())))
    else:
        code = _bare_code(text)
    code = code.strip("\n")
    body_only = code[:1] in (" ", "\t") and entry_point and not defines(code, entry_point)
    if body_only and prompt and defines(prompt, entry_point):
        # Only an indented body came back (completion style): it continues the prompt's signature.
        code = prompt.rstrip("\n") + "\n" + code
    if prompt:
        missing = [line for line in _prompt_imports(prompt) if line not in code.splitlines()]
        if missing:
            code = "\n".join(missing) + "\n\n" + code
    return code + "\n"
