"""The request form, rendered on the server from the pipeline request's JSON Schema.

Every property of the schema becomes one field named by its path as the API
names fields in a 422 (`source.tables`, `kafka.partitions`); objects become
fieldsets, the optional ones folded. What a field is follows from its schema:
a connection (the schema's `connection` definition) is a menu the page fills
from `GET /connections` of the matching kind, a list of strings is a text
area of one item a line, an enum a menu, an integer a number, anything else
a text box. Nothing is checked in the browser: the API validates, and the page
shows each of its problems at the field it names.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

CONNECTION_REF = "#/$defs/connection"
# Which kind of connection a connection field takes, by its path.
CONNECTION_KINDS = {"source.connection": "source", "cluster": "cluster", "sink.connection": "sink"}


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    """`node` with a local `$ref` merged in (its own keys win, as the description beside a `$ref` does)."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return dict(node)
    target: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{key: value for key, value in node.items() if key != "$ref"}}


def field_paths(schema: Mapping[str, Any]) -> list[str]:
    """Every leaf property of the schema, by the path the form (and the API's 422) names it."""
    found: list[str] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for name, child in node.get("properties", {}).items():
            child = _resolve(schema, child)
            path = f"{prefix}.{name}" if prefix else name
            if child.get("type") == "object":
                walk(child, path)
            else:
                found.append(path)

    walk(schema, "")
    return found


def _id(path: str) -> str:
    return "field-" + path.replace(".", "-")


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _hint(node: Mapping[str, Any]) -> str:
    parts = []
    if node.get("description"):
        parts.append(str(node["description"]))
    if "default" in node:
        parts.append(f"Default: {node['default']}.")
    if "minimum" in node or "maximum" in node:
        parts.append(f"From {node.get('minimum', '…')} to {node.get('maximum', '…')}.")
    return " ".join(parts)


def _control(path: str, node: Mapping[str, Any], required: bool, teams: Sequence[str]) -> str:
    attributes = f'id="{_id(path)}" name="{html.escape(path)}" data-field="{html.escape(path)}"'
    if required:
        attributes += ' aria-required="true"'
    if path in CONNECTION_KINDS:
        return (f'<select {attributes} data-kind="{CONNECTION_KINDS[path]}">'
                '<option value="">(loading the connections your teams may use…)</option></select>')
    if node.get("type") == "array":
        return (f'<textarea {attributes} data-type="list" rows="3" '
                f'placeholder="one a line, e.g. public.orders"></textarea>')
    if "enum" in node:
        default = node.get("default")
        options = [f'<option value="">(default: {html.escape(str(default))})</option>' if default is not None
                   else '<option value="">(choose)</option>']
        options += [f'<option value="{html.escape(str(value))}">{html.escape(str(value))}</option>'
                    for value in node["enum"]]
        return f'<select {attributes}>{"".join(options)}</select>'
    if node.get("type") == "integer":
        bounds = "".join(f' {key[:3]}="{node[key]}"' for key in ("minimum", "maximum") if key in node)
        placeholder = f' placeholder="{node["default"]}"' if "default" in node else ""
        return f'<input {attributes} type="number" data-type="integer" step="1"{bounds}{placeholder}>'
    if path == "owner" and teams:
        # A team of the caller's, by default its first; the API refuses any other.
        listed = "".join(f'<option value="{html.escape(team)}">' for team in teams)
        return (f'<input {attributes} type="text" list="owner-teams" value="{html.escape(teams[0])}" '
                f'autocomplete="off"><datalist id="owner-teams">{listed}</datalist>')
    placeholder = f' placeholder="{html.escape(str(node["default"]))}"' if "default" in node else ""
    return f'<input {attributes} type="text" autocomplete="off" spellcheck="false"{placeholder}>'


def _field(path: str, name: str, node: Mapping[str, Any], required: bool, teams: Sequence[str]) -> str:
    hint = _hint(node)
    hint_id = _id(path) + "-hint"
    control = _control(path, node, required, teams)
    if hint:
        control = control.replace(f'id="{_id(path)}"', f'id="{_id(path)}" aria-describedby="{hint_id}"', 1)
    mark = ' <span class="required">required</span>' if required else ""
    return (f'<div class="field" data-for="{html.escape(path)}">'
            f'<label for="{_id(path)}">{html.escape(_label(name))}{mark} '
            f'<span class="mono muted small">{html.escape(path)}</span></label>{control}'
            + (f'<small class="hint" id="{hint_id}">{html.escape(hint)}</small>' if hint else "")
            + f'<p class="field-error" data-error-for="{html.escape(path)}" role="alert" hidden></p></div>')


def _fields(schema: Mapping[str, Any], node: Mapping[str, Any], prefix: str, teams: Sequence[str]) -> str:
    required = set(node.get("required", []))
    parts = []
    for name, child in node.get("properties", {}).items():
        child = _resolve(schema, child)
        path = f"{prefix}.{name}" if prefix else name
        if child.get("type") == "object":
            inner = _fields(schema, child, path, teams)
            legend = html.escape(_label(name))
            description = (f'<p class="hint">{html.escape(child["description"])}</p>'
                           if child.get("description") else "")
            error = f'<p class="field-error" data-error-for="{html.escape(path)}" role="alert" hidden></p>'
            if name in required:
                parts.append(f'<fieldset data-for="{html.escape(path)}"><legend>{legend}</legend>'
                             f"{description}{inner}{error}</fieldset>")
            else:
                parts.append(f'<details class="optional" data-for="{html.escape(path)}"><summary>{legend} '
                             f'<span class="muted">(optional: the defaults are shown)</span></summary>'
                             f"<fieldset>{description}{inner}{error}</fieldset></details>")
        else:
            parts.append(_field(path, name, child, name in required, teams))
    return "".join(parts)


def request_form(schema: Mapping[str, Any], teams: Sequence[str] = ()) -> str:
    """The form's fields for `schema` (the pipeline request's), the owner offered among `teams`."""
    return _fields(schema, schema, "", teams)
