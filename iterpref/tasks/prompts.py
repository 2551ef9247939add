"""Each benchmark harness's own prompt for chat models, in one place, so `iterpref eval --tasks B` asks a model
what the official harness asks it.

- EvalPlus (HumanEval+, MBPP+; ``evalplus.provider.utility.make_raw_chat_prompt``): the instruction "Please provide
  a self-contained Python script that solves the following problem in a markdown code block:" followed by the
  problem's prompt in a fence.
- BigCodeBench: ``complete`` gives the same instruction around ``complete_prompt``; ``instruct`` gives
  ``instruct_prompt`` as it is.
- LiveCodeBench (code generation, ``lcb_runner/prompts/code_generation.py``): its system message, then
  ``### Question:``, then the starter code to complete (functional problems) or the stdin/stdout instruction.
"""

from __future__ import annotations

from typing import Callable, Optional

from iterpref.records import Task
from iterpref.samplers.base import Prompt

EVALPLUS_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a "
                        "markdown code block:")
LCB_SYSTEM = ("You are an expert Python programmer. You will be given a question (problem specification) and will "
              "generate a correct Python program that matches the specification and passes all tests.")
LCB_STARTER = ("### Format: You will use the following starter code to write the solution to the problem and "
               "enclose your code within delimiters.")
LCB_STDIN = ("### Format: Read the inputs from stdin solve the problem and write the answer to stdout (do not "
             "directly test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when "
             "the python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.")
LCB_ANSWER = "### Answer: (use the provided format with backticks)"


def evalplus_prompt(task: Task) -> Prompt:
    text = f"{EVALPLUS_INSTRUCTION}\n```\n{task.prompt.strip()}\n```\n"
    return Prompt(task.task_id, 0, [{"role": "user", "content": text}])


def bigcodebench_instruct_prompt(task: Task) -> Prompt:
    return Prompt(task.task_id, 0, [{"role": "user", "content": task.prompt}])


def livecodebench_prompt(task: Task, starter_code: str = "") -> Prompt:
    text = f"### Question:\n{task.prompt}\n\n"
    if starter_code:
        text += f"{LCB_STARTER}\n```python\n{starter_code}\n```\n\n{LCB_ANSWER}\n\n"
    else:
        text += f"{LCB_STDIN}\n```python\n# YOUR CODE HERE\n```\n\n{LCB_ANSWER}\n\n"
    return Prompt(task.task_id, 0, [{"role": "system", "content": LCB_SYSTEM}, {"role": "user", "content": text}])


def harness_prompt(benchmark: str, split: str = "complete") -> Optional[Callable[[Task], Prompt]]:
    """The prompt builder of ``benchmark``'s own harness; None for our task files (refine's first prompt)."""
    if benchmark in ("humaneval", "humaneval+", "mbpp+"):
        return evalplus_prompt
    if benchmark.startswith("bigcodebench"):
        return bigcodebench_instruct_prompt if split == "instruct" else evalplus_prompt
    if benchmark == "livecodebench":
        from iterpref.tasks.livecodebench import starter_code

        return lambda task: livecodebench_prompt(task, starter_code(task))
    return None
