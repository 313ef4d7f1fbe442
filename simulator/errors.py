"""User-facing errors: one line that names the offending field, never a traceback."""
from __future__ import annotations

import math


class RlsimError(Exception):
    """Bad input or an impossible configuration.

    `field` names what was wrong (a config key, a CLI option, a file and line); the CLI prints
    `rlsim: error: <field>: <message>` and exits non-zero.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        msg = " ".join(self.message.split())  # always one line
        return f"{self.field}: {msg}" if self.field else msg


def check_at_least(value: float, least: float, field: str) -> None:
    """A finite `value` >= `least`, else an RlsimError naming `field` (a config key or a CLI option)."""
    if not (math.isfinite(value) and value >= least):
        raise RlsimError(f"must be >= {least:g} (got {value:g})", field)


# a model-level validator's message that starts with this names one of the model's fields: "@name: text"
FIELD_MARK = "@"


def from_validation_error(err, source: str | None = None) -> RlsimError:
    """Turn a pydantic ValidationError into an RlsimError naming the first bad field."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
    msg = first.get("msg", "invalid value").removeprefix("Value error, ")  # pydantic's prefix to a validator's text
    if msg.startswith(FIELD_MARK) and ": " in msg:
        name, msg = msg[len(FIELD_MARK):].split(": ", 1)
        loc = f"{loc}.{name}" if loc else name
        first = {k: v for k, v in first.items() if k != "input"}
    if first.get("type") == "extra_forbidden":
        msg = "unknown key"
    if "input" in first and first.get("type") not in ("missing", "extra_forbidden"):
        inp = first["input"]
        if isinstance(inp, (int, float, str, bool)) or inp is None:
            msg = f"{msg} (got {inp!r})"
    where = f"{source}: {loc}" if source and loc else (source or loc or None)
    return RlsimError(msg, where)


def impossible_fit(err) -> RlsimError:
    """A fit whose constants fail their own model's checks (a pydantic ValidationError): the measurements are not
    what they claim (a timing of 1e308 s gives a rate of 0), so one line naming the constant and the files."""
    e = from_validation_error(err)
    return RlsimError(f"the measurements fit an impossible value, {e.field}: {e.message}; check their timings",
                      "FILE")
