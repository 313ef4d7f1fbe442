"""Command-line options shared by several rlsim commands."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from simulator.errors import RlsimError

# what the cost model calls the settings it checks -> the options of `rlsim step` and `rlsim spec`
COST_MODEL_OPTIONS = {"tp": "--tp", "ep": "--ep", "pp": "--pp", "dtype": "--dtype", "kv_dtype": "--kv-dtype",
                      "attention_backend": "--attention-backend", "moe_kernel": "--moe-kernel"}


@contextlib.contextmanager
def option_names(mapping: dict[str, str]) -> Iterator[None]:
    """Errors raised inside name the command's option (`mapping`: field -> option) instead of the field."""
    try:
        yield
    except RlsimError as e:
        e.field = mapping.get(e.field, e.field)
        raise


def add_set_option(p, help_text: str) -> None:
    """`--set KEY=VALUE [KEY=VALUE ...]`, repeatable, collected in `args.sets` (applied by
    simulator.scenario.apply_overrides)."""
    p.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help=help_text)


def seed_arg(text: str) -> int:
    """argparse type of `--seed`: a non-negative integer (numpy's seeds)."""
    value = int(text)  # argparse turns a ValueError into its "invalid ... value" line
    if value < 0:
        raise ValueError(text)
    return value


seed_arg.__name__ = "non-negative integer"  # argparse names the type in its error: "invalid ... value"
