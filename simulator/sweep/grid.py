"""Sweep grids: `dotted.key=v1,v2,...` axes, integer and stepped ranges, and their cartesian product.

    axis = parse_axis("speculative.num_tokens=0:7")      # 0, 1, ..., 7 (both ends included)
    axis = parse_axis("speculative.acceptance_length=1.5:3:0.5")   # 1.5, 2.0, 2.5, 3.0
    axis = parse_axis("speculative.method=none,eagle3")
    points = list(grid_points([axis, ...]))              # tuples of values, first axis slowest

Values are YAML scalars exactly as `--set` reads them (`true`, `1e-3`, `null`, `[0, 1, 2]`); commas inside
brackets or quotes do not split. A range `a:b` has integer ends and includes both; `a:b:step` takes any
numbers (a float range includes `b` when it lands on it within 1e-9 of the step). Keys are checked against
the scenario schema: an unknown key names the nearest valid one.
"""
from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

from simulator.errors import RlsimError

MAX_POINTS = 10_000_000
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUM})\s*:\s*({_NUM})\s*(?::\s*({_NUM})\s*)?$")


@dataclass(frozen=True)
class GridAxis:
    """One swept key: its values (parsed) and the text of each as `--set` takes it."""

    key: str
    values: tuple
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.values)


def _parse_scalar(text: str) -> Any:
    from simulator.scenario import _parse_scalar as parse  # the very parser of --set
    return parse(text)


def split_values(text: str) -> list[str]:
    """Split `a,b,[c, d],'e,f'` on the commas outside brackets and quotes."""
    items, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur))
    return [s.strip() for s in items]


def _number(text: str) -> int | float:
    v = float(text)
    return int(text) if re.fullmatch(r"[-+]?\d+", text.strip()) else v


def expand_range(text: str, field: str) -> list[tuple[Any, str]] | None:
    """`a:b` or `a:b:step` as (value, text) pairs; None when `text` is not a range."""
    m = _RANGE.match(text)
    if not m:
        return None
    a, b = _number(m.group(1)), _number(m.group(2))
    step = _number(m.group(3)) if m.group(3) is not None else None
    if step is None:
        if not (isinstance(a, int) and isinstance(b, int)):
            raise RlsimError(f"range {text!r}: a:b needs integer ends (give a step for others: a:b:step)", field)
        step = 1 if b >= a else -1
    if step == 0:
        raise RlsimError(f"range {text!r}: the step must not be 0", field)
    if (b - a) * step < 0:
        raise RlsimError(f"range {text!r} is empty (the step goes away from the end)", field)
    if all(isinstance(x, int) for x in (a, b, step)):
        vals = list(range(a, b + (1 if step > 0 else -1), step))
        return [(v, str(v)) for v in vals]
    n = int(math.floor((b - a) / step + 1e-9)) + 1
    if n > MAX_POINTS:
        raise RlsimError(f"range {text!r} has more than {MAX_POINTS} values", field)
    vals = [round(a + i * step, 12) for i in range(n)]
    return [(v, repr(float(v))) for v in vals]


def canonical(value: Any) -> str:
    """A string that is equal for equal grid values however they were stored (3 and 3.0, True and 'true',
    NaN and None, a list and its JSON text): what `--resume` matches points on."""
    import numpy as np
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, str):
        parsed = _parse_scalar(value)
        return value if isinstance(parsed, str) else canonical(parsed)
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError:
        return str(value)


def check_key(key: str, field: str) -> None:
    """A grid key must be a value of the scenario schema (not a section); unknown keys name the nearest."""
    from simulator.scenario import Scenario, apply_overrides, valid_keys
    leaves = valid_keys(Scenario)
    free = [k.removesuffix(".*") for k in leaves if k.endswith(".*")]
    if key in leaves or any(key.startswith(p + ".") for p in free):
        return
    try:
        apply_overrides({}, [f"{key}=0"])
    except RlsimError as e:
        raise RlsimError(e.message, field) from None
    raise RlsimError("is a section, not a value: sweep one of its keys, e.g. "
                     + next((k for k in leaves if k.startswith(key + ".")), key + ".<key>"), field)


def parse_axis(spec: str) -> GridAxis:
    """One `--grid dotted.key=v1,v2,...` (values may be ranges) as a GridAxis."""
    if "=" not in spec:
        raise RlsimError(f"expected dotted.key=v1,v2,... (got {spec!r})", "--grid")
    key, _, text = spec.partition("=")
    key = key.strip()
    if not key:
        raise RlsimError(f"expected dotted.key=v1,v2,... (got {spec!r})", "--grid")
    field = f"--grid {key}"
    check_key(key, field)
    if not text.strip():
        raise RlsimError("empty grid: give at least one value (v1,v2,... or a range a:b)", field)
    values, texts = [], []
    for item in split_values(text):
        if not item:
            raise RlsimError(f"empty value in {text!r}", field)
        rng = expand_range(item, field)
        pairs = rng if rng is not None else [(_parse_scalar(item), item)]
        for v, t in pairs:
            values.append(v)
            texts.append(t)
    seen: dict[str, str] = {}
    for v, t in zip(values, texts):
        c = canonical(v)
        if c in seen:
            raise RlsimError(f"value {t} appears twice (as {seen[c]} and {t})", field)
        seen[c] = t
    return GridAxis(key, tuple(values), tuple(texts))


def parse_grids(specs: list[str] | dict[str, Any]) -> list[GridAxis]:
    """Every axis of a sweep, from `--grid` strings or a mapping key -> list of values (or a range string)."""
    if isinstance(specs, dict):
        items = []
        for k, v in specs.items():
            if isinstance(v, str):
                items.append(f"{k}={v}")
            else:
                vals = list(v) if isinstance(v, (list, tuple, range)) else [v]
                items.append(f"{k}=" + ",".join(_to_text(x) for x in vals))
        specs = items
    if not specs:
        raise RlsimError("no grid: give at least one --grid dotted.key=v1,v2,...", "--grid")
    axes = [parse_axis(s) for s in specs]
    keys = [a.key for a in axes]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup:
        raise RlsimError("given twice (put every value in one --grid)", f"--grid {dup}")
    n = math.prod(len(a) for a in axes)
    if n > MAX_POINTS:
        raise RlsimError(f"{n:,} points is more than the {MAX_POINTS:,} a sweep takes", "--grid")
    return axes


def _to_text(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def grid_size(axes: list[GridAxis]) -> int:
    return math.prod(len(a) for a in axes)


def grid_points(axes: list[GridAxis]) -> Iterator[tuple[int, tuple, tuple[str, ...]]]:
    """(point index, values, `key=text` overrides) for every point; the first axis varies slowest."""
    idx = [range(len(a)) for a in axes]
    for i, combo in enumerate(itertools.product(*idx)):
        yield (i, tuple(a.values[j] for a, j in zip(axes, combo)),
               tuple(f"{a.key}={a.texts[j]}" for a, j in zip(axes, combo)))
