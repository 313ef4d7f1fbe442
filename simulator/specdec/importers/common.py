"""What every acceptance importer returns, and the file helpers they share."""
from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from simulator.errors import RlsimError


@dataclass(frozen=True)
class Measurement:
    """Acceptance measured by one importer over one or more files.

    unconditional_rates: vLLM-style per-position rates u_1..u_k (drafts with at least i accepted /
    drafts), or None where the files only give a mean acceptance length (then `k` and
    `mean_acceptance_length` are set and the profile is i.i.d.). num_drafts: verify steps behind the
    rates. measured_tau: (k, tau) pairs measured directly (reported mean lengths or exact replays).
    """

    format: str
    files: tuple[str, ...]
    k: int
    unconditional_rates: tuple[float, ...] | None = None
    mean_acceptance_length: float | None = None
    num_drafts: float | None = None
    num_drafts_per_position: tuple[float, ...] | None = None
    measured_tau: tuple[tuple[int, float], ...] | None = None
    method: str | None = None
    detail: str = ""
    sha256: tuple[str, ...] = field(default=())


def check_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise RlsimError("no such file", str(path))
    if not p.is_file():
        raise RlsimError("not a file", str(path))
    return p


def read_bytes(path: str) -> bytes:
    """File content (gunzipped if the name ends in .gz); errors name the file."""
    p = check_file(path)
    try:
        data = p.read_bytes()
        if p.name.endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise RlsimError(f"cannot read ({' '.join(str(e).split())})", str(path)) from None
    return data


def read_text(path: str) -> str:
    try:
        return read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise RlsimError("not a UTF-8 text file (wrong format?)", str(path)) from None


def sha256_of(path: str) -> str:
    return hashlib.sha256(check_file(path).read_bytes()).hexdigest()


def load_json(path: str, fmt: str):
    """Parse a whole file as JSON; a parse error names file:line."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RlsimError(f"not JSON ({e.msg}); is this a {fmt} file?", f"{path}:{e.lineno}") from None


def number(value, where: str, what: str, *, nonneg: bool = True) -> float:
    """A finite float (>= 0 when `nonneg`), or an RlsimError naming `where`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RlsimError(f"{what} is not a number (got {value!r})", where)
    try:
        x = float(value)
    except ValueError:
        raise RlsimError(f"{what} is not a number (got {value!r})", where) from None
    if x != x or x in (float("inf"), float("-inf")):
        raise RlsimError(f"{what} is not finite (got {value!r})", where)
    if nonneg and x < 0:
        raise RlsimError(f"{what} is negative (got {value!r})", where)
    return x


def check_rate(x: float, where: str, what: str) -> float:
    if not 0.0 <= x <= 1.0:
        raise RlsimError(f"{what} {x:g} is outside [0, 1]", where)
    return x


def k_from_draft_tokens(draft_tokens: float, drafts: float, where: str) -> int:
    """k = draft tokens / drafts (chain drafts propose k tokens per verify step)."""
    if drafts <= 0:
        raise RlsimError("no drafts counted (was speculative decoding on?)", where)
    k = draft_tokens / drafts
    if abs(k - round(k)) > 1e-6 or round(k) < 1:
        raise RlsimError(f"draft tokens / drafts = {k:.4g} is not a whole k >= 1; give --k", where)
    return int(round(k))


def resolve_k(found: int | None, given: int | None, where: str) -> int:
    """The k the file measured, checked against --k; --k only fills in when the file does not say."""
    if found is not None and given is not None and found != given:
        raise RlsimError(f"the file measured k={found} but --k {given} was given", where)
    k = found if found is not None else given
    if k is None:
        raise RlsimError("the file gives no per-position rates and no draft-token count; give --k", where)
    return k
