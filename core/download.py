"""Download the four MNIST files from the official mirrors, with sha256 checks and resumable transfers.

A file is fetched into ``.<name>.part`` beside its final name and renamed only once its sha256 matches, so
the final name never holds a partial or corrupted file. An interrupted transfer leaves the ``.part`` file,
and the next run asks the server for the remaining bytes (an HTTP ``Range`` request); a server that ignores
ranges sends the whole file again.

Examples
--------
>>> from core.download import download_mnist
>>> paths = download_mnist("mnist")          # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MNIST_FILES", "MIRRORS", "DownloadError", "DownloadResult", "download_file", "download_mnist",
           "sha256sum"]

#: The official MNIST files and their sha256 digests.
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Mirrors tried in order; each serves the four files under the same names.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

_BLOCK = 1 << 16
_USER_AGENT = "morpho-mnist-explorer (python urllib)"


class DownloadError(RuntimeError):
    """A file could not be fetched from any mirror; the message names the file and each mirror's failure."""


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download_file` did.

    Attributes
    ----------
    path : pathlib.Path
        The verified file.
    status : {"present", "downloaded", "resumed"}
        ``present`` when a file with the right digest was already there.
    url : str or None
        Where it came from (None when present).
    """

    path: Path
    status: str
    url: str | None = None


def sha256sum(path: str | os.PathLike) -> str:
    """Return the hex sha256 digest of a file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _join(base: str, name: str) -> str:
    return base if base.endswith(name) else base.rstrip("/") + "/" + name


def _fetch(url: str, part: Path, *, timeout: float, progress: bool, desc: str) -> bool:
    """Append the missing bytes of `url` to `part`. Return True if the transfer resumed an existing part.

    Raises OSError/urllib errors on failure; `part` then keeps what arrived (for a later resume).
    """
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # Range not satisfiable: the part is probably complete already; the digest check decides.
            return True
        raise
    with response:
        status = getattr(response, "status", 200)
        resumed = bool(have) and status == 206
        if have and not resumed:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None and length.isdigit() else None
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                       leave=False)
        received = 0
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while True:
                    block = response.read(_BLOCK)
                    if not block:
                        break
                    f.write(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
        finally:
            if bar is not None:
                bar.close()
        if length is not None and length.isdigit() and received < int(length):
            raise OSError(f"connection closed after {received} of {int(length)} bytes")
    return resumed


def download_file(name: str, sha256: str, to: str | os.PathLike, *, mirrors: Sequence[str] = MIRRORS,
                  force: bool = False, timeout: float = 60.0, progress: bool = True) -> DownloadResult:
    """Fetch one file into folder `to`, trying each mirror in turn, and verify its sha256.

    Parameters
    ----------
    name : str
        File name; the URL is ``mirror + name``.
    sha256 : str
        Expected hex digest.
    to : str or os.PathLike
        Destination folder (created if missing).
    mirrors : sequence of str
        Base URLs, tried in order.
    force : bool
        Replace an existing file whose digest does not match. Without it such a file is an error.
    timeout : float
        Seconds to wait on a silent connection.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    DownloadResult

    Raises
    ------
    DownloadError
        If no mirror delivered a file with the right digest (the partial transfer is kept for a resume when
        it may still be good, removed when its digest was wrong), or an existing file has another digest and
        `force` is false.
    """
    to = Path(to)
    try:
        to.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the folder {to}: {e.strerror or e}") from e
    import tempfile
    try:
        fd, probe = tempfile.mkstemp(prefix=".morpho-write-test.", dir=to)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DownloadError(f"{to}: folder is not writable ({e.strerror or e})") from e
    final = to / name
    part = to / f".{name}.part"
    sha256 = sha256.lower()
    if final.exists():
        if final.is_file() and sha256sum(final) == sha256:
            return DownloadResult(final, "present")
        if not force:
            raise DownloadError(f"{final} exists but its sha256 is not {sha256} (not the expected file); "
                                f"remove it or pass --force to replace it")
    if not mirrors:
        raise DownloadError(f"{name}: no mirror given")
    failures = []
    for base in mirrors:
        url = _join(base, name)
        # A part left by an earlier run is resumed; if it turns out corrupted, one clean retry on this mirror.
        for attempt in range(2):
            resumable = part.exists() and part.stat().st_size > 0
            try:
                resumed = _fetch(url, part, timeout=timeout, progress=progress, desc=name)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                if isinstance(e, urllib.error.HTTPError):
                    reason = f"HTTP {e.code} {e.reason}"
                failures.append(f"{url}: {reason}")
                break
            digest = sha256sum(part)
            if digest == sha256:
                os.replace(part, final)
                with contextlib.suppress(OSError):  # make the rename durable
                    fd = os.open(to, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                return DownloadResult(final, "resumed" if resumed else "downloaded", url)
            part.unlink()
            failures.append(f"{url}: sha256 {digest} does not match the expected {sha256}"
                            + (" (after resuming an earlier partial download; retrying from the start)"
                               if resumable and attempt == 0 else ""))
            if not resumable:
                break
    kept = f"; {part.stat().st_size} bytes kept in {part} for a resume" if part.exists() else ""
    raise DownloadError(f"could not download {name}:\n  " + "\n  ".join(failures) + kept)


def download_mnist(to: str | os.PathLike = "mnist", *, mirrors: Sequence[str] = MIRRORS,
                   files: Mapping[str, str] = MNIST_FILES, force: bool = False, timeout: float = 60.0,
                   progress: bool = True) -> list[DownloadResult]:
    """Fetch the four MNIST files into folder `to` (see :func:`download_file`).

    Parameters
    ----------
    to : str or os.PathLike
        Destination folder.
    mirrors : sequence of str
        Base URLs tried in order (default :data:`MIRRORS`).
    files : mapping of str to str
        File name -> sha256 (default :data:`MNIST_FILES`).
    force, timeout, progress
        See :func:`download_file`.

    Returns
    -------
    list of DownloadResult
        One per file, in the order of `files`.

    Raises
    ------
    DownloadError
        After trying every file, if any failed; the files that succeeded stay in place.
    """
    results, errors = [], []
    for name, digest in files.items():
        try:
            results.append(download_file(name, digest, to, mirrors=mirrors, force=force, timeout=timeout,
                                         progress=progress))
        except DownloadError as e:
            errors.append(str(e))
    if errors:
        raise DownloadError("\n".join(errors))
    return results

