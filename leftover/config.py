"""The site's settings: /etc/leftover.conf, a JSON object.

It reads and checks the file and nothing else. Anything doubtful (unknown key,
wrong type, value out of range, bad JSON, a file others could have written)
raises ConfigError: a config the tool cannot trust must never steer a kill.
The keys protected_users, debuglevel, slew and slew_max keep the meaning they
had in FredHutch's scicomp-leftover, so existing files keep working: its
documented debuglevel spellings ("warn", "err") are taken for the canonical
ones, and keys that are comments (COMMENT_KEYS) are ignored; each such
acceptance is a note in Settings.notes for the caller to log. Any other
unknown key is still an error: a misspelt protected_users must never read as
"protect nobody".
"""

import json
import os
import stat
from pathlib import Path
from typing import NamedTuple

from leftover.decide import SYSTEM_UID_RANGES
from leftover.squeue import SlurmOutputError, node_name

DEFAULT_PATH = Path("/etc/leftover.conf")
DEFAULT_SLEW_MAX = 30.0
LEVELS = ("debug", "info", "warning", "error", "critical")
OLD_LEVELS = {"warn": "warning", "err": "error"}  # scicomp-leftover's README spellings
COMMENT_PREFIXES = ("_", "#", "//")
COMMENT_WORDS = ("comment", "comments")
JOB_SOURCES = ("squeue", "local")


class ConfigError(Exception):
    """The config cannot be trusted; the message says why in one line."""


class Settings(NamedTuple):
    protected_users: tuple[str | int, ...] = ()
    protected_groups: tuple[str | int, ...] = ()
    debuglevel: str = "info"
    slew: float = 0.0
    slew_max: float = DEFAULT_SLEW_MAX
    grace_seconds: float = 8.0
    min_uid: int = 1000
    system_uid_ranges: tuple[tuple[int, int], ...] = SYSTEM_UID_RANGES
    squeue: Path | None = None
    squeue_timeout: float = 2.0
    node_names: tuple[str, ...] = ()
    job_source: str = "squeue"
    metrics_file: Path | None = None
    tell_terminals: bool = False
    notify_command: Path | None = None
    notify_timeout: float = 10.0
    source: str = "built-in defaults"
    notes: tuple[str, ...] = ()  # what was accepted for old configs' sake


