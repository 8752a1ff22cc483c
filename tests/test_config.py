import json
import os
from pathlib import Path

import pytest

from leftover.config import ConfigError, Settings, load_settings, parse_settings

ROOT_ONLY = frozenset({0})


def parse(document) -> Settings:
    return parse_settings(json.dumps(document).encode(), Path("/etc/leftover.conf"))


def test_empty_object_gives_defaults():
    settings = parse({})
    assert (settings.grace_seconds, settings.min_uid, settings.squeue_timeout) == (8.0, 1000, 2.0)
    assert settings.protected_users == () and settings.squeue is None


def test_default_splay_spreads_nodes_over_several_seconds():
    settings = parse({})
    assert settings.slew_max - settings.slew >= 10


def test_original_tools_config_keeps_working():
    settings = parse({"protected_users": ["slurm", "alice", "bob"], "debuglevel": "info", "slew": 10, "slew_max": 40})
    assert settings.protected_users == ("slurm", "alice", "bob")
    assert (settings.slew, settings.slew_max) == (10, 40)


def test_slew_alone_is_a_fixed_delay():
    settings = parse({"slew": 5})
    assert settings.slew == settings.slew_max == 5


def test_uids_and_names_both_accepted():
    assert parse({"protected_users": ["carol", 3005]}).protected_users == ("carol", 3005)


def test_group_names_and_gids_and_the_telling_keys():
    settings = parse({"protected_groups": ["hpc-admins", 4000], "tell_terminals": True,
                      "notify_command": "notify", "notify_timeout": 30})
    assert settings.protected_groups == ("hpc-admins", 4000) and settings.tell_terminals
    assert settings.notify_command == Path("/etc/notify") and settings.notify_timeout == 30
    assert not Settings().tell_terminals and Settings().notify_command is None and Settings().protected_groups == ()


def test_system_accounts_above_min_uid_are_protected_out_of_the_box():
    """systemd.io's UIDS-GIDS: homed 60001-60513, DynamicUser= 61184-65519,
    nobody 65534 (and 65535); beside them (uid_t)-2."""
    ranges = parse({}).system_uid_ranges
    for uid in (60001, 60513, 61184, 64030, 65519, 65534, 65535, 4294967294):
        assert any(low <= uid <= high for low, high in ranges), uid
    for uid in (1000, 60000, 60514, 61183, 65520, 65536, 4294967293):
        assert not any(low <= uid <= high for low, high in ranges), uid


def test_system_uid_ranges_replace_the_built_in_ones():
    assert parse({"system_uid_ranges": [[65534, 65534], [70000, 70010]]}).system_uid_ranges == ((65534, 65534), (70000, 70010))
    assert parse({"system_uid_ranges": []}).system_uid_ranges == ()


def test_relative_squeue_is_relative_to_the_config_file():
    assert parse({"squeue": "bin/squeue"}).squeue == Path("/etc/bin/squeue")
    assert parse({"squeue": "/opt/slurm/bin/squeue"}).squeue == Path("/opt/slurm/bin/squeue")


