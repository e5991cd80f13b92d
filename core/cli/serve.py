"""``morpho serve``: start the explorer app."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.cli import common
from core.cli.common import CLIError


#: One line for ``morpho --help``.
HELP = "start the explorer"


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("serve", help=HELP, formatter_class=fmt,
                       description="Start the Panel explorer app on DATA (a dataset folder or file).")
    p.add_argument("data", metavar="DATA", nargs="?", help="dataset to open (default: the bundled sample)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=common.port, default=5006, help="port")
    p.add_argument("--show", action="store_true", help="open a browser")
    p.add_argument("--data-root", action="append", metavar="DIR",
                   help="confine the app's path boxes to this folder (repeatable); without one, a server listening "
                        "on a non-loopback address turns the path boxes off")
    p.add_argument("--decoder", metavar="MODEL",
                   help="a decoder for the Model tab: an ONNX file or package.module:function")
    p.add_argument("--latent-dim", type=common.positive_int, metavar="D",
                   help="latent dimension of --decoder (when it cannot be read from the model)")
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


#: Upload cap used when explorer.limits is not importable (its documented default, 50 MB).
_FALLBACK_UPLOAD_BYTES = 50 * 1000 * 1000


def max_upload_bytes() -> int:
    """The app's upload cap, ``explorer.limits.MAX_UPLOAD_BYTES`` (env MORPHO_MAX_UPLOAD_MB)."""
    limits = _app_limits()
    if limits is not None and hasattr(limits, "MAX_UPLOAD_BYTES"):
        return int(limits.MAX_UPLOAD_BYTES)
    import os
    try:
        return int(float(os.environ["MORPHO_MAX_UPLOAD_MB"]) * 1000 * 1000)
    except (KeyError, ValueError):
        return _FALLBACK_UPLOAD_BYTES


def websocket_max_message_size() -> int:
    """Bytes of the largest websocket message the server accepts: ``explorer.limits.websocket_max_message_size()``
    -- one upload of the cap, base64-encoded (4 bytes per 3) inside a JSON patch, plus 1 MB, never below
    Tornado's default 20 MiB. A larger message closes the session with no word to the user; with this
    limit every allowed upload arrives and the app refuses bigger files with a message."""
    limits = _app_limits()
    if limits is not None and hasattr(limits, "websocket_max_message_size"):
        return int(limits.websocket_max_message_size())
    return max(20 * 1024 * 1024, -(-max_upload_bytes() * 4 // 3) + 1_000_000)


def _app_limits():
    """``explorer/limits.py`` loaded on its own (importing the ``explorer`` package would load Panel and
    HoloViews in this process, seconds before the server even starts), or None."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("explorer")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "limits.py"
    if not path.is_file():
        return None
    mod_spec = importlib.util.spec_from_file_location("_morpho_serve_explorer_limits", path)
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:  # e.g. a bad MORPHO_MAX_UPLOAD_MB: the app would fail the same way
        raise CLIError(f"the explorer's limits cannot be read: {e}") from e
    return module


def serve_command(args) -> list[str]:
    """The ``panel serve`` command line for ``morpho serve``."""
    cmd = [sys.executable, "-m", "panel", "serve", str(explorer_main()), "--address", args.address,
           "--port", str(args.port), "--allow-websocket-origin", f"{args.address}:{args.port}",
           "--allow-websocket-origin", f"localhost:{args.port}",
           "--websocket-max-message-size", str(websocket_max_message_size())]
    if args.show:
        cmd.append("--show")
    app_args = []
    if args.data is not None:
        data = common.check_input(args.data, "dataset file")
        app_args += ["--data", str(data.resolve())]
    for root in args.data_root or ():
        folder = common.check_input(root, "folder")
        if not folder.is_dir():
            raise CLIError(f"{folder}: --data-root must be a folder")
        app_args += ["--data-root", str(folder.resolve())]
    if args.decoder is not None:
        decoder = args.decoder
        if ":" not in decoder or Path(decoder).exists():  # a model file, not package.module:function
            decoder = str(common.check_input(decoder, "model file", folder_ok=False).resolve())
        app_args += ["--decoder", decoder]
    if args.latent_dim is not None:
        app_args += ["--latent-dim", str(args.latent_dim)]
    if app_args:
        cmd += ["--args", *app_args]
    return cmd


def run(args) -> int:
    cmd = serve_command(args)
    print(f"serving the explorer on http://{args.address}:{args.port}/main", file=sys.stderr)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130

