"""The request of one inbox file: its format from its name, its text as fields (YAML without the
YAML 1.1 surprises, JSON, or plain text that is the prompt), the fields checked against
``ProjectRequest`` and its values by ``projects.validate_request``, every problem at once."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vidpipe_core.config import Settings
from vidpipe_core.errors import InvalidInput
from vidpipe_core.inbox.files import InboxSettings, check_name, decode_text, read_regular_file
from vidpipe_core.projects import request_and_spec
from vidpipe_core.request import FIELDS, ProjectRequest, parse_fields, short
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.userfiles import given_files

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".txt": "text"}


@dataclass(frozen=True)
class InboxEntry:
    """A valid inbox file. ``spec`` is the validated request; a generated id is final only once registered."""

    path: Path
    name: str
    request: ProjectRequest
    spec: ProjectSpec
    digest: str


class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # a base chosen at import (libyaml if present)
    """Safe YAML without the YAML 1.1 surprises: `16:9` stays a string (not the base-60 int 969),
    dates stay strings, `0123` stays a string. A key given twice is refused (YAML keeps the last one
    silently), and so are merge keys (`<<`): a prompt file has no use for them, and some PyYAML
    versions expand merges of aliased merges exponentially (an alias bomb)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise InvalidInput("file", f"uses a YAML merge key (<<) at line {line}; write the fields out instead")
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise InvalidInput("file", f"field {short(key_node.value)} appears twice (line {line}); keep one")
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_YamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"
        r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique (json.loads keeps the last of a repeated key silently)."""
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:
            raise InvalidInput("file", f"field {short(key)} appears twice; keep one")
        fields[key] = value
    return fields


def parse_request(text: str, fmt: str) -> ProjectRequest:
    """The request in the text of a file in format "yaml", "json" or "text"; InvalidInput naming
    every field problem at once."""
    return parse_fields(_raw_fields(text, fmt))


def _raw_fields(text: str, fmt: str) -> dict[str, Any]:
    """The file's fields as a mapping (InvalidInput for a file that is not one)."""
    if fmt == "text":
        raw: Any = {"prompt": text}
    elif fmt == "json":
        try:
            raw = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise InvalidInput("file", f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:  # 5000-digit numbers, nesting thousands deep
            raise InvalidInput("file", f"is not usable JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    else:
        try:
            raw = yaml.load(text, Loader=_YamlLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = (
                ", ".join(filter(None, [getattr(exc, "context", None), getattr(exc, "problem", None)]))
                or str(exc).splitlines()[0]
            )
            hint = (
                "; a value containing ': ' needs quotes, or write `prompt: |` and the text indented on the next lines"
                if "mapping values are not allowed" in problem
                else ""
            )
            raise InvalidInput("file", f"is not valid YAML: {problem}{where}{hint}") from None
        except (ValueError, RecursionError) as exc:
            raise InvalidInput("file", f"is not usable YAML: {type(exc).__name__}: {str(exc)[:200]}") from None
    if raw is None:
        raise InvalidInput("prompt", "is missing; the file is empty")
    if not isinstance(raw, dict):
        raise InvalidInput("file", f"must be a mapping of fields (prompt: ..., scenes: ...), not a {type(raw).__name__}")
    for key in raw:
        if not isinstance(key, str):
            raise InvalidInput("file", f"field name {short(key)} is not text", ", ".join(FIELDS))
    return raw


def parse_inbox_file(
    path: Path | str, settings: Settings, limits: InboxSettings | None = None, *, dir_fd: int | None = None
) -> InboxEntry:
    """Read and validate one inbox file; InvalidInput names the field (or `name`/`file`) and what to change.
    ``dir_fd``: the open inbox (``InboxDirs.inbox``), read instead of the path's folder."""
    limits = limits or InboxSettings()
    path = Path(path)
    name = check_name(path, settings.resolved_inbox_dir)
    fmt = FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise InvalidInput(
            "name", f"{Path(name).suffix or 'a name without extension'!r} is not a prompt file type", ", ".join(FORMATS)
        )
    text = decode_text(read_regular_file(path, limits.inbox_max_bytes, dir_fd))
    # An image or music path in the file is read from the inbox folder (or VIDPIPE_INPUT_ROOTS).
    request, spec = request_and_spec(settings, _raw_fields(text, fmt), base=settings.resolved_inbox_dir)
    files = [f.sha256 for f in given_files(spec)]  # a file changed under the same name is another request
    return InboxEntry(path=path, name=name, request=request, spec=spec, digest=request.digest(files))
