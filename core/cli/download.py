"""``morpho download``: fetch the MNIST files, sha256-checked and resumable."""
from __future__ import annotations

from core.cli import common
from core.cli.common import CLIError


#: One line for ``morpho --help``.
HELP = "fetch the four MNIST files (sha256-checked, resumable)"


def add_parser(sub, fmt) -> None:
    p = sub.add_parser("download", help=HELP,
                       formatter_class=fmt,
                       description="Download train/t10k images and labels from the official mirrors, verify their "
                                   "sha256, resume partial downloads; a partial file never has the final name.")
    p.add_argument("--to", default="mnist", metavar="DIR", help="destination folder")
    p.add_argument("--mirror", action="append", metavar="URL",
                   help="base URL to try (repeatable; default: the official mirrors)")
    p.add_argument("--checksums", metavar="FILE",
                   help="sha256sum-format file listing the files to fetch (default: the four MNIST files)")
    p.add_argument("--timeout", type=common.seconds, default=60., help="seconds to wait on a silent connection")
    p.add_argument("--force", action="store_true", help="replace an existing file whose sha256 differs")
    common.add_common(p)
    p.set_defaults(func=run)


#: A sha256sum list of a data set's files is a few lines; anything bigger is the wrong file.
_MAX_CHECKSUMS_BYTES = 1_000_000


def _read_checksums(path: str) -> dict[str, str]:
    files = {}
    checked = common.check_input(path, "checksums file", folder_ok=False)
    try:
        with open(checked, "rb") as f:
            raw = f.read(_MAX_CHECKSUMS_BYTES + 1)
    except OSError as e:
        raise CLIError(f"{path}: cannot read ({e.strerror or e})") from e
    if len(raw) > _MAX_CHECKSUMS_BYTES:
        raise CLIError(f"{path}: larger than {_MAX_CHECKSUMS_BYTES // 1000} kB; not a sha256sum list of a data set")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CLIError(f"{path}: not a text file (byte {e.start} is not UTF-8)") from e
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
            raise CLIError(f"{path}, line {i}: expected 'SHA256  FILENAME' (the sha256sum format)")
        name = parts[1].lstrip("*")
        # a plain file name: the file is written into --to, never elsewhere
        if name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
            raise CLIError(f"{path}, line {i}: {name!r} is not a plain file name")
        files[name] = parts[0].lower()
    if not files:
        raise CLIError(f"{path}: no checksums")
    return files


def run(args) -> int:
    from core import download

    files = _read_checksums(args.checksums) if args.checksums else download.MNIST_FILES
    mirrors = args.mirror or list(download.MIRRORS)
    results = download.download_mnist(args.to, mirrors=mirrors, files=files, force=args.force,
                                      timeout=args.timeout, progress=common.progress(args))
    for r in results:
        where = f" from {r.url}" if r.url else ""
        print(f"{r.path}: {r.status}{where}, sha256 ok")
    return 0