def load_settings(path: Path, explicit: bool, trusted_owners: frozenset[int]) -> Settings:
    """Read the config at path. A missing file means defaults unless the path was
    named on the command line. The file must be a regular file owned by one of
    trusted_owners and writable by nobody else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        if explicit or os.path.lexists(path):
            raise ConfigError(f"config file {path} does not exist (or is a dangling link)") from None
        return Settings()
    except OSError as error:
        raise ConfigError(f"cannot open config file {path}: {error.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError(f"config file {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_uid not in trusted_owners:
            raise ConfigError(f"config file {path} is owned by uid {info.st_uid}, not root")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(f"config file {path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})")
        try:
            raw = handle.read(1 << 20)
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    return parse_settings(raw, path)


def parse_settings(raw: bytes, path: Path) -> Settings:
    """Check the JSON text of a config file and turn it into Settings."""
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_repeated_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ConfigError(f"config file {path} is not valid JSON: {_one_line(error)}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    notes = []
    comments = sorted(key for key in document if is_comment_key(key))
    if comments:
        notes.append(f"config file {path}: key(s) {', '.join(map(repr, comments))} ignored as comments")
    unknown = sorted(set(document) - set(_CHECKS) - set(comments))
    if unknown:
        raise ConfigError(f"config file {path} has unknown key {unknown[0]!r}")
    level = document.get("debuglevel")
    if isinstance(level, str) and level in OLD_LEVELS:
        canonical = OLD_LEVELS[level]
        notes.append(
            f"config file {path}: debuglevel {level!r} is scicomp-leftover's spelling, "
            f"taken as {canonical!r} (write {canonical!r} to silence this note)"
        )
        document["debuglevel"] = canonical
    values = {}
    for key, value in document.items():
        if key in comments:
            continue
        problem = _CHECKS[key](value)
        if problem:
            raise ConfigError(f"config file {path}: {key} {problem}")
        values[key] = value
    for key in ("squeue", "metrics_file", "notify_command"):
        if key in values:
            values[key] = path.parent / values[key]
    for key in ("protected_users", "protected_groups", "node_names"):
        if key in values:
            values[key] = tuple(values[key])
    if "system_uid_ranges" in values:
        values["system_uid_ranges"] = tuple((low, high) for low, high in values["system_uid_ranges"])
    if "slew" in values and "slew_max" not in values:
        values["slew_max"] = values["slew"]
    if values.get("slew", 0.0) > values.get("slew_max", DEFAULT_SLEW_MAX):
        raise ConfigError(f"config file {path}: slew is larger than slew_max")
    return Settings(**values, source=str(path), notes=tuple(notes))


def is_comment_key(key: str) -> bool:
    """Keys sites add to document their file: "_comment", "#", "// why",
    "comment", "Comments"."""
    return key.startswith(COMMENT_PREFIXES) or key.lower() in COMMENT_WORDS


def _no_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"key {repeated[0]!r} appears twice")
    return dict(pairs)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _number(low: float, high: float, integer: bool = False):
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return "must be " + ("a whole number" if integer else "a number")
        if not low <= value <= high:
            return f"must be between {low:g} and {high:g}"
        return None

    return check


def _names_and_ids(kind: str, id_kind: str):
    def check(value: object) -> str | None:
        if not isinstance(value, list):
            return f"must be a list of {kind} names and {id_kind}s"
        for entry in value:
            if isinstance(entry, bool) or not isinstance(entry, (str, int)):
                return f"entry {entry!r} is neither a {kind} name nor a {id_kind}"
            if isinstance(entry, int) and not 0 <= entry < 2**32 - 1:
                return f"entry {entry} is not a valid {id_kind}"
            if isinstance(entry, str) and (
                not entry or entry != entry.strip() or ":" in entry or "," in entry or not entry.isprintable()
            ):
                return f"entry {entry!r} is not a {kind} name"
        return None

    return check


def _boolean(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


MAX_SYSTEM_UID_RANGES = 1000
MAX_NODE_NAMES = 64


def _system_uid_ranges(value: object) -> str | None:
    """A list of [low, high] pairs of UIDs, low <= high, both inclusive."""
    if not isinstance(value, list) or len(value) > MAX_SYSTEM_UID_RANGES:
        return f"must be a list of at most {MAX_SYSTEM_UID_RANGES} [low, high] UID pairs"
    for entry in value:
        if not (isinstance(entry, list) and len(entry) == 2):
            return f"entry {_short(entry)} is not a [low, high] pair"
        if any(isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid < 2**32 - 1 for uid in entry):
            return f"entry {_short(entry)} holds something that is not a valid UID"
        if entry[0] > entry[1]:
            return f"entry {_short(entry)} has low above high"
    return None


def _node_names(value: object) -> str | None:
    """This host's NodeNames, for hosts whose names scontrol show aliases
    cannot tell (a NodeHostname written as an FQDN, a dynamic node)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_NODE_NAMES:
        return f"must be a list of 1 to {MAX_NODE_NAMES} node names"
    for entry in value:
        try:
            node_name(entry if isinstance(entry, str) else "", "entry")
        except SlurmOutputError:
            return f"entry {_short(entry)} is not a node name (one NodeName, no host list)"
    return None


def _short(value: object) -> str:
    return json.dumps(value)[:40]


def _debuglevel(value: object) -> str | None:
    if value not in LEVELS:
        return "must be one of " + ", ".join(LEVELS)
    return None


def _path(value: object) -> str | None:
    if not isinstance(value, str) or not value or "\0" in value:
        return "must be a path"
    return None


def _job_source(value: object) -> str | None:
    if value not in JOB_SOURCES:
        return "must be one of " + ", ".join(JOB_SOURCES)
    return None


_CHECKS = {
    "protected_users": _names_and_ids("user", "UID"),
    "protected_groups": _names_and_ids("group", "GID"),
    "debuglevel": _debuglevel,
    "slew": _number(0, 3600),
    "slew_max": _number(0, 3600),
    "grace_seconds": _number(0, 600),
    "min_uid": _number(1, 2**32 - 2, integer=True),
    "system_uid_ranges": _system_uid_ranges,
    "squeue": _path,
    "squeue_timeout": _number(0.1, 60),
    "node_names": _node_names,
    "job_source": _job_source,
    "metrics_file": _path,
    "tell_terminals": _boolean,
    "notify_command": _path,
    "notify_timeout": _number(0.1, 600),
}