@pytest.mark.parametrize(
    "document, message",
    [
        ({"protected_user": ["x"]}, "unknown key 'protected_user'"),
        ({"protected_users": "alice"}, "must be a list"),
        ({"protected_users": [True]}, "neither a user name nor a UID"),
        ({"protected_users": [-1]}, "not a valid UID"),
        ({"protected_users": [""]}, "not a user name"),
        ({"protected_users": ["a:b"]}, "not a user name"),
        ({"debuglevel": "verbose"}, "must be one of"),
        ({"slew": "10"}, "must be a number"),
        ({"slew": -1}, "between"),
        ({"slew": 50, "slew_max": 40}, "slew is larger than slew_max"),
        ({"grace_seconds": 601}, "between"),
        ({"grace_seconds": True}, "must be a number"),
        ({"min_uid": 0}, "between"),
        ({"min_uid": 1000.5}, "whole number"),
        ({"squeue": ""}, "must be a path"),
        ({"metrics_file": 3}, "must be a path"),
        ({"job_source": "slurmdbd"}, "must be one of"),
        ({"squeue_timeout": 0}, "between"),
        ({"protected_groups": "admins"}, "must be a list of group names and GIDs"),
        ({"protected_groups": [True]}, "neither a group name nor a GID"),
        ({"protected_groups": [-1]}, "not a valid GID"),
        ({"protected_groups": ["a,b"]}, "not a group name"),
        ({"protected_groups": [" admins"]}, "not a group name"),
        ({"tell_terminals": "yes"}, "must be true or false"),
        ({"tell_terminals": 1}, "must be true or false"),
        ({"notify_command": ""}, "must be a path"),
        ({"notify_timeout": 0}, "between"),
        ({"notify_timeout": 601}, "between"),
        ({"node_names": "node7"}, "must be a list of 1 to 64 node names"),
        ({"node_names": []}, "must be a list of 1 to 64 node names"),
        ({"node_names": ["node[1-2]"]}, "is not a node name"),
        ({"node_names": ["a,b"]}, "is not a node name"),
        ({"node_names": ["-w"]}, "is not a node name"),
        ({"node_names": [7]}, "is not a node name"),
        ({"system_uid_ranges": [60001, 60513]}, "not a .low, high. pair"),
        ({"system_uid_ranges": {"60001": 60513}}, "must be a list"),
        ({"system_uid_ranges": [[1, 2, 3]]}, "not a .low, high. pair"),
        ({"system_uid_ranges": [[5]]}, "not a .low, high. pair"),
        ({"system_uid_ranges": [[2, 1]]}, "low above high"),
        ({"system_uid_ranges": [[-1, 5]]}, "not a valid UID"),
        ({"system_uid_ranges": [[1, 4294967295]]}, "not a valid UID"),
        ({"system_uid_ranges": [[1.0, 5]]}, "not a valid UID"),
        ({"system_uid_ranges": [[True, 5]]}, "not a valid UID"),
        ({"system_uid_ranges": [["60001", 60513]]}, "not a valid UID"),
        ({"system_uid_ranges": [[1, 2]] * 1001}, "at most 1000"),
    ],
)
def test_bad_values_are_config_errors(document, message):
    with pytest.raises(ConfigError, match=message):
        parse(document)


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"x"', b'{"slew": NaN}', b"\xff\xfe", b'{"a":1,}'])
def test_bad_json_is_a_config_error(raw):
    with pytest.raises(ConfigError):
        parse_settings(raw, Path("x.conf"))


def write(tmp_path: Path, mode: int, text: str = "{}") -> Path:
    path = tmp_path / "leftover.conf"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_missing_default_file_means_defaults(tmp_path):
    assert load_settings(tmp_path / "absent.conf", explicit=False, trusted_owners=ROOT_ONLY) == Settings()


def test_missing_named_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.conf", explicit=True, trusted_owners=ROOT_ONLY)


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_file_writable_by_others_is_refused(tmp_path, mode):
    with pytest.raises(ConfigError, match="writable by group or others"):
        load_settings(write(tmp_path, mode), explicit=True, trusted_owners=frozenset({os.geteuid()}))


def test_file_owned_by_someone_else_is_refused(tmp_path):
    path = write(tmp_path, 0o644)
    with pytest.raises(ConfigError, match="owned by uid"):
        load_settings(path, explicit=True, trusted_owners=frozenset({path.stat().st_uid + 1}))


def test_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings(tmp_path, explicit=True, trusted_owners=frozenset({os.geteuid()}))


def test_good_file_is_read(tmp_path):
    path = write(tmp_path, 0o644, '{"grace_seconds": 3}')
    settings = load_settings(path, explicit=True, trusted_owners=frozenset({os.geteuid()}))
    assert settings.grace_seconds == 3 and settings.source == str(path)


def test_node_names_are_kept_in_order():
    assert parse({"node_names": ["node7", "node7-gpu"]}).node_names == ("node7", "node7-gpu")
    assert parse({}).node_names == ()
