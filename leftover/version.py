"""The version number. It is kept once, in pyproject.toml: a checkout reads it
from there, an installed or frozen copy from the package metadata."""

import tomllib
from importlib import metadata
from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def version() -> str:
    try:
        with open(_PYPROJECT, "rb") as handle:
            project = tomllib.load(handle).get("project", {})
        if project.get("name") == "leftover":
            return project["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError):
        pass
    try:
        return metadata.version("leftover")
    except metadata.PackageNotFoundError:
        return "unknown"
