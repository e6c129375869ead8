"""MkDocs hooks of the documentation site (mkdocs.yml `hooks:`), so that each text has one source.

- The README is the home page (`index.md`) and bench/README.md the benchmarks page, both read from
  where they live; their links, and the docs' links to them (`../README.md`), are rewritten to the
  site's pages, and links to other repository files (outside docs/) to their paths (see
  `_relink`).
- One page per destination type, `destinations/<type>.md`, made from the type's folder under
  `waypost/destinations/`: its `metadata.json` (label, description, fields) and its
  `instructions.md` (the guide the tenant portal shows). The nav entry `Destination types` lists
  them, found at build time.
- The destination types overview lists them where it says `<!-- destination-types -->`.
- The API reference page renders this server's OpenAPI document (`waypost/api/openapi.yaml`, the
  one the server serves) where it says `<!-- openapi -->`, and the site carries the document
  itself as `openapi.yaml`.
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path
from typing import Any

import yaml
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

REPO = Path(__file__).resolve().parents[1]
DESTINATIONS = REPO / "waypost" / "destinations"
# Repository files shown as pages: repository path -> page path in the site.
INCLUDED = {"README.md": "index.md", "bench/README.md": "benchmarks.md"}
NAV_DESTINATIONS = "Destination types"
OPENAPI = REPO / "waypost" / "api" / "openapi.yaml"
OPENAPI_MARKER = "<!-- openapi -->"
TYPES_MARKER = "<!-- destination-types -->"
_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s#]+)(#[^)\s]*)?\)")


def destination_types() -> list[tuple[str, dict[str, Any]]]:
    """(type, metadata.json) of every type folder that has instructions, by label."""
    found = []
    for folder in sorted(DESTINATIONS.iterdir()):
        if (folder / "instructions.md").is_file() and (folder / "metadata.json").is_file():
            found.append((folder.name, json.loads((folder / "metadata.json").read_text("utf-8"))))
    return sorted(found, key=lambda item: str(item[1]["label"]).lower())


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Fill the `Destination types` nav entry with one page per type."""
    pages: list[Any] = [
        {meta["label"]: f"destinations/{name}.md"} for name, meta in destination_types()
    ]
    for index, entry in enumerate(config.nav or []):
        if isinstance(entry, dict) and NAV_DESTINATIONS in entry:
            overview = {"All types": entry[NAV_DESTINATIONS]}
            config.nav[index] = {NAV_DESTINATIONS: [overview, *pages]}  # type: ignore[index]
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for source, page in INCLUDED.items():
        files.append(File.generated(config, page, abs_src_path=str(REPO / source)))
    for name, meta in destination_types():
        files.append(
            File.generated(config, f"destinations/{name}.md", content=destination_page(name, meta))
        )
    files.append(File.generated(config, "openapi.yaml", abs_src_path=str(OPENAPI)))
    return files


def destination_page(name: str, meta: dict[str, Any]) -> str:
    instructions = (DESTINATIONS / name / "instructions.md").read_text("utf-8")
    lines = instructions.splitlines()
    if lines and lines[0] == f"# {meta['label']}":
        lines = lines[1:]
    body = "\n".join("#" + line if line.startswith("#") else line for line in lines)
    out = [f"# {meta['label']}", "", f"{meta['description']}", "", f"Type: `{name}`.", ""]
    for title, key in (("Configuration", "config_fields"), ("Credentials", "credential_fields")):
        fields = meta.get(key) or []
        if not fields:
            continue
        out += [
            f"## {title} (`{key.split('_')[0]}`)",
            "",
            "| Key | Label | Required | Description |",
        ]
        out.append("|---|---|---|---|")
        for field in fields:
            required = "yes" if field.get("required") else "no"
            text = str(field.get("description", "")).replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{field['key']}` | {field.get('label', '')} | {required} | {text} |")
        out.append("")
    out += [
        "_This page is generated from `waypost/destinations/"
        f"{name}/instructions.md` (the guide the tenant portal shows) and `metadata.json`._",
        "",
        body,
        "",
    ]
    return "\n".join(out)


def types_table(page_uri: str) -> str:
    rows = ["| Type | | What it does |", "|---|---|---|"]
    for name, meta in destination_types():
        link = posixpath.relpath(f"destinations/{name}.md", posixpath.dirname(page_uri) or ".")
        rows.append(f"| [{meta['label']}]({link}) | `{name}` | {_cell(meta['description'])} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    source = _repository_path(page.file)
    if source is not None:
        uri, repo_url = page.file.src_uri, config.repo_url
        markdown = _LINK.sub(lambda m: _relink(m, source, uri, repo_url), markdown)
    if TYPES_MARKER in markdown:
        markdown = markdown.replace(TYPES_MARKER, types_table(page.file.src_uri))
    if OPENAPI_MARKER in markdown:
        markdown = markdown.replace(OPENAPI_MARKER, openapi_markdown(openapi_document()))
    return markdown


def _repository_path(file: File) -> str | None:
    """Where the page's text lives in the repository (its links are relative to that)."""
    for source, page in INCLUDED.items():
        if file.src_uri == page:
            return source
    if file.generated_by:
        return None
    return f"docs/{file.src_uri}"


def _relink(match: re.Match[str], source: str, page_uri: str, repo_url: str | None) -> str:
    """A link of the page's text, made to work in the site.

    A repository file shown as a page, or a file under docs/, becomes a link to it. Another file
    of the repository (a compose file, a unit) becomes a link into `repo_url` when mkdocs.yml
    sets one, else its path in code; a target that does not exist is left as written, for strict
    mode to report.
    """
    bang, text, target, anchor = match.group(1), match.group(2), match.group(3), match.group(4)
    if "://" in target or target.startswith("mailto:"):
        return match.group(0)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), target))
    if resolved in INCLUDED:
        site = INCLUDED[resolved]
    elif resolved.startswith("docs/"):
        site = resolved[len("docs/") :]
    elif not bang and not resolved.startswith("..") and (REPO / resolved).exists():
        if repo_url:
            return f"[{text}]({repo_url.rstrip('/')}/blob/main/{resolved}{anchor or ''})"
        if text.strip("`").rstrip("/") == resolved:
            return text  # the text names the file already
        return f"{text} (`{resolved}` in the repository)"
    else:
        return match.group(0)
    relative = posixpath.relpath(site, posixpath.dirname(page_uri) or ".")
    return f"{bang}[{text}]({relative}{anchor or ''})"


