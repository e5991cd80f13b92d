"""``python -m core.cli``: the ``morpho`` command."""
import sys

from core.cli import main

if __name__ == "__main__":
    sys.exit(main())
