"""Reading and patching a config tree (nested mappings and lists) by a path of keys and indexes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sandflow.config.errors import ConfigError
from sandflow.config.model import SECTIONS

KeyPath = tuple[str | int, ...]  # a place in a config: its keys and list positions, outermost first


def parse_target(text: str, where: str) -> KeyPath:
    """'dj_configs.a.b' -> ('dj_configs', 'a', 'b'); the first part must name a section."""
    parts = tuple(text.split("."))
    if parts[0] not in SECTIONS or any(not p for p in parts):
        raise ConfigError(
            where, f"target {text!r} must be 'dj_configs' or 'extra_configs', optionally followed by .<dotted key>"
        )
    return parts


def get_path(tree: Any, path: KeyPath) -> Any:
    for part in path:
        if isinstance(tree, dict) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and isinstance(part, int) and part < len(tree):
            tree = tree[part]
        else:
            return None
    return tree


def set_path(tree: dict[str, Any], path: KeyPath, value: Any, where: str) -> None:
    """Set tree[path] = value, creating mappings on the way (upstream patches nested keys the same way)."""
    node: Any = tree
    for depth, part in enumerate(path[:-1]):
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ConfigError(
                where, f"cannot set {'.'.join(map(str, path))}: {'.'.join(map(str, path[:depth]))} is not a mapping"
            )
        if not isinstance(node.get(part), (dict, list)):
            node[part] = {}
        node = node[part]
    if isinstance(node, list) and isinstance(path[-1], int):
        node[path[-1]] = value
    elif isinstance(node, dict):
        node[path[-1]] = value
    else:
        raise ConfigError(where, f"cannot set {'.'.join(map(str, path))}: its parent is not a mapping")


def is_placeholder(value: Any) -> bool:
    """A value the planner put in place of a ref, a path edge, a write or a file hash."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith("$")


def leaves(tree: Any, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """(path, value) of every leaf; planner placeholders count as leaves."""
    if isinstance(tree, dict) and not is_placeholder(tree):
        for key, value in tree.items():
            yield from leaves(value, prefix + (key,))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from leaves(value, prefix + (index,))
    else:
        yield prefix, tree
