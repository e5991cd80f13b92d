"""Entry point of ``panel serve explorer [--args --data PATH]``: parse --data, serve the Explorer."""
import argparse
import sys

import panel as pn

from explorer import Explorer

pn.extension(notifications=True)
_parser = argparse.ArgumentParser(prog="panel serve explorer --args")
_parser.add_argument("--data", default=None, help="MNIST / Morpho-MNIST folder, or .npy/.npz array")
_args, _ = _parser.parse_known_args(sys.argv[1:])
Explorer(data=_args.data).servable()
