#!/usr/bin/env bash
# Snakemake runs this inside the new internvl env (--sdm conda). flash-attn's build imports
# torch, so it cannot go in the env file's pip list (pip builds it in isolation, without torch).
set -euo pipefail
pip install --no-build-isolation flash-attn==2.3.6
