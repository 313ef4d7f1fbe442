"""Typed configs that load from and save to YAML (pydantic v2 models)."""
from __future__ import annotations

import functools
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from simulator.errors import FIELD_MARK, RlsimError, from_validation_error

T = TypeVar("T", bound="YamlModel")

# libyaml's C parser when PyYAML was built with it (about 10x faster on the large calibrated profiles)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class YamlModel(BaseModel):
    """Base for every config: unknown keys are errors; `load`/`save` round-trip through YAML."""

    # no NaN or infinity in any number: a profile or scenario value is a measurement, a count or a limit
    model_config = ConfigDict(extra="forbid", validate_assignment=False, protected_namespaces=(), allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, data: Any) -> Any:
        """YAML's true/false where a number belongs is an error (pydantic would read it as 1/0)."""
        if isinstance(data, dict):
            for name in _numeric_fields(cls):
                if isinstance(data.get(name), bool):
                    msg = f"{FIELD_MARK}{name}: expected a number, got a boolean ({data[name]})"
                    raise ValueError(msg)  # noqa: TRY004 (pydantic reports a validator's ValueError, not a TypeError)
        return data

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any], source: str | None = None) -> T:
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise from_validation_error(e, source) from None

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        return cls.from_dict(read_yaml(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=110)

    def save(self, path: str | os.PathLike, header: str | None = None) -> None:
        text = self.to_yaml()
        if header:
            text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
        write_text_atomic(path, text)


@functools.cache
def _numeric_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a model that take a number and no boolean."""
    return tuple(name for name, f in cls.model_fields.items() if _numeric(f.annotation))


def _numeric(annotation: Any) -> bool:
    """Whether a field's type takes a number (int or float, alone or in a union) and no boolean."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return bool not in args and any(_numeric(a) for a in args)
    return annotation in (int, float)


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is an RlsimError naming it."""
    p = Path(path)
    if not p.is_file():
        raise RlsimError("no such file", str(path))
    try:
        data = yaml.load(p.read_text(), Loader=_Loader)  # noqa: S506 (safe loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise RlsimError(f"malformed YAML ({getattr(e, 'problem', e)})", where) from None
    except UnicodeDecodeError:
        raise RlsimError("not a text file", str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RlsimError("expected a YAML mapping at the top level", str(path))
    return data


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a file so that a reader never sees it half-written (temp file + rename)."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes atomically (missing folders are made); a path that cannot be written is an RlsimError naming it."""
    p = Path(path)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise RlsimError(f"cannot write here ({e.strerror or e})", str(path)) from None
        raise
