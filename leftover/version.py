"""The version number. It is kept once, in pyproject.toml: a checkout reads it
from there, an installed or frozen copy from the package metadata.

Only --version and --json ask for it, so the metadata machinery (which imports
half the email package) is loaded only then, never on a plain cron run.
"""

from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def version() -> str:
    import tomllib

    try:
        with open(_PYPROJECT, "rb") as handle:
            project = tomllib.load(handle).get("project", {})
        if project.get("name") == "leftover":
            return project["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError):
        pass
    from importlib import metadata

    try:
        return metadata.version("leftover")
    except metadata.PackageNotFoundError:
        return "unknown"
