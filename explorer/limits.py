"""What one user of the served explorer may send the server: upload size, digit count, read limits.

The library's own limits (:data:`core.reading.DEFAULT_LIMITS`) are generous, for a researcher's own
files. A server shared by a class needs small ones, so that no upload, share link or path can make the
server allocate gigabytes. Each limit can be changed with an environment variable before starting the
server; the variables are read when a limit is used (:func:`max_upload_bytes`, :func:`max_upload_digits`,
:func:`app_read_limits`), never at import::

    MORPHO_MAX_UPLOAD_MB=200 MORPHO_MAX_UPLOAD_DIGITS=500000 panel serve explorer \\
        --websocket-max-message-size 280000000

Panel's ``FileInput`` sends a whole file, base64-encoded, in one websocket message, and Tornado closes
the connection of a client whose message is larger than ``--websocket-max-message-size`` (20 MB by
default) with no word to the user. :func:`websocket_max_message_size` is the size that lets every
allowed upload through; ``morpho serve`` passes it. The browser-side guard of :func:`upload_guard_js`
refuses larger files before they are sent, with a message in the app.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.settings import env_number

if TYPE_CHECKING:
    from core.io import ReadLimits

__all__ = ["max_upload_bytes", "max_upload_digits", "app_read_limits", "DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE",
           "check_upload", "check_upload_digits", "websocket_max_message_size", "format_bytes", "user_message",
           "UploadRefused", "refusal_message", "effective_upload_bytes"]


#: Tornado's default ``websocket_max_message_size`` (what ``panel serve`` uses unless told otherwise).
DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE = 20 * 1024 * 1024


def max_upload_bytes() -> int:
    """Largest upload, in bytes, of one file or of the files uploaded together (env ``MORPHO_MAX_UPLOAD_MB``,
    default 50), read on each call.

    Raises
    ------
    ValueError
        The variable is set to something other than a positive number (the message names it).
    """
    return int(env_number("MORPHO_MAX_UPLOAD_MB", 50) * 1_000_000)


def max_upload_digits() -> int:
    """Most digits in one upload or one file opened from a path box (env ``MORPHO_MAX_UPLOAD_DIGITS``,
    default 100,000), read on each call.

    Raises
    ------
    ValueError
        The variable is set to something other than a positive whole number (the message names it).
    """
    return int(env_number("MORPHO_MAX_UPLOAD_DIGITS", 100_000, integer=True))


def app_read_limits() -> ReadLimits:
    """The limits every file a session reads goes through (uploads and path boxes), from
    :func:`max_upload_digits` as the environment says now; ``--data`` uses the library defaults since the
    server's owner chose it.

    Returns
    -------
    core.io.ReadLimits

    Raises
    ------
    ValueError
        ``MORPHO_MAX_UPLOAD_DIGITS`` is not a positive whole number.
    """
    from core.io import ReadLimits

    digits = max_upload_digits()
    # Decompressed bytes: every allowed digit as float32 (what most models write), so an allowed
    # upload always fits and a decompression bomb stops at a few hundred MB.
    max_bytes = digits * 28 * 28 * 4
    # PNG grids: 64 px² per digit cell with padding is plenty for `digits` 28x28 cells, capped at the
    # library default.
    max_pixels = int(min(64e6, max(4e6, digits * 32 * 32)))
    return ReadLimits(max_bytes=max_bytes, max_digits=digits, max_image_pixels=max_pixels)


class UploadRefused(ValueError):
    """An upload over a limit; the message is meant for the user and names no server path."""


def format_bytes(n: float) -> str:
    """``52,428,800`` -> ``"52.4 MB"`` (decimal units, as browsers show file sizes)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}" if n / size < 100 else f"{n / size:,.0f} {unit}"
    return f"{int(n)} bytes"


def check_upload(name: str, nbytes: int, limit: int | None = None) -> None:
    """Refuse an upload over :func:`max_upload_bytes` (or ``limit``).

    Parameters
    ----------
    name : str
        The file name as the browser sent it (only its last part is shown).
    nbytes : int
        Its size in bytes (or the total of files uploaded together).
    limit : int, optional
        The limit in bytes, when smaller than :func:`max_upload_bytes` (e.g. the server's websocket
        message limit allows less).

    Raises
    ------
    UploadRefused
        A ValueError whose message says the size, the limit and how the server's owner raises it.
    """
    cap = max_upload_bytes()
    limit = cap if limit is None else min(int(limit), cap)
    if nbytes > limit:
        raise UploadRefused(refusal_message(name, nbytes, limit))


def refusal_message(name: str, nbytes: int, limit: int) -> str:
    """What an over-size upload's user reads (no server path)."""
    shown = Path(str(name)).name or "the upload"
    return (f"{shown} is {format_bytes(nbytes)}; this server accepts uploads up to {format_bytes(limit)}. "
            f"Upload fewer digits, or ask whoever runs the server to raise MORPHO_MAX_UPLOAD_MB (and "
            f"--websocket-max-message-size) or to put the file in a data folder (--data-root).")


def check_upload_digits(name: str, n: int) -> None:
    """Refuse more than :func:`max_upload_digits` digits from one upload or path box.

    Raises
    ------
    UploadRefused
    """
    cap = max_upload_digits()
    if n > cap:
        shown = Path(str(name)).name or "the upload"
        raise UploadRefused(
            f"{shown} holds {n:,} digits; this server measures at most {cap:,} per file. "
            f"Use fewer digits, or ask whoever runs the server to raise MORPHO_MAX_UPLOAD_DIGITS.")


def websocket_max_message_size(upload_bytes: int | None = None) -> int:
    """The ``--websocket-max-message-size`` (bytes) that lets every allowed upload through.

    Panel's FileInput sends the file base64-encoded (4/3 of its size) inside a JSON patch; 1 MB covers
    the JSON around it. Never below Tornado's default, which other messages may need.
    """
    n = max_upload_bytes() if upload_bytes is None else int(upload_bytes)
    return max(DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE, math.ceil(n * 4 / 3) + 1_000_000)


def effective_upload_bytes(ws_limit: int | None) -> int:
    """The largest upload that arrives whole through a websocket limit of ``ws_limit`` bytes."""
    cap = max_upload_bytes()
    if not ws_limit:
        return cap
    return max(0, min(cap, int((ws_limit - 1_000_000) * 3 / 4)))


_TEMP_RE = re.compile(r"(?:/tmp|/var/tmp|/var/folders|/private/var|[A-Za-z]:\\\\[^\s'\"]*Temp)[^\s'\":,;)]*")


def user_message(text: str, hidden: dict | None = None) -> str:
    """A message fit for the user: known temporary paths replaced by what the user sees.

    Parameters
    ----------
    text : str
        An error message that may name files the server wrote (uploads saved to a temporary folder).
    hidden : dict, optional
        ``{server path: what to show}`` (e.g. the temporary file -> the uploaded file's name); any
        other path under a temporary folder is shown by its last part only.
    """
    for path, shown in sorted((hidden or {}).items(), key=lambda kv: -len(str(kv[0]))):
        text = text.replace(str(path), str(shown))
    return _TEMP_RE.sub(lambda m: Path(m.group(0)).name or "a temporary file", text)
