from iterpref.refine.extract import extract_code, fenced_blocks


def test_fenced_block_with_prose_around():
    reply = "Here is the fix:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nThis adds the numbers."
    assert extract_code(reply) == "def add(a, b):\n    return a + b\n"


def test_unterminated_fence_runs_to_the_end():
    reply = "Sure!\n```python\ndef add(a, b):\n    return a + b"
    assert extract_code(reply) == "def add(a, b):\n    return a + b\n"


def test_block_defining_entry_point_wins_over_longer_block():
    reply = (
        "```python\nimport math\n\ndef helper(values):\n    total = 0\n    for v in values:\n        total += v\n"
        "    return math.sqrt(total)\n```\nAnd the function:\n```python\ndef solve(x):\n    return x\n```"
    )
    assert extract_code(reply, entry_point="solve") == "def solve(x):\n    return x\n"


def test_longest_python_block_without_entry_point_and_shell_blocks_ignored():
    reply = (
        "```python\ndef f(x):\n    y = x * 2\n    return y + 1\n```\nExample:\n```python\nf(3)\n```\n"
        "Run it:\n```bash\npython solution.py --with a very long command line that is longer than the code\n```"
    )
    assert extract_code(reply) == "def f(x):\n    y = x * 2\n    return y + 1\n"


def test_bare_code_with_prose_before_and_after():
    reply = "The answer is below.\ndef f(x):\n    return x + 1\nThis returns x plus one."
    assert extract_code(reply) == "def f(x):\n    return x + 1\n"


def test_prompt_imports_are_added_when_missing():
    prompt = "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    \"\"\"Sum.\"\"\"\n"
    reply = "```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```"
    code = extract_code(reply, entry_point="total", prompt=prompt)
    assert code.startswith("from typing import List\n\ndef total")
    already = extract_code("```python\nfrom typing import List\ndef total(xs): return 0\n```", prompt=prompt)
    assert already.count("from typing import List") == 1


def test_tilde_fences_and_nested_backticks_in_code():
    reply = "~~~py\ns = '```'\nprint(s)\n~~~\n"
    assert fenced_blocks(reply) == [("py", "s = '```'\nprint(s)\n")]
    assert extract_code(reply) == "s = '```'\nprint(s)\n"


def test_indented_body_only_continues_the_prompt():
    prompt = "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    \"\"\"Sum.\"\"\"\n"
    code = extract_code("```python\n    return sum(xs)\n```", entry_point="total", prompt=prompt)
    assert code == prompt + "    return sum(xs)\n"
    compile(code, "<candidate>", "exec")
