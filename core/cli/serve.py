"""``morpho serve``: start the explorer app."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.cli.common import CLIError


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("serve", help="start the explorer", formatter_class=fmt,
                       description="Start the Panel explorer app on DATA (a dataset folder or file).")
    p.add_argument("data", metavar="DATA", nargs="?", help="dataset to open (default: the bundled sample)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=5006, help="port")
    p.add_argument("--show", action="store_true", help="open a browser")
    p.set_defaults(func=run)


def explorer_main() -> Path:
    """Path of ``explorer/main.py`` (the Panel app) without importing the explorer."""
    import importlib.util
    spec = importlib.util.find_spec("explorer")
    if spec is None or not spec.submodule_search_locations:
        raise CLIError("the explorer package is not installed")
    main_py = Path(list(spec.submodule_search_locations)[0]) / "main.py"
    if not main_py.is_file():
        raise CLIError(f"{main_py}: the explorer app is missing")
    return main_py


def serve_command(args) -> list[str]:
    """The ``panel serve`` command line for ``morpho serve``."""
    cmd = [sys.executable, "-m", "panel", "serve", str(explorer_main()), "--address", args.address,
           "--port", str(args.port), "--allow-websocket-origin", f"{args.address}:{args.port}",
           "--allow-websocket-origin", f"localhost:{args.port}"]
    if args.show:
        cmd.append("--show")
    if args.data is not None:
        data = Path(args.data)
        if not data.exists():
            raise CLIError(f"{data}: no such file or folder")
        cmd += ["--args", "--data", str(data.resolve())]
    return cmd


def run(args) -> int:
    cmd = serve_command(args)
    print(f"serving the explorer on http://{args.address}:{args.port}/main", file=sys.stderr)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130

