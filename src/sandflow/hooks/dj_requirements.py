"""What a Data-Juicer recipe needs on disk before it can run offline.

Called at Snakefile parse time, so it never imports data_juicer (seconds): it
mirrors py-data-juicer 1.6.1's own lookup rules instead, and reads an op's
default arguments (e.g. ``token_num_filter``'s ``hf_tokenizer``) from the op's
source file with ``ast``.

Where Data-Juicer looks (``data_juicer/utils/cache_utils.py``, ``model_utils.check_model``):

* model files (``lid.176.bin``, ``<lang>.sp.model``, ``<lang>.arpa.bin``, spaCy
  models): the name as a path relative to the working directory, then each
  directory of ``$DATA_JUICER_EXTERNAL_MODELS_HOME`` (``os.pathsep``-separated),
  then ``$DATA_JUICER_MODELS_CACHE``, which defaults to
  ``$DATA_JUICER_CACHE_HOME/models``; ``$DATA_JUICER_CACHE_HOME`` defaults to
  ``$CACHE_HOME/data_juicer`` and ``$CACHE_HOME`` to ``~/.cache``. When the file
  is missing Data-Juicer tries to download it.
* word lists: any ``*stopwords*.json`` / ``*flagged_words*.json`` in
  ``stopwords_dir`` / ``flagged_words_dir`` (default ``$DATA_JUICER_ASSETS_CACHE``,
  i.e. ``$DATA_JUICER_CACHE_HOME/assets``), else a download.
* Hugging Face models: a local path, a directory under
  ``$DATA_JUICER_EXTERNAL_MODELS_HOME``, else the Hugging Face hub cache
  (``$HF_HUB_CACHE``, default ``$HF_HOME/hub``), which is all that works with
  ``HF_HUB_OFFLINE=1``.

* Python packages: an op imports some packages lazily (``LazyLoader("ftfy")`` in
  its source file) and Data-Juicer pip-installs a missing one at run time, which
  an offline run blocks; this check reads those calls with ``ast`` and names each
  module that is not importable, with the package to install (the pin in
  requirements.txt where sandflow has one).

Ops that are neither in ``OFFLINE_OPS`` nor known here, and have no Hugging
Face model argument, get no line for models: this check cannot tell what they need.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandflow.hooks.dj_ray import RAY_EXECUTOR, executor_type, ray_config_problems

# Ops measured to run offline with a plain py-data-juicer install (NOTES-deps.md).
OFFLINE_OPS = frozenset(
    {
        "text_length_filter",
        "alphanumeric_filter",  # tokenization: false
        "special_characters_filter",
        "character_repetition_filter",
        "word_repetition_filter",  # tokenization: false
        "words_num_filter",  # tokenization: false
        "average_line_length_filter",
        "maximum_line_length_filter",
        "document_deduplicator",
        "random_selector",
        "range_specified_field_selector",
        "topk_specified_field_selector",
    }
)

# Ops that need a sentencepiece model <lang>.sp.model when tokenization is true.
TOKENIZING_OPS = frozenset({"words_num_filter", "word_repetition_filter", "stopwords_filter", "flagged_words_filter"})
# Word-list ops: op -> (directory argument, asset name Data-Juicer looks for in it).
WORD_LIST_OPS = {
    "stopwords_filter": ("stopwords_dir", "stopwords"),
    "flagged_words_filter": ("flagged_words_dir", "flagged_words"),
}
SPACY_OPS = frozenset({"text_action_filter", "text_entity_dependency_filter"})
SPACY_MODEL = "{}_core_web_md-3.7.0"
# alphanumeric_filter with tokenization: true loads this tokenizer (hard-coded in Data-Juicer).
ALPHANUMERIC_TOKENIZER = "EleutherAI/pythia-6.9b-deduped"
# Packages Data-Juicer's ops import lazily that requirements.txt pins (tests/unit/hooks/test_dj_recipes.py keeps them in step).
PINNED_PACKAGES = {
    "ftfy": "6.3.1",  # fix_unicode_mapper
    "simhash-pybind": "0.0.3",  # document_simhash_deduplicator, ..._near_deduplicator
    "sentencepiece": "0.2.3",
    "fasttext-predict": "0.9.2.4",
    "kenlm": "0.3.0",
    "ray": "2.60.0",
    "matplotlib": "3.11.2",
}


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def dj_cache_home() -> Path:
    cache_home = _env("CACHE_HOME") or "~/.cache"
    return Path(os.path.expanduser(_env("DATA_JUICER_CACHE_HOME") or os.path.join(cache_home, "data_juicer")))


def dj_models_cache() -> Path:
    return Path(os.path.expanduser(_env("DATA_JUICER_MODELS_CACHE") or str(dj_cache_home() / "models")))


def dj_assets_cache() -> Path:
    return Path(os.path.expanduser(_env("DATA_JUICER_ASSETS_CACHE") or str(dj_cache_home() / "assets")))


def _external_model_homes() -> list[Path]:
    homes = _env("DATA_JUICER_EXTERNAL_MODELS_HOME")
    return [Path(p.strip()) for p in homes.split(os.pathsep) if p.strip()] if homes else []


def hf_hub_cache() -> Path:
    explicit = _env("HF_HUB_CACHE") or _env("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expanduser(os.path.expandvars(explicit)))
    hf_home = _env("HF_HOME") or os.path.join(_env("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expanduser(os.path.expandvars(hf_home))) / "hub"


def model_file_found(name: str) -> bool:
    """Data-Juicer's check_model lookup, without the download."""
    candidates = [Path(name)] + [home / name for home in _external_model_homes()] + [dj_models_cache() / name]
    return any(c.exists() for c in candidates)


