"""Turning configuration text into values: ``${ENV}`` interpolation in string values, and
pydantic's validation errors as one readable list of ``dotted.path: problem`` lines (a
credential's value is never echoed)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic_core import ErrorDetails

from relay.errors import ConfigError

# --- interpolation --------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def interpolate(
    node: Any, path: str, env: Mapping[str, str], problems: list[tuple[str, str]]
) -> Any:
    if isinstance(node, str):
        return _interpolate_str(node, path, env, problems)
    if isinstance(node, Mapping):
        return {
            key: interpolate(value, f"{path}.{key}" if path else str(key), env, problems)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [
            interpolate(item, f"{path}.{i}" if path else str(i), env, problems)
            for i, item in enumerate(node)
        ]
    return node


def _interpolate_str(
    text: str, path: str, env: Mapping[str, str], problems: list[tuple[str, str]]
) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body = match.group(1)
        if body is None:
            problems.append((path, "unterminated ${ (write $${ for a literal ${)"))
            return ""
        ref = _BODY.fullmatch(body)
        if ref is None:
            problems.append((path, f"invalid environment reference ${{{body}}}"))
            return ""
        name, default = ref.group(1), ref.group(2)
        if default is not None and "${" in default:
            problems.append((path, f"nested references are not supported in ${{{body}}}"))
            return ""
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            problems.append((path, f"environment variable {name} is not set"))
            return ""
        return value

    return _REFERENCE.sub(replace, text)


# --- errors ---------------------------------------------------------------------------------

_SECRET_KEYS = frozenset({"api_key", "secret_key", "headers", "database_url"})


def describe(error: ErrorDetails) -> tuple[str, str]:
    """One pydantic error as (dotted path, readable message)."""
    # "[key]" marks an error in a mapping's key; the key itself is already the previous item.
    loc = [str(part) for part in error["loc"] if part != "[key]"]
    kind, ctx, value = error["type"], error.get("ctx", {}), error["input"]
    if kind == "relay_subpath":
        return ".".join([*loc, str(ctx["subpath"])]), str(ctx["message"])
    if kind == "value_error":
        message = str(ctx["error"])
    elif kind == "extra_forbidden":
        message = "unknown key (extra inputs are not permitted)"
    elif kind == "missing":
        message = "required key is missing"
    elif kind in ("model_type", "dict_type"):
        message = f"should be a mapping of keys to values, got {type(value).__name__}"
    else:
        message = error["msg"]
        # Echo the bad value, except where it may be a credential.
        if isinstance(value, str | int | float) and not _SECRET_KEYS.intersection(loc):
            message += f" (got {value!r})"
    return ".".join(loc), message


def config_error(problems: list[tuple[str, str]]) -> ConfigError:
    (path, message), *rest = problems
    lines = [message, *(f"{p}: {m}" if p else m for p, m in rest)]
    return ConfigError(path, "\n".join(lines))
