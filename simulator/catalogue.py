"""Named YAML files in one folder (hardware profiles, models): look up by name, file stem or alias
(case-insensitive), or by a YAML path. Parsed files are cached by path; the index by folder."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Generic, TypeVar

from simulator.errors import RlsimError
from simulator.yamlio import YamlModel, read_yaml

T = TypeVar("T", bound=YamlModel)


@lru_cache(maxsize=None)
def _index(folder: str) -> dict[str, Path]:
    d = Path(folder)
    idx: dict[str, Path] = {}
    for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
        data = read_yaml(f)
        for n in [data.get("name", f.stem), f.stem, *data.get("aliases", [])]:
            idx[str(n).lower()] = f
    return idx


@lru_cache(maxsize=None)
def _load(cls: type, path: str):
    return cls.load(path)


class Catalogue(Generic[T]):
    """The `kind` files (e.g. "model") of the folder `folder()` returns, parsed as `cls`."""

    def __init__(self, kind: str, folder: Callable[[], Path], cls: type[T]):
        self.kind, self.folder, self.cls = kind, folder, cls

    def names(self) -> list[str]:
        files = set(_index(str(self.folder())).values())
        return sorted({read_yaml(p).get("name", p.stem) for p in files}, key=str.lower)

    def load(self, name_or_path: str | T, field: str) -> T:
        """An entry by name/alias or YAML path; RlsimError naming `field` and the known names when unknown."""
        if isinstance(name_or_path, self.cls):
            return name_or_path
        s = str(name_or_path)
        if s.endswith((".yaml", ".yml")) and Path(s).is_file():
            return _load(self.cls, str(Path(s).resolve()))
        f = _index(str(self.folder())).get(s.lower())
        if f is None:
            raise RlsimError(f"unknown {self.kind} {s!r}; known: {', '.join(self.names())}", field)
        return _load(self.cls, str(f))
