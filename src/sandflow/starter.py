"""sandflow new: write a starter experiment (a config, its recipes, sample data, a README) into a new directory.

The templates are package data (``templates/<name>/``), copies of the repository's ``configs/`` examples
(tests/workflow/test_starter.py checks they stay byte-identical) with the paths rewritten on the way out: every path
in them becomes ``<dir>/...`` and the dataset becomes the one given with ``--data``. Paths are written
relative to the directory ``sandflow new`` runs in (absolute when the target lies outside it), since a
config's relative paths resolve against the directory it is run from, as in DJ-Sandbox.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


class StarterError(Exception):
    """Bad arguments to ``sandflow new``: one line, exit 2, nothing written."""


@dataclass(frozen=True)
class Template:
    name: str
    summary: str
    data_file: str  # the sample dataset in the template, replaced by --data
    rewrites: tuple[tuple[str, str], ...]
    copied_from: tuple[tuple[str, str], ...] = ()
    imports_from_dir: bool = False  # a user function or hook in <dir> is imported by module path
    module: str = "answers"  # the module of <dir> it is in


def load_templates() -> dict[str, Template]:
    """The templates index.yaml lists, in its order."""
    index = yaml.safe_load((files("sandflow") / "templates" / "index.yaml").read_text(encoding="utf-8"))
    return {
        name: Template(
            name=name,
            summary=entry["summary"],
            data_file=entry["data_file"],
            rewrites=tuple((old, new) for old, new in entry["rewrites"]),
            copied_from=tuple(entry.get("copied_from", {}).items()),
            imports_from_dir=entry.get("imports_from_dir", False),
            module=entry.get("module", "answers"),
        )
        for name, entry in index.items()
    }


TEMPLATES = load_templates()

# Files whose text is rewritten (data files are copied as they are).
TEXT_SUFFIXES = (".yaml", ".md", ".py")


def template_root(name: str) -> Traversable:
    return files("sandflow") / "templates" / name


def template_files(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """Every file under a template directory as (relative path, resource), sorted."""
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.extend(template_files(entry, rel + "/"))
        elif entry.name != "__pycache__":
            found.append((rel, entry))
    return found


def as_written(path: Path) -> str:
    """A path as the config names it: relative to the current directory when inside it, else absolute."""
    absolute, here = path.resolve(), Path.cwd().resolve()
    return absolute.relative_to(here).as_posix() if absolute.is_relative_to(here) else absolute.as_posix()


def module_path(dir_text: str, where: str, module: str) -> str:
    """The dotted module path of <dir>/<module> from the current directory (user functions import that way)."""
    parts = [part for part in Path(dir_text).parts if part != "."]
    if os.path.isabs(dir_text) or not all(part.isidentifier() for part in parts):
        raise StarterError(
            f"{where}: the directory must be a relative path of Python names (letters, digits, _) under the "
            f"current directory, since the config imports its {module}.py as a module from here; got {dir_text!r}"
        )
    return ".".join([*parts, module])


def rewrite(text: str, table: dict[str, str], yaml_quoted: bool) -> str:
    """One pass over the text, longest literal first, so a rewritten path is never rewritten again."""
    if yaml_quoted:  # the paths sit inside single-quoted YAML strings, where ' is written ''
        table = {old: new.replace("'", "''") for old, new in table.items()}
    pattern = re.compile("|".join(re.escape(old) for old in sorted(table, key=len, reverse=True)))
    return pattern.sub(lambda match: table[match.group(0)], text)


def render(template: Template, dir_text: str, data_text: str | None) -> dict[str, bytes]:
    """The files of the starter directory, by relative path (data_text None: the template's own sample)."""
    own_sample = data_text is None
    values = {"{dir}": dir_text, "{data}": f"{dir_text}/{template.data_file}" if own_sample else data_text}
    if template.imports_from_dir:
        values["{module}"] = module_path(dir_text, f"template {template.name}", template.module)
    table = {old: rewrite(new, values, yaml_quoted=False) for old, new in template.rewrites}
    table.update(values)  # the READMEs name {dir} and {data} directly
    rendered: dict[str, bytes] = {}
    for rel, resource in template_files(template_root(template.name)):
        if rel == template.data_file and not own_sample:
            continue  # --data replaces the sample
        if rel.endswith(TEXT_SUFFIXES):
            rendered[rel] = rewrite(resource.read_text(), table, yaml_quoted=rel.endswith(".yaml")).encode()
        else:
            rendered[rel] = resource.read_bytes()
    return rendered


def create(name: str, directory: str, data: str | None) -> list[str]:
    """Write template ``name`` into ``directory``; the files written. Raises StarterError before writing anything."""
    template = TEMPLATES.get(name)
    if template is None:
        raise StarterError(f"unknown template {name!r} (templates: {', '.join(TEMPLATES)}; see sandflow new --list)")
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise StarterError(
            f"{directory} exists and is not empty: sandflow new writes only into a new or empty directory"
        )
    if data is not None and not Path(data).is_file():
        raise StarterError(f"--data {data}: no such file (give a JSON Lines dataset)")
    dir_text = as_written(target)
    rendered = render(template, dir_text, as_written(Path(data)) if data is not None else None)
    for rel, content in rendered.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as handle:  # never overwrite: the directory was empty
            handle.write(content)
    return list(rendered)


def listing() -> str:
    width = max(map(len, TEMPLATES))
    return "\n".join(f"{name:<{width}}  {template.summary}" for name, template in TEMPLATES.items())
