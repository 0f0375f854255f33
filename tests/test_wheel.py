"""The package builds as a wheel that installs in a clean venv and runs ``ownkey demo`` (issue 14).

Nothing of this checkout leaks in: the venv has no system site-packages, the wheel is installed
with its ``sql`` extra from the configured package index (the machine's local one here, else
PyPI), and the test checks that ``ownkey`` is imported from the venv. The wheel is built through
the PEP 517 backend, by ``python -m build`` (the ``dev`` extra) or, where that is not installed,
by ``pip wheel``; the same backend either way. ``pip --python`` installs into the venv without
bootstrapping a pip of its own there, which keeps the test to about a minute on a loaded machine.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OWNKEY_HOME")}
    done = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


def _source(into: Path) -> Path:
    """What a source distribution holds, copied, so that the build leaves the checkout as it was
    (setuptools writes ``build/`` and ``*.egg-info`` next to the sources)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", into / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, into / name)
    return into


def _has_build() -> bool:
    """pypa/build is installed (not merely a ``build/`` directory on the path)."""
    try:
        return importlib.util.find_spec("build.__main__") is not None
    except ModuleNotFoundError:
        return False


def _build(source: Path, out: Path) -> Path:
    if _has_build():
        _run(sys.executable, "-m", "build", "--wheel", "--outdir", str(out), ".", cwd=source)
    else:  # pragma: no cover - a venv without the dev extra
        _run(
            sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), ".", cwd=source
        )
    [wheel] = out.glob("ownkey-*-py3-none-any.whl")
    return wheel


@pytest.mark.slow  # a wheel build, an install into a fresh venv, and the demo
def test_the_wheel_installs_into_a_clean_venv_and_runs_the_demo(tmp_path: Path) -> None:
    wheel = _build(_source(tmp_path / "source"), tmp_path / "dist")
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(target)
    python = target / "bin" / "python"
    _run(
        sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
        f"{wheel}[sql,api,hybrid]", cwd=tmp_path,
    )  # fmt: skip
    where = _run(str(python), "-c", "import ownkey; print(ownkey.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(target)
    version = _run(str(target / "bin" / "ownkey"), "--version", cwd=tmp_path)
    assert version.stdout.startswith("ownkey ")
    demo = _run(str(target / "bin" / "ownkey"), "demo", cwd=tmp_path)
    assert "claims checked, all held" in demo.stdout
    # The test tools stay out of a runtime install.
    for tool in ("pytest", "schemathesis", "httpx2", "moto", "hypothesis"):
        probe = subprocess.run(
            [str(python), "-c", f"import {tool}"], capture_output=True, timeout=60, check=False
        )
        assert probe.returncode != 0, f"{tool} came with ownkey[sql,api,hybrid]"
