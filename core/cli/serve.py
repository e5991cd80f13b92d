"""``morpho serve``: start the explorer app (``panel serve explorer``) and stop it cleanly.

A thin launcher: it checks the paths it is given, passes them to the app after ``--args`` and runs
``panel serve`` on the explorer's folder, so the app answers at ``/explorer`` as with ``panel serve
explorer``. The app derives its own limits (upload cap, path policy). ``--processes N`` runs N server
processes on the port (Bokeh's ``--num-procs``): each browser session lives in one of them, so a class
spreads over the cores. SIGTERM or Ctrl-C stops the server and every process it started.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from core.cli import common
from core.cli.common import CLIError


#: One line for ``morpho --help``.
HELP = "start the explorer"

#: The path the app answers at (the explorer folder's name, as with ``panel serve explorer``).
APP_PATH = "/explorer"


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("serve", help=HELP, formatter_class=fmt,
                       description=f"Start the Panel explorer app on DATA (a dataset folder or file); it answers "
                                   f"at http://ADDRESS:PORT{APP_PATH}.")
    p.add_argument("data", metavar="DATA", nargs="?", help="dataset to open (default: the bundled sample)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=common.port, default=5006, help="port")
    p.add_argument("--processes", type=common.bounded(1, 64, integer=True, what="a number of processes in 1..64"),
                   default=1, metavar="N",
                   help="server processes sharing the port (each session lives in one); about one per core "
                        "for a class")
    p.add_argument("--show", action="store_true", help="open a browser")
    p.add_argument("--data-root", action="append", metavar="DIR",
                   help="the folder the app's path boxes may use (repeatable); without one the path boxes are off "
                        "(uploads still work), as with panel serve explorer")
    p.add_argument("--decoder", metavar="MODEL",
                   help="a decoder for the Model tab: an ONNX file or package.module:function")
    p.add_argument("--latent-dim", type=common.positive_int, metavar="D",
                   help="latent dimension of --decoder (when it cannot be read from the model)")
    p.set_defaults(func=run)


def explorer_folder() -> Path:
    """The ``explorer`` package folder (the Panel app; ``main.py`` inside) without importing it."""
    import importlib.util
    spec = importlib.util.find_spec("explorer")
    if spec is None or not spec.submodule_search_locations:
        raise CLIError("the explorer package is not installed")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / "main.py").is_file():
        raise CLIError(f"{folder / 'main.py'}: the explorer app is missing")
    return folder


def serve_command(args) -> list[str]:
    """The ``panel serve`` command line for ``morpho serve``."""
    cmd = [sys.executable, "-m", "panel", "serve", str(explorer_folder()), "--address", args.address,
           "--port", str(args.port), "--allow-websocket-origin", f"{args.address}:{args.port}",
           "--allow-websocket-origin", f"localhost:{args.port}"]
    if args.processes > 1:
        cmd += ["--num-procs", str(args.processes)]
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
    print(f"serving the explorer on http://{args.address}:{args.port}{APP_PATH}", file=sys.stderr)
    # The server gets a process group of its own: with --num-procs it forks, and the app starts a kernel
    # compiler; a signal to this process stops the whole group, so nothing keeps the port.
    proc = subprocess.Popen(cmd, start_new_session=True)

    def stop(signum, frame):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _reap_group(proc.pid)
    return 130 if code == -signal.SIGINT else (0 if code == -signal.SIGTERM else code)


def _reap_group(pgid: int, grace: float = 5.0) -> None:
    """Stop what the server left in its process group (forked workers, the kernel compiler): SIGTERM, then
    SIGKILL after ``grace`` seconds."""
    import time

    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return  # the group is empty
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