def hf_model_found(name: str) -> bool:
    """A local directory, one under DATA_JUICER_EXTERNAL_MODELS_HOME, or a snapshot in the hub cache."""
    if Path(os.path.expanduser(name)).exists() or any((home / name).exists() for home in _external_model_homes()):
        return True
    snapshots = hf_hub_cache() / f"models--{name.replace('/', '--')}" / "snapshots"
    try:
        return any(any(snapshot.iterdir()) for snapshot in snapshots.iterdir() if snapshot.is_dir())
    except OSError:
        return False


def word_list_found(directory: str | Path, asset: str) -> bool:
    """Data-Juicer's load_words_asset takes any *.json whose name contains the asset name."""
    try:
        return any(f.endswith(".json") and asset in f for f in os.listdir(os.path.expanduser(str(directory))))
    except OSError:
        return False


@functools.cache
def _dj_ops_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("data_juicer")  # locates the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "ops"


def _parsed(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None


@functools.cache
def _op_source(op_name: str) -> ast.Module | None:
    """The parsed source file of an op (None when Data-Juicer or the op is not found)."""
    ops_dir = _dj_ops_dir()
    sources = sorted(ops_dir.glob(f"*/{op_name}.py")) if ops_dir is not None else []
    return _parsed(sources[0]) if sources else None


@functools.cache
def lazy_packages(op_name: str) -> tuple[tuple[str, str], ...]:
    """(module, package) of every ``LazyLoader("module", "package")`` call in the op's source file; without a
    package, LazyLoader installs the module's name (its own map of other names, cv2 -> opencv-contrib-python,
    is used by no op of 1.6.1, which all name the package then)."""
    tree = _op_source(op_name)
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "LazyLoader" and node.args:
            constants = [arg.value for arg in node.args[:2] if isinstance(arg, ast.Constant)]
            if constants and isinstance(constants[0], str):
                module = constants[0].split(".")[0]
                package = constants[1] if len(constants) > 1 else module
                found.append((module, package))
    return tuple(dict.fromkeys(found))


def missing_packages(op_name: str, label: str) -> list[str]:
    """A line per package the op imports lazily that is not importable here."""
    lines = []
    for module, package in lazy_packages(op_name):
        if importlib.util.find_spec(module) is None:  # the top-level name: nothing is imported
            pin = PINNED_PACKAGES.get(package)
            install = f"pip install {package}=={pin} (requirements.txt)" if pin else f"pip install {package}"
            imported = "" if module == package else f" (import {module})"
            lines.append(f"{label} needs the Python package {package}{imported}: {install}")
    return lines


@functools.cache
def op_defaults(op_name: str) -> dict[str, Any]:
    """The constant default arguments of an op's __init__, read from its source file ({} when not found)."""
    tree = _op_source(op_name)
    if tree is None:
        return {}
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    registered = [c for c in classes if any("register_module" in ast.unparse(d) for d in c.decorator_list)]
    for cls in registered or classes:
        for item in cls.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                return _constant_defaults(item.args)
    return {}


def _constant_defaults(args: ast.arguments) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    positional = args.posonlyargs + args.args
    for arg, default in zip(positional[len(positional) - len(args.defaults) :], args.defaults):
        if isinstance(default, ast.Constant):
            defaults[arg.arg] = default.value
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        if isinstance(default, ast.Constant):
            defaults[arg.arg] = default.value
    return defaults


def _hf_models(op_name: str, args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(argument, model name) of every Hugging Face model the op loads."""
    models = [
        (name, value)
        for name, value in args.items()
        if name.startswith("hf_") and isinstance(value, str) and value.strip()
    ]
    if args.get("is_hf_model") and isinstance(args.get("api_or_hf_model"), str):
        models.append(("api_or_hf_model", args["api_or_hf_model"]))
    if op_name == "alphanumeric_filter" and args.get("tokenization"):
        models.append(("tokenization", ALPHANUMERIC_TOKENIZER))
    return models


def _models_line() -> str:
    return (
        f"{dj_models_cache()} (Data-Juicer's models cache: $DATA_JUICER_MODELS_CACHE, "
        f"default $DATA_JUICER_CACHE_HOME/models)"
    )


def op_requirements(op_name: str, recipe_args: Mapping[str, Any] | None, where: str = "") -> list[str]:
    """One line per thing this op needs that is not on disk."""
    label = f"{where} {op_name}".strip()
    given = dict(recipe_args or {})
    args = {**op_defaults(op_name), **given}
    lang = args.get("lang") or "en"
    missing = missing_packages(op_name, label)

    def need_file(name: str, what: str, why: str = "") -> None:
        if not model_file_found(name):
            missing.append(f"{label} needs {what} {name}{why}: put it in {_models_line()}")

    if op_name == "language_id_score_filter":
        need_file("lid.176.bin", "the fastText language-id model")
    if op_name == "perplexity_filter":
        need_file(f"{lang}.sp.model", "the sentencepiece model")
        need_file(f"{lang}.arpa.bin", "the KenLM model")
    elif op_name in TOKENIZING_OPS and args.get("tokenization"):
        need_file(f"{lang}.sp.model", "the sentencepiece model", " (tokenization: true)")
    if op_name in WORD_LIST_OPS:
        dir_arg, asset = WORD_LIST_OPS[op_name]
        directory = given.get(dir_arg) or str(dj_assets_cache())
        if not word_list_found(directory, asset):
            missing.append(
                f"{label} needs a {asset} word list: a JSON file named *{asset}*.json mapping language to "
                f'words (e.g. {{"{lang}": [...]}}) in {directory} (set {dir_arg}, default '
                f"$DATA_JUICER_ASSETS_CACHE = $DATA_JUICER_CACHE_HOME/assets)"
            )
    if op_name in SPACY_OPS:
        name = SPACY_MODEL.format(lang)
        if not (model_file_found(name) or model_file_found(f"{name}.tar.gz")):
            missing.append(f"{label} needs the spaCy model {name} (directory or .tar.gz): put it in {_models_line()}")
    for arg, model in _hf_models(op_name, args):
        if not hf_model_found(model):
            missing.append(
                f"{label} needs Hugging Face model {model} ({arg}) in the local cache {hf_hub_cache()} "
                f"(runs offline, HF_HUB_OFFLINE): fetch it where there is network "
                f"(`huggingface-cli download {model}`) or give a local path"
            )
    return missing


def missing_requirements(
    dj_configs: Mapping[str, Any] | None, extra_configs: Mapping[str, Any] | None = None
) -> list[str]:
    """One human line per op in dj_configs.process that needs a model or word list not present locally,
    and per setting of executor_type ray that cannot run here (sandflow.hooks.dj_ray)."""
    if not isinstance(dj_configs, Mapping):
        return []
    missing = ray_config_problems(dj_configs)
    if executor_type(dj_configs) == RAY_EXECUTOR and importlib.util.find_spec("ray") is None:
        missing.append(
            f"dj_configs.executor_type ray needs the ray package: pip install ray=={PINNED_PACKAGES['ray']} (requirements.txt)"
        )
    process = dj_configs.get("process")
    if not isinstance(process, list):
        return missing
    for index, entry in enumerate(process):
        if not isinstance(entry, Mapping) or len(entry) != 1:
            continue
        ((op_name, args),) = entry.items()
        if op_name in OFFLINE_OPS and not (isinstance(args, Mapping) and args.get("tokenization")):
            continue
        missing += op_requirements(op_name, args if isinstance(args, Mapping) else None, f"process[{index}]")
    return missing
