"""The packages are layers: a module imports only from its own layer or the ones below it (docs/design.md)."""

import ast

from helpers.paths import REPO

PACKAGE = REPO / "src" / "sandflow"
# Lowest first. Top-level modules (cli, lineage, dvc_stage, hpo_search) and devtools may import anything.
LAYERS = ["core", "config", "report", "hooks", "plan", "run"]


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 and parts[0] == "sandflow" and parts[1] in LAYERS else None


def test_no_module_imports_a_higher_layer():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "sandflow." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        own = layer_of(module + ".x")
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for target in targets:
                theirs = layer_of(target + ".x")
                if theirs is not None and theirs > own:
                    violations.append(
                        f"{path.relative_to(PACKAGE)}:{node.lineno} ({LAYERS[own]}) imports {target} ({LAYERS[theirs]})"
                    )
    assert not violations, "\n".join(violations)


def test_the_check_sees_a_violation(tmp_path):
    # A hooks module importing the runner must be caught: the rule above is not vacuous.
    assert layer_of("sandflow.hooks.data_juicer") == LAYERS.index("hooks")
    assert layer_of("sandflow.run.runner") > layer_of("sandflow.hooks.data_juicer")
    assert layer_of("sandflow.cli") is None
