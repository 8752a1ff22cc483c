"""Configs written for FredHutch's scicomp-leftover, run through the command
line from real files: what its README documents keeps working, and what a
site added to document its file is not an error."""

import json

import pytest

from leftover import cli
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC
from tests.faults import config

SQUEUE = str(EXAMPLE_NODE / "squeue")


def dry_run(capsys, tmp_path, document):
    code = cli.main(["--dry-run", "--no-splay", "--verbose", "--config", str(config(tmp_path, json.dumps(document))),
                     "--proc", str(EXAMPLE_PROC), "--passwd", str(EXAMPLE_NODE / "passwd")])
    return code, capsys.readouterr()


def test_the_old_readmes_example_config_runs(capsys, tmp_path):
    document = {"protected_users": ["alice", "bob"], "debuglevel": "info", "slew": 10, "slew_max": 40, "squeue": SQUEUE}
    code, out = dry_run(capsys, tmp_path, document)
    assert code == 0, out.err
    assert "would kill pid=1205 user=dave" in out.out and "would kill pid=1202" not in out.out


@pytest.mark.parametrize("old, canonical", [("warn", "warning"), ("err", "error")])
def test_the_old_readmes_debuglevels_are_taken_for_the_canonical_ones_with_a_note(capsys, tmp_path, old, canonical):
    code, out = dry_run(capsys, tmp_path, {"debuglevel": old, "squeue": SQUEUE})
    assert code == 0, out.err
    assert f"debuglevel '{old}' is scicomp-leftover's spelling, taken as '{canonical}'" in out.err
    assert "leftover: info: scanned " not in out.err  # the level took effect: the run's info summary is not shown


@pytest.mark.parametrize("key", ["_comment", "#", "// who asked for this", "comment", "Comments", "_protected_users_old"])
def test_comment_keys_are_ignored_with_a_note(capsys, tmp_path, key):
    code, out = dry_run(capsys, tmp_path, {key: ["any", {"value": 1}], "squeue": SQUEUE})
    assert code == 0, out.err
    assert f"key(s) {key!r} ignored as comments" in out.err


@pytest.mark.parametrize("key", ["protected_user", "Protected_users", "debug_level", "commentary"])
def test_other_unknown_keys_are_still_config_errors(capsys, tmp_path, key):
    code, out = dry_run(capsys, tmp_path, {key: ["alice"], "squeue": SQUEUE})
    assert code == 2
    assert f"has unknown key {key!r}" in out.err
