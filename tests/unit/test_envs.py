"""The envs/ files for ``--sdm conda``: well-formed conda specs whose pins agree with the project's requirements.

No conda channel is reachable here, so the environments are checked as specs. Which pins must match:

* sandflow's own envs (data-juicer, training, sandflow, vllm) run sandflow's code on the libraries the venv
  has: every package they share with requirements.txt is pinned to the same version (for vllm:
  requirements-gpu.txt first, the set tests/gpu/run.sh installs around vllm 0.32.0).
* a third-party tool's env (easyanimate, inception, internvl, trinity, vbench) pins the tool's own stack
  (InternVL's torch 2.1.2 and transformers 4.37.2, say); only what sandflow's own code imports there to run
  the job (SANDFLOW_RUNTIME) must match requirements.txt.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers.paths import REPO

ENVS = REPO / "envs"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[A-Za-z0-9_,.-]+\])?==([A-Za-z0-9_.+-]+)$")
CONDA_SPEC = re.compile(r"^[A-Za-z0-9_.-]+(=[A-Za-z0-9_.*]+)?$")
SANDFLOWS_OWN = {"data-juicer", "training", "sandflow", "vllm"}
THIRD_PARTY = {"easyanimate", "inception", "internvl", "trinity", "vbench"}
# What sandflow imports in every job besides the standard library (scripts/run_job.py and the config code).
SANDFLOW_RUNTIME = {"jsonschema", "pyyaml"}
# Pins an env takes from requirements-gpu.txt before requirements.txt.
GPU_ENVS = {"vllm"}


def env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


def requirement_pins(*files: str) -> dict[str, str]:
    """Package (lower case) -> version over these requirements files, an earlier file winning."""
    pins: dict[str, str] = {}
    for name in reversed(files):
        for line in (REPO / name).read_text().splitlines():
            match = PIN.match(line.split("#")[0].strip())
            if match:
                pins[match.group(1).lower()] = match.group(3)
    return pins


def env_pins(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    (pip_section,) = [d for d in env["dependencies"] if isinstance(d, dict)]
    return {PIN.match(p).group(1).lower(): PIN.match(p).group(3) for p in pip_section["pip"]}


def differing_pins(path: Path) -> dict[str, tuple[str, str]]:
    """The pins of the env that the rule above says must match and do not: name -> (env's, requirements')."""
    stem = path.stem
    required = requirement_pins(*(["requirements-gpu.txt"] if stem in GPU_ENVS else []), "requirements.txt")
    compared = (
        env_pins(path) if stem in SANDFLOWS_OWN else {n: v for n, v in env_pins(path).items() if n in SANDFLOW_RUNTIME}
    )
    return {
        name: (version, required[name]) for name, version in compared.items() if required.get(name, version) != version
    }


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.stem)
def test_env_file_is_a_conda_environment_spec(path: Path):
    env = yaml.safe_load(path.read_text())
    assert set(env) == {"name", "channels", "dependencies"}, path.name
    assert env["name"] == path.stem
    assert env["channels"] and all(isinstance(c, str) for c in env["channels"])
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_sections = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert all(CONDA_SPEC.match(d) for d in conda), conda
    # The workflow's Python: the script: directive unpickles Snakemake's job object with it.
    assert "python=3.11" in conda and "pip" in conda
    assert len(pip_sections) == 1 and list(pip_sections[0]) == ["pip"]
    pip = pip_sections[0]["pip"]
    assert pip and all(isinstance(p, str) and PIN.match(p) for p in pip), [p for p in pip if not PIN.match(str(p))]
    names = [PIN.match(p).group(1).lower() for p in pip]
    assert len(names) == len(set(names)), f"{path.name} pins a package twice"
    assert SANDFLOW_RUNTIME <= set(names), f"{path.name} leaves sandflow's own imports unpinned"


def test_every_env_is_sandflows_own_or_a_third_party_tools():
    assert {path.stem for path in env_files()} == SANDFLOWS_OWN | THIRD_PARTY
    assert not SANDFLOWS_OWN & THIRD_PARTY


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.stem)
def test_env_pins_match_the_requirements_where_sandflows_code_runs_on_them(path: Path):
    assert differing_pins(path) == {}, f"{path.name} differs from the requirements"


def test_the_vllm_env_is_requirements_gpu_txts_set_and_internvl_keeps_its_own_torch():
    vllm = env_pins(ENVS / "vllm.yaml")
    gpu = requirement_pins("requirements-gpu.txt")
    assert {name: vllm[name] for name in ("vllm", "torch", "transformers")} == {
        name: gpu[name] for name in ("vllm", "torch", "transformers")
    }
    # InternVL's own stack is exempt (its torch is not ours), what sandflow imports there is not
    internvl = env_pins(ENVS / "internvl.yaml")
    assert internvl["torch"] != requirement_pins("requirements.txt")["torch"]
    assert differing_pins(ENVS / "internvl.yaml") == {}


def test_the_data_juicer_env_has_what_the_quality_classifier_of_its_family_needs():
    # dj_text_quality_classifier runs in this env under --sdm conda: pyspark, fire and a Java for pyspark.
    pins = env_pins(ENVS / "data-juicer.yaml")
    assert {name: pins.get(name) for name in ("pyspark", "fire")} == {
        name: requirement_pins("requirements.txt")[name] for name in ("pyspark", "fire")
    }
    conda = yaml.safe_load((ENVS / "data-juicer.yaml").read_text())["dependencies"]
    assert "openjdk=17" in conda
