"""DJ-Sandbox's path conventions: file or directory by name, the iter_<N> directory, and which config keys name
paths a job reads."""

from __future__ import annotations

import os
import re

# The last word of a key (a trailing _<n> dropped, as in dataset_path_2) that marks its value as a path the job
# reads: sandflow's hooks and Data-Juicer's ops name their inputs so (dataset_path, stopwords_dir, seed_file,
# hf_model and tokenizer_model: a hub id or a local directory).
PATH_KEY_WORDS = frozenset(
    {"path", "paths", "dir", "dirs", "file", "files", "dataset", "datasets", "model", "models", "tokenizer", "recipe"}
)
# Data-Juicer op arguments that are paths without saying so in their last word.
OTHER_PATH_KEYS = frozenset({"imgfiles", "model_cfg", "wilor_model_config"})


def names_a_path(key: str) -> bool:
    """Whether a config key's value is meant as a path to read (only those are hashed as files in job keys)."""
    name = re.sub(r"_\d+$", "", key)
    return name in OTHER_PATH_KEYS or name.rsplit("_", 1)[-1] in PATH_KEY_WORDS


def encloses(outer: str, inner: str) -> bool:
    """Whether outer is inner or one of its ancestors, symlinks resolved."""
    outer, inner = os.path.realpath(outer), os.path.realpath(inner)
    return os.path.commonpath([outer, inner]) == outer


def guess_kind(path: str) -> str:
    """DJ-Sandbox's rule: a basename with a dot (not leading) is a file, anything else a directory."""
    if path.endswith(("/", os.sep)):
        return "dir"
    base = os.path.basename(path.rstrip("/"))
    return "file" if "." in base and not base.startswith(".") else "dir"


def iterize(path: str, iteration: int) -> str:
    """Insert DJ-Sandbox's iter_<N> directory: a/b/c.jsonl -> a/b/iter_N/c.jsonl, a/b -> a/b/iter_N."""
    if guess_kind(path) == "file":
        return os.path.join(os.path.dirname(path), f"iter_{iteration}", os.path.basename(path))
    return os.path.join(path.rstrip("/"), f"iter_{iteration}")


def normalize(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))
