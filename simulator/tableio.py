"""Read a small CSV table that must hold given columns: one RlsimError line naming `field` on bad input."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from simulator.errors import RlsimError


def read_csv_table(path: str | Path, columns: tuple[str, ...], what: str, field: str) -> pd.DataFrame:
    """The CSV at `path` (`#` lines are comments). Missing, unreadable or lacking one of `columns`: RlsimError
    "cannot read <what> <path>: ..." or "<what> <path> lacks column(s) ... (needs ...)" naming `field`."""
    try:
        df = pd.read_csv(path, comment="#")
    except (OSError, ValueError) as e:  # pandas' parser and empty-data errors are ValueErrors
        raise RlsimError(f"cannot read {what} {path}: {str(e).splitlines()[0]}", field) from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RlsimError(f"{what} {path} lacks column(s) {', '.join(missing)} (needs {', '.join(columns)})", field)
    return df
