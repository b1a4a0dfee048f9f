"""The README's code blocks run as written, each on its own (``docs/design.md``):

* every ```python block in a fresh namespace (a snippet that needs a name defined by an
  earlier block fails);
* every ``spectral-theory ...`` command of every ```bash block, through the command line's
  ``main`` in-process, from a temporary directory that sees the repository's ``examples/``
  (so that files the commands write land there); exit status 0, no traceback;
* every ```toml block is a scenario file the strict reader accepts (or a sweep file its
  reader accepts, ``docs/sweeps.md``).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()


def _blocks(lang: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```lang block."""
    out = []
    for m in re.finditer(rf"^```{lang}\n(.*?)^```", TEXT, flags=re.S | re.M):
        out.append((TEXT.count("\n", 0, m.start()) + 1, m.group(1)))
    return out


def _commands() -> list[tuple[int, list[str]]]:
    """(line number, argv) of every ``spectral-theory`` command in the bash blocks (after
    ``&&`` too; comments dropped)."""
    out = []
    for line0, code in _blocks("bash"):
        for k, line in enumerate(code.splitlines()):
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                if argv and argv[0] == "spectral-theory":
                    out.append((line0 + 1 + k, argv[1:]))
    return out


PYTHON = _blocks("python")
COMMANDS = _commands()


def test_the_readme_has_its_examples():
    assert len(PYTHON) >= 4 and len(COMMANDS) >= 20 and _blocks("toml")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(README.parent / "examples", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("line, code", PYTHON, ids=[f"line{n}" for n, _ in PYTHON])
def test_python_block_runs_on_its_own(line, code, workdir, capsys):
    exec(compile(code, f"README.md python block at line {line}", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    if "check_rate" in code:
        assert "PASS" in out  # the rate-checker example passes


@pytest.mark.parametrize("line, argv", COMMANDS, ids=[f"line{n}-{a[0]}" for n, a in COMMANDS])
def test_bash_command_runs(line, argv, workdir, capsys):
    from spectral_theory.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:  # --version, --help
        code = exc.code
    err = capsys.readouterr().err
    assert code == 0, f"README.md line {line}: spectral-theory {shlex.join(argv)}\n{err}"
    assert "Traceback" not in err
    for flag in ("--out", "--npz"):
        if flag in argv:
            assert (workdir / argv[argv.index(flag) + 1]).is_file()


def test_toml_block_is_a_valid_scenario():
    from spectral_theory.spec import scenario_from_dict

    for _, code in _blocks("toml"):
        data = tomllib.loads(code)
        if "claims" in data:  # a claim file (docs/claims.md), read by its strict reader
            from spectral_theory.claims import read_claims

            assert read_claims(data, base_dir=README.parent).claims
            continue
        if "sweep" in data:  # a sweep file (docs/sweeps.md): its paths are relative to examples/
            from spectral_theory.sweeps import sweep_from_dict

            assert sweep_from_dict(data, root=README.parent / "examples").points()
            continue
        sc = scenario_from_dict(data)
        assert sc.models
