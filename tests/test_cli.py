"""Every command answers --help (as a user runs it: the installed console script)."""
import subprocess

import pytest

from avspeech.cli import COMMANDS


def _run(*args):
    return subprocess.run(["avspeech", *args], capture_output=True, text=True, timeout=300)


def test_top_level_help_lists_every_command():
    res = _run("--help")
    assert res.returncode == 0, res.stderr
    for name in COMMANDS:
        assert name in res.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help(command):
    res = _run(command, "--help")
    assert res.returncode == 0, res.stderr
    assert f"avspeech {command}" in res.stdout and "--" in res.stdout


def test_unknown_command_fails():
    res = _run("no-such-command")
    assert res.returncode != 0
    assert "invalid choice" in res.stderr
