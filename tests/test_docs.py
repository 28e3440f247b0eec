"""The examples in README.md and docs/ run as written.

Python blocks run in order in one namespace, in a fresh directory; a block whose first line is
`# name.py` is saved as that module instead. A shell block starting `conveyor worker` runs that
real command with `--burst` added, so the jobs enqueued above it get worked."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```(python|sh)\n(.*?)```", re.DOTALL)
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES = "conveyor@127.0.0.1:5432/postgres"  # after postgresql:// or postgresql+psycopg://


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_examples_run(document: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      request: pytest.FixtureRequest) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    ran = 0
    text = document.read_text()
    if DEFAULT_REDIS in text:  # the examples' Redis is the test server, in a namespace of its own
        server = request.getfixturevalue("redis_server")
        text = text.replace(DEFAULT_REDIS, f"{server.url}?namespace=doc-{document.stem}-{id(tmp_path)}")
    if DEFAULT_POSTGRES in text:  # the examples' PostgreSQL is the test server
        postgres = request.getfixturevalue("postgres_server")
        text = text.replace(DEFAULT_POSTGRES, postgres.url.split("://", 1)[1])
    for language, code in BLOCK.findall(text):
        first_line = code.splitlines()[0] if code.strip() else ""
        if language == "python" and re.fullmatch(r"# \w+\.py", first_line):
            (tmp_path / first_line[2:]).write_text(code)
        elif language == "python":
            exec(compile(code, f"{document.name} example", "exec"), namespace)
            ran += 1
        elif first_line.startswith("conveyor worker"):
            command = [*shlex.split(first_line.split("#")[0])[1:], "--burst"]
            env = {**os.environ, "PYTHONPATH": str(tmp_path)}
            result = subprocess.run([sys.executable, "-m", "conveyor.cli", *command], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
    for module in [p.stem for p in tmp_path.glob("*.py")]:
        sys.modules.pop(module, None)
    assert ran or "```python" not in text
