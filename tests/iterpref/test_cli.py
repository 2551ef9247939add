"""The command line works without the `train` extra: building it imports no torch, and the commands that need
none run in a virtual environment that has only the base dependencies."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_AT_STARTUP = ("torch", "transformers", "numpy", "accelerate")


def test_building_the_cli_imports_no_training_library():
    # A fresh interpreter: this test process has long imported torch through other tests.
    code = ("import sys, iterpref.cli; iterpref.cli.build_parser(); "
            f"print([name for name in {NOT_AT_STARTUP!r} if name in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "[]"


def _base_dependencies() -> list[str]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_commands_run_in_an_install_without_the_train_extra(tmp_path):
    # The process backend's confined runner cannot reach an interpreter under a closed folder in /tmp (pytest's
    # tmp_path is one, mode 0700), so the environment lives in an open folder of its own.
    home = Path(tempfile.mkdtemp(prefix="iterpref-notrain-"))
    home.chmod(0o755)
    try:
        _run_without_train_extra(home / "venv", tmp_path)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run_without_train_extra(env_dir: Path, tmp_path: Path) -> None:
    # No system site packages, so nothing of this environment's torch is seen.
    venv.create(env_dir, with_pip=True, symlinks=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", *_base_dependencies()],
                             capture_output=True, text=True, env=env, timeout=500)
    if install.returncode and any(s in install.stdout + install.stderr for s in
                                  ("NewConnectionError", "Temporary failure in name resolution", "No matching distribution")):
        pytest.skip(f"the base dependencies cannot be installed here: {install.stderr.strip()[-300:]}")
    assert install.returncode == 0, install.stderr
    editable = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
                              capture_output=True, text=True, env=env, timeout=300)
    assert editable.returncode == 0, editable.stderr

    def iterpref(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(env_dir / "bin" / "iterpref"), *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)

    check = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                           capture_output=True, text=True, env=env, check=True)
    assert check.stdout.strip() == "None", "the test environment must not see torch"
    imports = subprocess.run([str(python), "-c", "import sys, iterpref.cli; iterpref.cli.build_parser(); "
                              "assert 'torch' not in sys.modules"], capture_output=True, text=True, env=env)
    assert imports.returncode == 0, imports.stderr

    assert iterpref("--help").returncode == 0
    assert iterpref("tasks", "humaneval", "-o", "tasks.jsonl", "--limit", "2").returncode == 0
    tasks = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps({"task_id": t["task_id"], "responses": [
        "```python\ndef nothing():\n    pass\n```", f"```python\n{t['reference']}```"]}) + "\n" for t in tasks))
    refine = iterpref("refine", "tasks.jsonl", "-o", "traj.jsonl", "--sampler", "scripted", "--script", str(script),
                      "--max-rounds", "1")
    assert refine.returncode == 0, refine.stderr
    assert "2/2 tasks pass" in refine.stdout
    pairs = iterpref("pairs", "traj.jsonl", "-o", "pairs.jsonl", "--max-tokens", "0")
    assert pairs.returncode == 0 and "2 pairs from 2 candidates" in pairs.stdout, pairs.stderr
    stats = iterpref("stats", "traj.jsonl", "--pairs-summary", "pairs.summary.json", "--plot", "rounds.png")
    assert stats.returncode == 0 and (tmp_path / "rounds.png").is_file(), stats.stderr
    # What does need the extra says so in one line instead of a traceback.
    for args in (["pairs", "traj.jsonl", "-o", "p2.jsonl"], ["train", "--pairs", "pairs.jsonl"],
                 ["refine", "tasks.jsonl", "-o", "t2.jsonl"]):
        result = iterpref(*args)
        assert result.returncode == 2 and "pip install 'iterpref[train]'" in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1


def test_the_library_never_imports_the_cli():
    """Errors go up as IterprefError; only the command line (cli.py, commands/, `python -m iterpref.train`) may
    depend on the CLI module."""
    package = ROOT / "iterpref"
    allowed = {package / "cli.py", package / "train" / "__main__.py"}
    offenders = [str(path.relative_to(ROOT)) for path in package.rglob("*.py")
                 if path not in allowed and "commands" not in path.parts
                 and re.search(r"^\s*(from iterpref\.cli import|from iterpref import cli|import iterpref\.cli)",
                               path.read_text(encoding="utf-8"), re.MULTILINE)]
    assert offenders == []
