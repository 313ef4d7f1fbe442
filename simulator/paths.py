"""Where the data files live: hardware profiles, model catalogue, scenarios, calibration data.

The data folders sit at the project root next to the package (the README installs it editable).
`RLSIM_HOME` overrides the root.
"""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    env = os.environ.get("RLSIM_HOME")
    return Path(env) if env else Path(__file__).resolve().parent.parent


def hardware_dir() -> Path:
    return project_root() / "hardware_profiles"


def models_dir() -> Path:
    return project_root() / "workloads" / "models"


def scenarios_dir() -> Path:
    return project_root() / "workloads" / "scenarios"


def calibration_dir() -> Path:
    return project_root() / "calibration"


def shared_dir() -> Path:
    """The read-only ../shared folder beside the checkout (present in development and CI)."""
    return project_root().parent / "shared"
