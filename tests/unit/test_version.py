"""The version is written once (`waypost.__version__`); the distribution and `--version` take it
from there (issue 17 item 1). /healthz showing it: tests/e2e/test_health.py; the built wheel's
metadata and its console script: tests/package/test_wheel.py."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from waypost import __version__
from waypost.cli import main

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"{__version__}\n"


def test_the_distribution_reads_its_version_from_the_package() -> None:
    project = tomllib.loads(PYPROJECT.read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "waypost.__version__"}


def test_the_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([abc]|rc|\.dev|\.post)?\d*", __version__), __version__
