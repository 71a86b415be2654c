"""Generate a JSON value that satisfies a response schema.

Handles both schema dialects the SDK sends on ``generateContent``:

* ``responseSchema`` - the OpenAPI-ish ``Schema`` type (``type: "OBJECT"``,
  ``nullable``, ``anyOf``, ``propertyOrdering``/``property_ordering``...);
* ``responseJsonSchema`` - real JSON Schema (``$defs``/``$ref``, type lists,
  ``oneOf``/``allOf``, ``const``, ``exclusiveMinimum``...).

Values are deterministic and derived from the prompt: every string is
non-empty, mentions the field name and the array-item position (so items
differ) and carries a snippet of the prompt text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_MAX_DEPTH = 12
_DEFAULT_ARRAY_LEN = 3
_SCENES_RE = re.compile(r"exactly\s+(\d+)\s+scenes?\b", re.IGNORECASE)


def requested_scene_count(prompt: str) -> int | None:
    """Scene count asked for with a phrase like ``exactly 5 scenes``."""
    match = _SCENES_RE.search(prompt)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class _Ctx:
    root: Mapping[str, Any]
    snippet: str
    scene_count: int | None


def generate_from_schema(schema: Mapping[str, Any], prompt: str, scene_text: str | None = None) -> Any:
    """Return a JSON-compatible value satisfying ``schema``.

    ``prompt`` seeds the strings; ``scene_text`` (default: ``prompt``) is
    searched for ``exactly N scenes`` - callers pass prompt + system
    instruction there.
    """
    snippet = " ".join(prompt.split())[:80] or "emulated"
    scenes = requested_scene_count(prompt if scene_text is None else scene_text)
    ctx = _Ctx(root=schema, snippet=snippet, scene_count=scenes)
    return _gen(schema, ctx, name="value", path=(), depth=0)


def _resolve_ref(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for raw in ref.lstrip("#").split("/"):
        if not raw:
            continue
        node = node[raw.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, Mapping):
        raise ValueError(f"$ref {ref!r} does not point to a schema")
    return node


def _schema_type(schema: Mapping[str, Any]) -> str | None:
    raw = schema.get("type")
    if isinstance(raw, list):
        non_null = [t for t in raw if str(t).lower() != "null"]
        raw = non_null[0] if non_null else "null"
    if raw is None:
        if "properties" in schema:
            return "object"
        if "items" in schema:
            return "array"
        return None
    return str(raw).lower()


def _gen(schema: Mapping[str, Any], ctx: _Ctx, name: str, path: tuple[int, ...], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        resolved = {**_resolve_ref(str(schema["$ref"]), ctx.root)}
        resolved.update({k: v for k, v in schema.items() if k != "$ref"})
        return _gen(resolved, ctx, name, path, depth + 1)
    if "allOf" in schema and schema["allOf"]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve_ref(part["$ref"], ctx.root) if "$ref" in part else part
            for key, value in part.items():
                if key == "properties":
                    merged.setdefault("properties", {}).update(value)
                elif key == "required":
                    merged["required"] = list(merged.get("required", [])) + list(value)
                else:
                    merged.setdefault(key, value)
        return _gen(merged, ctx, name, path, depth + 1)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options:
            chosen = next((o for o in options if _schema_type(o) != "null"), options[0])
            return _gen(chosen, ctx, name, path, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None and _schema_type(schema) is None:
        return schema["default"]

    kind = _schema_type(schema)
    if kind == "object":
        return _gen_object(schema, ctx, path, depth)
    if kind == "array":
        return _gen_array(schema, ctx, name, path, depth)
    if kind == "integer":
        return int(_gen_number(schema, path, integer=True))
    if kind == "number":
        return _gen_number(schema, path, integer=False)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _gen_string(schema, ctx, name, path)


def _gen_object(schema: Mapping[str, Any], ctx: _Ctx, path: tuple[int, ...], depth: int) -> dict[str, Any]:
    props: Mapping[str, Any] = schema.get("properties") or {}
    order = list(schema.get("propertyOrdering") or schema.get("property_ordering") or [])
    names = order + [p for p in props if p not in order]
    return {p: _gen(props[p], ctx, p, path, depth + 1) for p in names if p in props}


def _gen_array(schema: Mapping[str, Any], ctx: _Ctx, name: str, path: tuple[int, ...], depth: int) -> list[Any]:
    lo = int(schema.get("minItems", schema.get("min_items", 0)) or 0)
    hi_raw = schema.get("maxItems", schema.get("max_items"))
    if name == "scenes" and ctx.scene_count is not None:
        count = ctx.scene_count
    else:
        count = lo if lo > 0 else _DEFAULT_ARRAY_LEN
    count = max(count, lo)
    if hi_raw is not None:
        count = min(count, int(hi_raw))
    items = schema.get("items")
    if isinstance(items, list):  # tuple validation (prefixItems-like)
        return [_gen(s, ctx, name, path + (i,), depth + 1) for i, s in enumerate(items)]
    item_schema: Mapping[str, Any] = items if isinstance(items, Mapping) else {"type": "string"}
    singular = name[:-1] if name.endswith("s") and len(name) > 1 else name
    # JSON Schema's prefixItems (Gemini's responseJsonSchema accepts it): the first items follow their
    # own schemas, the rest ``items``.
    prefix = [p for p in schema.get("prefixItems") or [] if isinstance(p, Mapping)]
    return [_gen(prefix[i] if i < len(prefix) else item_schema, ctx, singular, path + (i,), depth + 1) for i in range(count)]


def _gen_number(schema: Mapping[str, Any], path: tuple[int, ...], *, integer: bool) -> float:
    index = path[-1] if path else 0
    step = 1 if integer else 0.5
    lo = schema.get("minimum")
    if schema.get("exclusiveMinimum") is not None and not isinstance(schema["exclusiveMinimum"], bool):
        lo = float(schema["exclusiveMinimum"]) + step
    hi = schema.get("maximum")
    if schema.get("exclusiveMaximum") is not None and not isinstance(schema["exclusiveMaximum"], bool):
        hi = float(schema["exclusiveMaximum"]) - step
    lo_f = float(lo) if lo is not None else None
    hi_f = float(hi) if hi is not None else None
    if integer:
        lo_f = None if lo_f is None else float(-(-lo_f // 1))  # ceil
        hi_f = None if hi_f is None else float(hi_f // 1)
    if lo_f is not None and hi_f is not None:
        span = int(hi_f - lo_f) + 1 if integer else 1
        value = lo_f + (index % max(span, 1)) if integer else lo_f
        return min(value, hi_f)
    if lo_f is not None:
        return lo_f + index
    value = float(index + 1)
    return min(value, hi_f) if hi_f is not None else value


def _gen_string(schema: Mapping[str, Any], ctx: _Ctx, name: str, path: tuple[int, ...]) -> str:
    fmt = str(schema.get("format") or "").lower()
    fixed = {
        "date-time": "2024-01-01T00:00:00Z",
        "date": "2024-01-01",
        "time": "00:00:00",
        "uri": "https://example.com/vidpipe-emulator",
        "url": "https://example.com/vidpipe-emulator",
        "email": "emulator@example.com",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    if fmt in fixed:
        return fixed[fmt]
    position = ".".join(str(i + 1) for i in path)
    label = f"{name} {position}" if position else name
    text = f"{label.replace('_', ' ')}: {ctx.snippet}"
    lo = int(schema.get("minLength", schema.get("min_length", 0)) or 0)
    hi = schema.get("maxLength", schema.get("max_length"))
    if len(text) < lo:
        text = text + "." * (lo - len(text))
    if hi is not None:
        text = text[: int(hi)]
    return text
