#!/usr/bin/env python
"""Create the peers' virtual environments and pip-install the pinned peers into them.

    python benchmarks/peers/install.py [--force]

The peers are never project dependencies: they live in venvs of the benchmark's own, next to it
and git-ignored (benchmarks/.gitignore):

- benchmarks/.peers-venv: Celery, RQ, Dramatiq, Huey, SAQ, procrastinate, matplotlib (for the
  chart), from benchmarks/peers/requirements.txt;
- benchmarks/.peers-venv-arq: arq alone, from benchmarks/peers/requirements-arq.txt, because arq
  0.28 requires redis<6 and Celery's kombu[redis] 5.7 requires redis>=6.4.

Each venv is made from the interpreter that runs this script (so the peers run on the same Python
as conveyor) and reinstalled only when its requirements file changes (a stamp file in the venv
records the file's hash). compare.py calls `ensure()` itself; run this script to prepare ahead.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent
VENVS = {  # name -> (directory, requirements file)
    "peers": (BENCHMARKS / ".peers-venv", HERE / "requirements.txt"),
    "arq": (BENCHMARKS / ".peers-venv-arq", HERE / "requirements-arq.txt"),
}
STAMP = "conveyor-bench-requirements.sha256"


def python_of(name: str) -> Path:
    """The interpreter of the venv `name` ("project" is the interpreter running this)."""
    if name == "project":
        return Path(sys.executable)
    return VENVS[name][0] / "bin" / "python"


def _digest(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def is_current(name: str) -> bool:
    directory, requirements = VENVS[name]
    stamp = directory / STAMP
    return python_of(name).exists() and stamp.exists() and stamp.read_text().strip() == _digest(requirements)


def install(name: str, *, force: bool = False, log=print) -> Path:  # type: ignore[no-untyped-def]
    """The venv `name`, made and filled if it is missing or stale; returns its python."""
    directory, requirements = VENVS[name]
    if not force and is_current(name):
        return python_of(name)
    if directory.exists():
        shutil.rmtree(directory)
    log(f"creating {directory.relative_to(BENCHMARKS.parent)} from {requirements.relative_to(BENCHMARKS.parent)}")
    venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    python = python_of(name)
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        output = "\n".join(line for line in (done.stdout + done.stderr).splitlines()
                           if "is ignored: it is neither a file nor a directory" not in line)
        raise RuntimeError(f"pip install -r {requirements.name} failed:\n{output[-3000:]}")
    (directory / STAMP).write_text(_digest(requirements) + "\n")
    return python


def ensure(names: list[str] | None = None, *, log=print) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """Every venv in `names` (default: all) ready; returns name -> python. A venv that fails to
    install is left out (the caller reports it) rather than stopping the whole comparison."""
    pythons: dict[str, Path] = {}
    for name in names or list(VENVS):
        try:
            pythons[name] = install(name, log=log)
        except (RuntimeError, OSError) as exc:
            log(f"could not install the {name} venv: {exc}")
    return pythons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="recreate the venvs even if they are current")
    args = parser.parse_args(argv)
    for name in VENVS:
        python = install(name, force=args.force)
        frozen = subprocess.run([str(python), "-m", "pip", "freeze", "--disable-pip-version-check"],
                                capture_output=True, text=True).stdout
        print(f"{name}: {python}\n  " + "\n  ".join(frozen.split()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
