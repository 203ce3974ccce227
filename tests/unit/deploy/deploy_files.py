"""Readers for the static checks of docker-compose.yml, the Dockerfile and .env.example.

There is no Docker engine here, so these read the files the way compose and the builder would:
YAML with anchors and merge keys, compose's ``${VAR:-default}`` interpolation from ``.env``, and
Dockerfile instructions with line continuations.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / ".env.example"

# ------------------------------------------------------------------ compose interpolation
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is missing, as compose would refuse it."""


@dataclass(frozen=True)
class VariableUse:
    name: str
    has_default: bool


def variables_used(text: str) -> list[VariableUse]:
    """Every ``$VAR`` / ``${VAR...}`` in compose text, with whether it has a fallback value."""
    uses = []
    for match in _VARIABLE.finditer(text):
        if match["escaped"]:
            continue
        name = match["braced"] or match["bare"]
        op = match["op"] or ""
        uses.append(VariableUse(name, has_default=op in {"-", ":-"}))
    return uses


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's substitution: ``$$``, ``$V``, ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?e}``,
    ``${V?e}``, ``${V:+a}``, ``${V+a}``; an unset variable without a fallback becomes ""."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"] or "", match["arg"] or ""
        is_set = name in env
        is_nonempty = bool(env.get(name))
        if op == ":-":
            return env[name] if is_nonempty else arg
        if op == "-":
            return env[name] if is_set else arg
        if (op == ":?" and not is_nonempty) or (op == "?" and not is_set):
            raise InterpolationError(f"{name}: {arg}")
        if op == ":+":
            return arg if is_nonempty else ""
        if op == "+":
            return arg if is_set else ""
        return env.get(name, "")

    return _VARIABLE.sub(replace, value)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file (comments and blank lines skipped, quotes removed)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: line without '=': {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


# ------------------------------------------------------------------ compose model helpers
@dataclass
class Compose:
    raw: dict[str, Any]
    resolved: dict[str, Any]
    text: str

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        services: dict[str, dict[str, Any]] = self.resolved["services"]
        return services

    def environment(self, service: str) -> dict[str, str]:
        env = self.services[service].get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        return {str(k): str(v) for k, v in env.items()}

    def command(self, service: str) -> list[str]:
        command = self.services[service].get("command") or []
        return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]

    def volumes(self, service: str) -> list[Mount]:
        return [Mount.parse(v) for v in self.services[service].get("volumes") or []]

    def secrets(self, service: str) -> list[dict[str, Any]]:
        result = []
        for item in self.services[service].get("secrets") or []:
            result.append({"source": item} if isinstance(item, str) else dict(item))
        return result

    def published_ports(self, service: str) -> list[Port]:
        return [Port.parse(p) for p in self.services[service].get("ports") or []]

    def uses_driftwatch_image(self, service: str) -> bool:
        return "build" in self.services[service]


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def is_host_path(self) -> bool:
        return self.source.startswith((".", "/", "~"))

    @property
    def is_anonymous(self) -> bool:
        """A volume of this container alone (``- /path``), created empty from the image's folder."""
        return self.source == ""

    @classmethod
    def parse(cls, spec: str | dict[str, Any]) -> Mount:
        if isinstance(spec, dict):
            return cls(str(spec.get("source", "")), str(spec["target"]), bool(spec.get("read_only", False)))
        parts = spec.split(":")
        if len(parts) == 1:
            return cls("", parts[0], False)
        options = parts[2].split(",") if len(parts) > 2 else []
        return cls(parts[0], parts[1], "ro" in options)


@dataclass(frozen=True)
class Port:
    host_ip: str
    host_port: int
    container_port: int

    @classmethod
    def parse(cls, spec: str | int | dict[str, Any]) -> Port:
        if isinstance(spec, dict):
            return cls(str(spec.get("host_ip", "")), int(spec["published"]), int(spec["target"]))
        parts = str(spec).split(":")
        if len(parts) == 3:
            return cls(parts[0], int(parts[1]), int(parts[2]))
        if len(parts) == 2:
            return cls("", int(parts[0]), int(parts[1]))
        return cls("", int(parts[0]), int(parts[0]))


def compose_schema() -> dict[str, Any]:
    """The compose-spec JSON schema as vendored by check-jsonschema (a dev dependency)."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


# ------------------------------------------------------------------ Dockerfile
@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    @property
    def flags(self) -> dict[str, str]:
        return dict(m.groups() for m in re.finditer(r"--([a-z-]+)=(\S+)", self.args))

    @property
    def operands(self) -> list[str]:
        """Arguments without leading ``--flag=value`` options (JSON form understood)."""
        rest = re.sub(r"^(?:--[a-z-]+=\S+\s+)+", "", self.args.strip())
        if rest.startswith("["):
            return [str(x) for x in json.loads(rest)]
        return rest.split()


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile: continuation lines joined, comments and parser directives dropped."""
    stages: list[Stage] = []
    pending = ""
    start = 0
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # comments inside a continued instruction are dropped by the builder too
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(args.split()), start)
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"Dockerfile line {start}: {keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return stages


# ------------------------------------------------------------------ .dockerignore
def dockerignore_patterns(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per line, in order; the last matching pattern decides, as in Docker."""
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((negated, re.compile(f"^{regex}$")))
    return patterns


def dockerignore_excludes(patterns: list[tuple[bool, re.Pattern[str]]], relative: str) -> bool:
    """Whether the build context leaves out ``relative``: a pattern matching a parent folder
    matches everything below it."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in patterns:
        if any(regex.match(c) for c in candidates):
            excluded = not negated
    return excluded


# ------------------------------------------------------------------ settings names
def environment_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads, nested RegistrySettings included."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, info in settings.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseSettings):
            names |= environment_names(nested)  # built by its own default_factory, from its own names
            continue
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c for c in alias.choices if isinstance(c, str) and c.isupper()}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def field_default(settings: type[BaseSettings], env_name: str) -> object:
    """The default of the setting read from environment variable ``env_name``."""
    for info in settings.model_fields.values():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and env_name in alias.choices:
            return info.default
    raise AssertionError(f"{settings.__name__} has no setting {env_name}")
