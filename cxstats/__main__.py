"""``python -m cxstats``: the command line lives in cxstats/cli.py."""

import sys

from .cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
