"""The one-machine SLURM cluster scripts/setup_single_node_slurm.sh sets up."""

from __future__ import annotations

import shutil
import subprocess

from helpers.paths import REPO

SLURM_SETUP = REPO / "scripts" / "setup_single_node_slurm.sh"


def set_up_slurm() -> subprocess.CompletedProcess:
    """Run the setup script (root): installs SLURM when missing, starts what is down, waits for an idle node."""
    return subprocess.run(["bash", str(SLURM_SETUP)], capture_output=True, text=True, timeout=1200)


def slurm_controller_down() -> bool:
    """SLURM's commands are installed but its controller does not answer (`scontrol ping` answers at once)."""
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        return False
    return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=30).returncode != 0
