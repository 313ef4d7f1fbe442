"""`python -m simulator` is the `rlsim` command."""
from simulator.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
