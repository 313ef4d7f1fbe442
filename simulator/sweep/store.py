"""Results files of a sweep, written as points finish and readable at every moment.

- CSV: the header, then one line per point, appended and flushed as it comes (survives even `kill -9`: at
  worst the last line is cut, and `--resume` drops a cut line).
- Parquet: the rows are kept in memory and the whole file is rewritten atomically (temp file + rename) every
  few seconds and on close, so the path always holds a complete, readable Parquet file with every point
  finished up to the last write; the interval grows with the file so that rewriting costs under ~5% of the
  sweep. (A single ParquetWriter stream would leave a file without its footer, unreadable, after a hard kill.)

`open_store(path, schema, resume)` reads what is already there when resuming; `store.done` maps a point's
identity (its swept values, seed and steps) to whether it succeeded.
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from simulator.errors import RlsimError
from simulator.sweep.schema import META, OUTPUT_NAMES, SweepSchema
from simulator.yamlio import write_bytes_atomic

FORMATS = (".csv", ".parquet")


def check_out_path(path: str | os.PathLike, field: str = "--out") -> Path:
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise RlsimError(f"unknown results format {p.name!r} (use .csv or .parquet)", field)
    if p.is_dir():
        raise RlsimError("is a directory", field)
    return p


def read_results(path: str | os.PathLike, field: str | None = None) -> pd.DataFrame:
    """A results table (CSV or Parquet); an unreadable file is one RlsimError naming it."""
    p = Path(path)
    field = field or str(path)
    if not p.is_file():
        raise RlsimError("no such file", field)
    try:
        if p.suffix.lower() == ".parquet":
            return pq.read_table(p).to_pandas()
        if p.suffix.lower() == ".csv":
            return _read_csv(p)
    except RlsimError:
        raise
    except Exception as e:  # noqa: BLE001 (any reader failure is a bad file)
        raise RlsimError(f"unreadable results file ({type(e).__name__}: {' '.join(str(e).split())[:200]})",
                         field) from None
    raise RlsimError(f"unknown results format {p.name!r} (use .csv or .parquet)", field)


def _read_csv(p: Path) -> pd.DataFrame:
    text = p.read_bytes().decode("utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a line cut by a hard kill
    if not text.strip():
        raise RlsimError("empty results file (no header)", str(p))
    return pd.read_csv(io.StringIO(text), keep_default_na=True)


class _Store:
    """Common part: the schema, the rows already there, what they cover."""

    def __init__(self, path: Path, schema: SweepSchema, old: pd.DataFrame | None):
        self.path = path
        self.schema = schema
        self.done: dict[tuple, bool] = {}
        self.rows_written = 0
        self.old_rows: list[dict] = []
        if old is not None and len(old):
            where = f"--resume: {path}"
            missing = [c for c in schema.identity if c not in old.columns]
            if missing:
                raise RlsimError(f"has no column {missing[0]!r}: it was written by a sweep over other keys "
                                 f"(this one sweeps {', '.join(schema.keys)})", where)
            extra = [c for c in old.columns if c not in schema.columns and c not in META + OUTPUT_NAMES]
            if extra:
                raise RlsimError(f"was written by a sweep over {extra[0]} too (not in this grid): use another "
                                 "--out", where)
            recs = old.astype(object).where(old.notna(), None).to_dict("records")
            latest: dict[tuple, dict] = {}
            for r in recs:  # a point written twice (a retried failure): the last row wins
                latest[schema.ident(r)] = r
            for ident, r in latest.items():
                row = schema.row(_clean(r, schema))
                self.old_rows.append(row)
                self.done[ident] = row.get("error") in (None, "")

    def drop_failed(self) -> None:
        """--retry-failed: forget the failed rows (their points run again)."""
        self.old_rows = [r for r in self.old_rows if r.get("error") in (None, "")]
        self.done = {k: v for k, v in self.done.items() if v}


def _clean(r: dict, schema: SweepSchema) -> dict:
    out = {}
    names = set(schema.columns)
    for k, v in r.items():
        if k not in names:
            continue
        t = schema.arrow.field(k).type
        if v is not None and t == pa.int64():
            v = int(v)
        elif v is not None and t == pa.bool_() and isinstance(v, str):
            v = v.strip().lower() == "true"
        elif v is not None and t == pa.string() and not isinstance(v, str):
            v = schema.cell(k, v)
        out[k] = v
    return out


class CsvStore(_Store):
    """Append one line per point; flushed at once."""

    def __init__(self, path: Path, schema: SweepSchema, old: pd.DataFrame | None):
        super().__init__(path, schema, old)
        self._f = None

    def open(self) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.schema.columns)
        for r in self.old_rows:
            w.writerow([_csv_cell(r[c]) for c in self.schema.columns])
        write_bytes_atomic(self.path, buf.getvalue().encode())
        self.rows_written = len(self.old_rows)
        self._f = open(self.path, "a", encoding="utf-8", newline="")

    def add(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in rows:
            w.writerow([_csv_cell(r.get(c)) for c in self.schema.columns])
        self._f.write(buf.getvalue())
        self._f.flush()
        self.rows_written += len(rows)

    def close(self) -> None:
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return v


class ParquetStore(_Store):
    """All rows in memory; the file rewritten atomically at most every `interval_s` (and on close)."""

    def __init__(self, path: Path, schema: SweepSchema, old: pd.DataFrame | None, interval_s: float = 2.0):
        super().__init__(path, schema, old)
        self.interval_s = interval_s
        self._rows: list[dict] = []
        self._last = 0.0
        self._cost = 0.0
        self._dirty = False

    def open(self) -> None:
        self._rows = list(self.old_rows)
        self._write()

    def add(self, rows: list[dict]) -> None:
        self._rows.extend(rows)
        self._dirty = True
        # rewrite when the interval has passed; never spend more than ~5% of the time rewriting
        if time.monotonic() - self._last >= max(self.interval_s, 20 * self._cost):
            self._write()

    def _write(self) -> None:
        t0 = time.monotonic()
        table = pa.Table.from_pylist(self._rows, schema=self.schema.arrow)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        write_bytes_atomic(self.path, buf.getvalue())
        self.rows_written = len(self._rows)
        self._last = time.monotonic()
        self._cost = self._last - t0
        self._dirty = False

    def close(self) -> None:
        if self._dirty or not self.path.exists():
            self._write()


class MemoryStore(_Store):
    """No file (run_sweep without `out`): rows only in memory."""

    def __init__(self, schema: SweepSchema):
        super().__init__(Path(os.devnull), schema, None)
        self._rows: list[dict] = []

    def open(self) -> None:
        pass

    def add(self, rows: list[dict]) -> None:
        self._rows.extend(rows)
        self.rows_written += len(rows)

    def close(self) -> None:
        pass


def open_store(path: str | os.PathLike | None, schema: SweepSchema, resume: bool = False,
               retry_failed: bool = False) -> _Store:
    """The store for `path` (None: in memory). Without resume an existing file is replaced."""
    if path is None:
        return MemoryStore(schema)
    p = check_out_path(path)
    old = read_results(p, f"--resume: {p}") if resume and p.exists() else None
    store = (CsvStore if p.suffix.lower() == ".csv" else ParquetStore)(p, schema, old)
    if retry_failed:
        store.drop_failed()
    return store
