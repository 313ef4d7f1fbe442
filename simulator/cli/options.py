"""Command-line options shared by several rlsim commands."""
from __future__ import annotations


def add_set_option(p, help_text: str) -> None:
    """`--set KEY=VALUE [KEY=VALUE ...]`, repeatable, collected in `args.sets` (applied by
    simulator.scenario.apply_overrides)."""
    p.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help=help_text)


def seed_arg(text: str) -> int:
    """argparse type of `--seed`: a non-negative integer (numpy's seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(text) from None
    if value < 0:
        raise ValueError(text)
    return value


seed_arg.__name__ = "non-negative integer"  # argparse names the type in its error: "invalid ... value"
