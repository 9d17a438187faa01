"""The docs page at ``/api/v1/docs``: the OpenAPI document rendered as one plain HTML page.

Written here rather than FastAPI's Swagger UI / ReDoc pages, which load their JavaScript and CSS
from a CDN: this page loads nothing, runs no script, and escapes every text it shows (the
document is ours, but descriptions may quote user-facing names). A strict CSP says so too.
"""

from __future__ import annotations

from html import escape
from typing import Any

CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2rem}
.op{border:1px solid #ddd;border-radius:4px;padding:.5rem 1rem;margin:1rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;font-family:monospace}
code,pre{font-family:monospace;background:#f5f5f5;padding:0 .2rem}
pre{padding:.5rem;overflow-x:auto}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}
"""


def _schema_text(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return " | ".join(_schema_text(part) for part in schema[combinator])
    if schema.get("type") == "array":
        return f"list of {_schema_text(schema.get('items'))}"
    return str(schema.get("type", "any"))


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [f'<div class="op"><p><span class="m">{escape(method.upper())}</span> <code>{escape(path)}</code>'
             f" — {escape(str(op.get('summary', '')))}</p>"]
    if op.get("description"):
        parts.append(f"<p>{escape(str(op['description']))}</p>")
    params = op.get("parameters") or []
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(str(p.get('name')))}</code></td><td>{escape(str(p.get('in')))}</td>"
            f"<td>{escape(_schema_text(p.get('schema')))}{' (required)' if p.get('required') else ''}</td>"
            f"<td>{escape(str(p.get('description') or ''))}</td></tr>" for p in params)
        parts.append(f"<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>{rows}</table>")
    body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        parts.append(f"<p>Body: <code>{escape(_schema_text(body))}</code></p>")
    codes = ", ".join(escape(str(code)) for code in (op.get("responses") or {}))
    parts.append(f"<p>Answers: {codes}</p></div>")
    return "".join(parts)


def _model(name: str, schema: dict[str, Any]) -> str:
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    rows = "".join(
        f"<tr><td><code>{escape(field)}</code></td><td>{escape(_schema_text(spec))}"
        f"{' (required)' if field in required else ''}</td>"
        f"<td>{escape(str(spec.get('description') or '') if isinstance(spec, dict) else '')}</td></tr>"
        for field, spec in props.items())
    return f'<h3 id="{escape(name)}">{escape(name)}</h3><table><tr><th>field</th><th>type</th><th></th></tr>{rows}</table>'


def render(openapi: dict[str, Any], openapi_url: str) -> str:
    info = openapi.get("info") or {}
    title = escape(str(info.get("title", "API")))
    sections = [f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title><style>{_STYLE}</style>"
                f"</head><body><h1>{title} <small>{escape(str(info.get('version', '')))}</small></h1>",
                f"<p>{escape(str(info.get('description', '')))}</p>",
                f'<p>Machine-readable: <a href="{escape(openapi_url)}">{escape(openapi_url)}</a></p>',
                "<h2>Operations</h2>"]
    for path, methods in (openapi.get("paths") or {}).items():
        for method, op in methods.items():
            if isinstance(op, dict):
                sections.append(_operation(path, method, op))
    sections.append("<h2>Documents</h2>")
    for name, schema in ((openapi.get("components") or {}).get("schemas") or {}).items():
        if isinstance(schema, dict):
            sections.append(_model(name, schema))
    sections.append("</body></html>")
    return "".join(sections)