# The API reference ---------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The document, its YAML merge keys resolved; without the error sets they were made from."""
    document: dict[str, Any] = yaml.safe_load(OPENAPI.read_text("utf-8"))
    return {k: v for k, v in document.items() if k != "x-error-sets"}


def openapi_markdown(document: dict[str, Any]) -> str:
    """Operations by tag (parameters, body, responses) and schemas of an OpenAPI 3.1 document.
    Schema headings are anchored `schema-<name>`; the error statuses an operation shares with
    others (responses of `components`) are one row."""
    components = document.get("components", {})
    schemas = components.get("schemas", {})
    tags = {tag["name"]: tag.get("description", "") for tag in document.get("tags", [])}
    by_tag: dict[str, list[str]] = {name: [] for name in tags}
    for path, item in document.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in ("get", "put", "post", "patch", "delete"):
            operation = item.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["Other"])[0]
            by_tag.setdefault(tag, []).extend(
                _operation(method, path, operation, shared, components)
            )
    out: list[str] = []
    for tag, lines in by_tag.items():
        if lines:
            out += [f"## {tag}", ""]
            if tags.get(tag):
                out += [tags[tag], ""]
            out += lines
    out += ["## Schemas", ""]
    for name, schema in schemas.items():
        out += [f"### {name} {{#schema-{name.lower()}}}", ""]
        if schema.get("description"):
            out += [schema["description"].strip(), ""]
        properties = schema.get("properties", {})
        if properties:
            required = set(schema.get("required", []))
            out += ["| Field | Type | Required | Description |", "|---|---|---|---|"]
            for field, spec in properties.items():
                out.append(
                    f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | "
                    f"{_cell(spec.get('description', ''))} |"
                )
            out.append("")
        elif "enum" in schema:
            out += [f"One of {', '.join(f'`{v}`' for v in schema['enum'])}.", ""]
        elif "oneOf" in schema:
            out += [f"{_type(schema)}.", ""]
    header = [str(document.get("info", {}).get("description", "")).strip()]
    base = document.get("servers", [{}])[0].get("url", "")
    if base:
        header.append(f"All paths are relative to `{base}`.")
    return "\n\n".join([*header, "\n".join(out)])


def _operation(
    method: str,
    path: str,
    operation: dict[str, Any],
    shared: list[dict[str, Any]],
    components: dict[str, Any],
) -> list[str]:
    out = [f"### `{method.upper()} {path}`", ""]
    if operation.get("summary"):
        out += [f"**{operation['summary']}**", ""]
    if operation.get("x-extension"):
        out += ["_This server's extension: not an Outpost operation._", ""]
    if operation.get("security") == []:
        out += ["No authentication.", ""]
    if operation.get("description"):
        out += [operation["description"].strip(), ""]
    parameters = components.get("parameters", {})
    params = [_resolve(p, parameters) for p in [*shared, *operation.get("parameters", [])]]
    if params:
        out += [
            "| Parameter | In | Type | Required | Description |",
            "|---|---|---|---|---|",
        ]
        for param in params:
            out.append(
                f"| `{param['name']}` | {param['in']} | {_type(param.get('schema', {}))} | "
                f"{'yes' if param.get('required') else 'no'} | "
                f"{_cell(param.get('description', ''))} |"
            )
        out.append("")
    body = operation.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            out += [f"Request body ({media}): {_type(content.get('schema', {}))}", ""]
    out += ["| Status | Response |", "|---|---|"]
    errors = []
    for status, response in operation.get("responses", {}).items():
        if "$ref" in response and status >= "400":
            errors.append(status)
            continue
        response = _resolve(response, components.get("responses", {}))
        described = _cell(response.get("description", ""))
        for content in response.get("content", {}).values():
            described += f" {_type(content.get('schema', {}))}"
        out.append(f"| {status} | {described.strip()} |")
    if errors:
        out.append(f"| {', '.join(sorted(errors))} | [Error](#schema-error) |")
    out.append("")
    return out


def _resolve(node: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = components[ref.rsplit("/", 1)[-1]]
        return resolved
    return node


def _type(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return f"[{name}](#schema-{name.lower()})"
    if "allOf" in schema or "oneOf" in schema or "anyOf" in schema:
        key = next(k for k in ("allOf", "oneOf", "anyOf") if k in schema)
        joiner = " and " if key == "allOf" else " or "
        return joiner.join(_type(part) for part in schema[key])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return f"{kind} ({', '.join(f'`{v}`' for v in schema['enum'])})"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
