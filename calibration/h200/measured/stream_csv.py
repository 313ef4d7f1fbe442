"""Write a measuring script's rows to a CSV under $OUT as they come: each row written, flushed and printed, so that a
run cut short by the device tool's time limit still leaves every finished row (used by measure_host_copy.py and
measure_refit_copy.py, which import it from their own folder)."""
from __future__ import annotations

import csv
import os
from collections.abc import Iterable


def write_rows(name: str, fields: list[str], rows: Iterable[dict]) -> None:
    """Write `rows` (dicts with the keys `fields`) to $OUT/`name` (or ./`name`)."""
    out = os.path.join(os.environ.get("OUT", "."), name)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)
            f.flush()
            print(r, flush=True)
