"""``GET /docs``: the OpenAPI document as one self-contained HTML page (no script, no CDN:
the relay may run where there is no network). Pure: a document in, a page out."""

from __future__ import annotations

import json
from html import escape
from typing import Any

JSON = dict[str, Any]
PREFIX = "#/components/schemas/"

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
h2{border-bottom:1px solid #ddd;margin-top:2em}
section.op{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:1em 0}
code,pre,.m{font-family:ui-monospace,monospace}
pre{background:#f6f6f6;padding:.5em}
.m{font-weight:bold;display:inline-block;min-width:4.5em}
.GET{color:#06c}.POST{color:#080}.PATCH{color:#a60}.DELETE{color:#c00}
table{border-collapse:collapse;width:100%;margin:.3em 0}
td,th{border-top:1px solid #eee;padding:.2em .5em;text-align:left;vertical-align:top}
nav a{display:block}
"""


def render(spec: JSON) -> str:
    info = spec["info"]
    operations = [
        (path, method.upper(), op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    ]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(info['title'])} API</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(info['title'])} API <small>{escape(info['version'])}</small></h1>",
        f"<p>{escape(info.get('description', ''))}</p>",
        "<p>Authenticate with <code>Authorization: Bearer &lt;api key&gt;</code> (or "
        "<code>X-API-Key</code>). The machine-readable document: "
        "<a href='/openapi.json'>/openapi.json</a>.</p>",
        "<nav>",
        *(
            f"<a href='#{escape(op['operationId'])}'><span class='m {m}'>{m}</span>"
            f"<code>{escape(path)}</code> {escape(op['summary'])}</a>"
            for path, m, op in operations
        ),
        "</nav>",
    ]
    for tag in spec.get("tags", []):
        parts.append(f"<h2>{escape(tag['name'])}</h2>")
        parts += [
            _operation(path, m, op)
            for path, m, op in operations
            if tag["name"] in op.get("tags", [])
        ]
    parts.append("<h2>Schemas</h2>")
    parts += [
        _schema_section(name, schema) for name, schema in spec["components"]["schemas"].items()
    ]
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(path: str, method: str, op: JSON) -> str:
    out = [
        f"<section class='op' id='{escape(op['operationId'])}'>",
        f"<h3><span class='m {method}'>{method}</span> <code>{escape(path)}</code></h3>",
        f"<p><b>{escape(op['summary'])}</b>. {escape(op.get('description', ''))}</p>",
    ]
    if not op.get("security", True):
        out.append("<p><i>No API key.</i></p>")
    params = op.get("parameters", [])
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>")
        out += [
            f"<tr><td><code>{escape(p['name'])}</code>{_star(p.get('required'))}</td>"
            f"<td>{escape(p['in'])}</td><td>{type_of(p['schema'])}</td>"
            f"<td>{escape(p.get('description', ''))}</td></tr>"
            for p in params
        ]
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        for media, content in body["content"].items():
            need = "required" if body.get("required") else "optional"
            out.append(
                f"<p>Body ({need}, <code>{escape(media)}</code>): {type_of(content['schema'])}</p>"
            )
            if "example" in content:
                out.append(f"<pre>{escape(json.dumps(content['example'], indent=2))}</pre>")
    out.append("<table><tr><th>status</th><th>body</th><th></th></tr>")
    for status, answer in op["responses"].items():
        kinds = [
            f"{type_of(c['schema'])} <code>{escape(m)}</code>"
            for m, c in answer.get("content", {}).items()
        ]
        out.append(
            f"<tr><td>{escape(status)}</td><td>{', '.join(kinds)}</td>"
            f"<td>{escape(answer['description'])}</td></tr>"
        )
    out.append("</table></section>")
    return "\n".join(out)


def _schema_section(name: str, schema: JSON) -> str:
    out = [f"<section class='op' id='schema-{escape(name)}'><h3>{escape(name)}</h3>"]
    if schema.get("description"):
        out.append(f"<p>{escape(schema['description'])}</p>")
    props = schema.get("properties")
    if props:
        required = set(schema.get("required", ()))
        out.append("<table><tr><th>field</th><th>type</th><th></th></tr>")
        out += [
            f"<tr><td><code>{escape(field)}</code>{_star(field in required)}</td>"
            f"<td>{type_of(prop)}</td><td>{escape(prop.get('description', ''))}</td></tr>"
            for field, prop in props.items()
        ]
        out.append("</table>")
    else:
        out.append(f"<p>{type_of(schema)}</p>")
    out.append("</section>")
    return "\n".join(out)


def type_of(schema: JSON) -> str:
    """A short HTML rendering of a JSON schema's type: ``string | null``, ``array of Task``."""
    if "$ref" in schema:
        name = escape(schema["$ref"].removeprefix(PREFIX))
        return f"<a href='#schema-{name}'>{name}</a>"
    if "anyOf" in schema:
        return " | ".join(type_of(s) for s in schema["anyOf"])
    if "const" in schema:
        return f"<code>{escape(repr(schema['const']))}</code>"
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return "array of " + type_of(schema.get("items", {}))
    if kind is None:
        return "any"
    text = escape(str(kind))
    limits = [
        f"{k} {schema[k]}"
        for k in (
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "pattern",
            "format",
        )
        if k in schema
    ]
    if "default" in schema:
        limits.append(f"default {schema['default']!r}")
    return text + (f" <small>({escape(', '.join(limits))})</small>" if limits else "")


def _star(required: object) -> str:
    return " <b title='required'>*</b>" if required else ""
