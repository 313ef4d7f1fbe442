"""Command-line options shared by several rlsim commands."""
from __future__ import annotations


def add_set_option(p, help_text: str) -> None:
    """`--set KEY=VALUE [KEY=VALUE ...]`, repeatable, collected in `args.sets` (applied by
    simulator.scenario.apply_overrides)."""
    p.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help=help_text)
