"""Entry point of `rlsim`: dispatches to the subcommands; bad input ends in one line and exit 2."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from simulator.errors import RlsimError

# subcommand name -> module under simulator.cli (imported lazily so that `rlsim --help` stays fast)
COMMANDS = {
    "step": "step_cmd",
    "fit": "fit_cmd",
    "accept": "accept_cmd",
    "spec": "spec_cmd",
    "rollout": "rollout_cmd",
    "run": "run_cmd",
    "validate": "validate_cmd",
    "sweep": "sweep_cmd",
    "optimize": "optimize_cmd",
    "plot": "plot_cmd",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line naming the option."""

    def error(self, message):  # noqa: D102
        # the top-level parser reports what no subcommand took (a stray argument): its message names it
        raise RlsimError(message, self.prog if self.prog != "rlsim" else None)


def build_parser(available: dict[str, object]) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rlsim", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=OneLineParser, metavar="COMMAND")
    for name, module in available.items():
        module.register(sub)
    return parser


def load_commands(names: list[str] | None = None) -> dict[str, object]:
    """The subcommand modules (`names`, default all) that exist."""
    mods = {}
    for name, modname in COMMANDS.items():
        if names is not None and name not in names:
            continue
        try:
            mods[name] = importlib.import_module(f"simulator.cli.{modname}")
        except ModuleNotFoundError as e:
            if e.name == f"simulator.cli.{modname}":
                continue  # command not built yet
            raise
    return mods


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        # a known subcommand first: build only its parser (start-up of `rlsim run` without the other commands'
        # imports); anything else (--help, a typo) gets every command, so the usage lists them all
        named = argv[:1] if argv and argv[0] in COMMANDS else None
        parser = build_parser(load_commands(named))
        args = parser.parse_args(argv)
        if args.version:
            from simulator import __version__
            print(__version__)
            return 0
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except RlsimError as e:
        print(f"rlsim: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001
        if os.environ.get("RLSIM_DEBUG"):
            raise
        print(f"rlsim: internal error: {type(e).__name__}: {' '.join(str(e).split())} "
              "(set RLSIM_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
