"""The one gate: everything a visitor sends enters the explorer here.

A served explorer is shared by a class, some of whose visitors may be hostile. Every byte a visitor
sends -- share-link values, uploads (their names and contents), typed paths, free text -- passes
through this module, with the same limits for every view:

- **Text** (:func:`escape_md`, :func:`escape_html`): anything a visitor supplied (values, file names,
  paths, labels, column names read from their files) is escaped before it reaches a Markdown or HTML
  pane. Messages handed to :meth:`explorer.state.ExplorerState.notify` and to the views' alerts are plain
  text, escaped where they are shown.
- **Share-link values** (:func:`query_text`, :func:`parse_number`, :func:`parse_json`): bounded in length,
  nesting depth and item count before anything parses them, so that no URL can exhaust the server or
  raise from deep inside a parser.
- **Files** (:class:`Gate`): uploads are size-checked and stored under a name that cannot leave the
  session's folder; typed paths are served only inside the ``--data-root`` folders; every read (data set,
  samples, traversal grid, codes, metrics table) goes through the app's :func:`explorer.limits.app_read_limits`.
  A view never calls :mod:`core.reading` or :mod:`core.samples` itself, so a new view is protected by
  construction.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:  # for annotations: pandas is imported where a CSV is read, not with the gate
    import pandas as pd

__all__ = ["Gate", "Upload", "escape_md", "escape_html", "shown", "query_text", "parse_number",
           "parse_json", "QueryValueError", "MAX_QUERY_VALUE", "MAX_NUMBER_CHARS", "MAX_JSON_DEPTH",
           "MAX_JSON_ITEMS", "MAX_NAME_CHARS", "MAX_PATH_CHARS"]

#: Longest share-link value read (characters): no URL makes the server parse megabytes.
MAX_QUERY_VALUE = 20_000
#: Longest number a share link may hold (characters); Python refuses ints of more than 4,300 digits anyway.
MAX_NUMBER_CHARS = 40
#: Deepest nesting of a JSON share-link value (``{"thickness": [1, 2]}`` is 2 deep).
MAX_JSON_DEPTH = 3
#: Most items (numbers, strings, keys) in one JSON share-link value.
MAX_JSON_ITEMS = 2_000
#: Longest file name kept from an upload (characters); longer names are shortened.
MAX_NAME_CHARS = 120
#: Longest path a path box accepts (characters).
MAX_PATH_CHARS = 4_096


# ------------------------------------------------------------------------------------------------------
# text

# Characters with a meaning in Markdown (links, images, emphasis, code, headings, tables). Not the HTML
# ones (< > & " '): html.escape turns them into entities, and a backslash before an entity ("\\&lt;")
# would make Markdown show the entity's text instead of the character.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:])")


def escape_md(text) -> str:
    """``text`` as literal text inside a Markdown pane (Panel's Markdown and Alert panes).

    Markdown syntax is backslash-escaped (no link, image or emphasis can be formed) and HTML is
    escaped (no element can be injected), in that order so that the entities survive; the text reads
    exactly as given once rendered.
    """
    return html.escape(_MD_SPECIAL.sub(r"\\\1", str(text)), quote=True)


def escape_html(text) -> str:
    """``text`` as literal text inside an HTML pane or table cell."""
    return html.escape(str(text), quote=True)


def shown(value, limit: int = 40) -> str:
    """A visitor's value shortened for a notice (still to be escaped where it is shown)."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


# ------------------------------------------------------------------------------------------------------
# share-link values

class QueryValueError(ValueError):
    """A share-link value that cannot be used; the message says why, in a few words."""


def query_text(raw) -> str:
    """The text of one query value: the last of repeated keys, bytes decoded, length bounded.

    Raises
    ------
    QueryValueError
        Longer than :data:`MAX_QUERY_VALUE` characters.
    """
    if isinstance(raw, (list, tuple)):
        raw = raw[-1] if raw else ""
    if isinstance(raw, (bytes, bytearray)):
        if len(raw) > 4 * MAX_QUERY_VALUE:
            raise QueryValueError("too long")
        raw = bytes(raw).decode("utf-8", "replace")
    text = str(raw)
    if len(text) > MAX_QUERY_VALUE:
        raise QueryValueError("too long")
    return text.strip()


def parse_number(text: str, *, integer: bool = False):
    """A finite number from a share link (``"3"``, ``"2.5"``, ``"1e3"``), bounded in length.

    Raises
    ------
    QueryValueError
        Too long, not a number, not finite, or not whole when ``integer``.
    """
    text = str(text).strip()
    if len(text) > MAX_NUMBER_CHARS:
        raise QueryValueError("too long for a number")
    try:
        if integer and text.lstrip("+-").isdigit():
            return int(text)
        value = float(text)
    except (ValueError, OverflowError):
        raise QueryValueError("not a number") from None
    if not math.isfinite(value):
        raise QueryValueError("not a finite number")
    if integer:
        if value != int(value):
            raise QueryValueError("not a whole number")
        return int(value)
    return value


def _json_shape(text: str) -> tuple[int, int]:
    """(deepest nesting, number of items) of a JSON text, without parsing it (no recursion)."""
    depth = deepest = items = 0
    in_string = escaped = False
    token = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string, token = True, True
            items += 1
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            token = False
        elif ch in "]}":
            depth -= 1
            token = False
        elif ch in ",:":
            token = False
        elif not ch.isspace() and not token:
            token = True
            items += 1
    return deepest, items


def parse_json(text: str, *, max_depth: int = MAX_JSON_DEPTH, max_items: int = MAX_JSON_ITEMS):
    """A JSON share-link value (``[1, 7]``, ``{"thickness": [1, 3]}``), bounded in depth and size.

    The shape is checked by scanning the text before :func:`json.loads` runs, so a 5,000-deep list
    is refused in linear time instead of raising RecursionError.

    Raises
    ------
    QueryValueError
        Too deep, too many items, or not JSON.
    """
    deepest, items = _json_shape(text)
    if deepest > max_depth:
        raise QueryValueError(f"nested {deepest} deep (at most {max_depth})")
    if items > max_items:
        raise QueryValueError(f"{items:,} items (at most {max_items:,})")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int)
    except (ValueError, RecursionError):
        raise QueryValueError("not valid JSON") from None


def _no_constant(name):
    raise ValueError(name)  # NaN, Infinity: not values a widget can take


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError("number too long")
    return int(text)


# ------------------------------------------------------------------------------------------------------
# files

@dataclass
class Upload:
    """An upload stored by :meth:`Gate.upload`: where it lies on the server and how the visitor names it.

    Attributes
    ----------
    path : pathlib.Path
        The stored file, or the folder holding several files uploaded together.
    name : str
        The (sanitised) name the visitor gave, for messages; never a server path.
    hidden : dict
        Server paths -> what messages show instead (see :func:`explorer.limits.user_message`).
    """
    path: Path
    name: str
    hidden: dict = field(default_factory=dict)

    def discard(self) -> None:
        """Delete the stored copy (the data are in memory once read)."""
        folder = self.path if self.path.is_dir() else self.path.parent
        shutil.rmtree(folder, ignore_errors=True)


def safe_name(name) -> str:
    """An upload's file name reduced to one harmless path component (no folders, no control characters,
    at most :data:`MAX_NAME_CHARS` characters, the extension kept)."""
    text = str(name or "").replace("\\", "/").split("/")[-1]
    text = "".join(ch for ch in text if ch.isprintable() and ch not in "\x00").strip().lstrip(".")
    if not text:
        return "upload"
    if len(text) > MAX_NAME_CHARS:
        stem, dot, ext = text.rpartition(".")
        ext = ext[:12] if dot else ""
        text = (stem if dot else text)[: MAX_NAME_CHARS - len(ext) - 2] + "…" + ("." + ext if ext else "")
    return text


class Gate:
    """One session's gate for files: uploads, typed paths and every read, with the app's limits.

    Parameters
    ----------
    limits : core.reading.ReadLimits, optional
        What one read may cost; the app's :func:`explorer.limits.app_read_limits` (as the environment
        says when the gate is built) when omitted.
    data_roots : sequence of str, optional
        Folders typed paths may point into (``--data-root``).
    paths_enabled : bool
        Whether typed paths are served at all (a served app with no data root: off).
    paths_note : str
        Why typed paths are off, and how to turn them on.
    """

    def __init__(self, limits=None, *, data_roots: Sequence[str] = (), paths_enabled: bool = True,
                 paths_note: str = ""):
        if limits is None:
            from explorer.limits import app_read_limits

            limits = app_read_limits()
        self.limits = limits
        self.data_roots = [str(r) for r in data_roots]
        self.paths_enabled = paths_enabled
        self.paths_note = paths_note
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        self._count = 0

    # --- typed paths ---------------------------------------------------------------------------------
    def path(self, text: str, purpose: str = "open") -> Path:
        """The path a visitor typed, checked against the server's policy.

        Parameters
        ----------
        text : str
            What the visitor typed (``~`` expands; relative paths are taken in the first data root).
        purpose : {"open", "samples", "traversal", "codes", "export", ...}
            What the path is for, named in messages.

        Returns
        -------
        pathlib.Path
            The absolute path, symlinks resolved.

        Raises
        ------
        ValueError
            A message for the visitor: paths are off here (and how to turn them on), the path is empty,
            too long, or leads outside every data folder (also through a symlink or ``..``).
        """
        what = {"open": "data path", "samples": "samples path", "export": "export folder",
                "traversal": "traversal path", "codes": "codes path"}.get(purpose, "path")
        text = str(text or "").strip()
        if not self.paths_enabled:
            raise ValueError(self.paths_note or "Paths on the server are off here; upload files instead.")
        if not text:
            raise ValueError(f"Type a {what} first.")
        if len(text) > MAX_PATH_CHARS or "\x00" in text:
            raise ValueError(f"{what.capitalize()} {shown(text)} is not a valid path.")
        path = Path(os.path.expanduser(text))
        roots = [Path(os.path.realpath(os.path.expanduser(r))) for r in self.data_roots]
        if not path.is_absolute():
            path = (roots[0] if roots else Path.cwd()) / path
        real = Path(os.path.realpath(path))
        if roots and not any(real == r or r in real.parents for r in roots):
            names = ", ".join(str(r) for r in roots)
            raise ValueError(f"{what.capitalize()} {shown(text, 200)} is outside the data folders this server "
                             f"offers ({names}); choose a path inside {'it' if len(roots) == 1 else 'one of them'}.")
        return real

    # --- uploads -------------------------------------------------------------------------------------
    def upload(self, values, filenames, *, limit: Optional[int] = None) -> Upload:
        """Check and store what a FileInput received: one file, or several (stored as one folder).

        Parameters
        ----------
        values : bytes or list of bytes
        filenames : str or list of str
            As the browser sent them; reduced with :func:`safe_name`.
        limit : int, optional
            Largest total size in bytes (the server's websocket limit may allow less than the app's).

        Raises
        ------
        ValueError
            No file, or over the upload limit (an :class:`explorer.limits.UploadRefused` naming the file,
            its size and the limit). Nothing is stored then.
        """
        from explorer.limits import check_upload

        if isinstance(values, (bytes, bytearray)):
            values, filenames = [values], [filenames]
        values = list(values or [])
        names = [safe_name(n) for n in list(filenames or [])]
        names += ["upload"] * (len(values) - len(names))
        if not values:
            raise ValueError("no file was uploaded")
        shown_name = names[0] if len(names) == 1 else f"{len(names)} files ({names[0]}, …)"
        check_upload(shown_name, sum(len(v) for v in values), limit)
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="morpho-upload-")
        self._count += 1
        folder = Path(self._tmp.name) / f"{self._count}"
        folder.mkdir()
        seen: dict = {}
        for data, name in zip(values, names):
            k = seen[name] = seen.get(name, 0) + 1
            target = folder / (name if k == 1 else f"{k}-{name}")
            tmp = folder / f".{self._count}-{k}.part"
            tmp.write_bytes(data)
            os.replace(tmp, target)  # never a partial file under the visitor's name
        path = folder / names[0] if len(values) == 1 else folder
        hidden = {str(folder / n): n for n in names}
        hidden[str(folder)] = "the upload"
        return Upload(path=path, name=shown_name, hidden=hidden)

    def close(self) -> None:
        """Delete every stored upload (the session ended)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- reads (every file route) --------------------------------------------------------------------
    @staticmethod
    def _where(source) -> tuple[Path, Optional[str]]:
        if isinstance(source, Upload):
            return source.path, source.name
        return Path(source), None

    def dataset(self, source):
        """A data set to browse (:func:`explorer.data.read`): a Dataset, or a PendingDataset to measure."""
        from explorer.data import read

        path, _ = self._where(source)
        return read(path, limits=self.limits)

    def samples(self, source, **kwargs):
        """A model's samples (:func:`core.samples.load_samples`) with the app's limits."""
        from core.samples import load_samples

        path, name = self._where(source)
        return load_samples(path, limits=self.limits, display_name=name, **kwargs)

    def traversal(self, source, rows=None, cols=None, **kwargs):
        """A latent traversal grid (:func:`core.samples.load_traversal`) with the app's limits."""
        from core.samples import load_traversal

        path, name = self._where(source)
        return load_traversal(path, rows or None, cols or None, limits=self.limits, display_name=name, **kwargs)

    def codes(self, source, **kwargs):
        """Latent codes, one row per sample (:func:`core.samples.load_codes`) with the app's limits."""
        from core.reading import check_digit_count, open_arrays, sniff
        from core.samples import SampleFormatError, load_codes

        path, name = self._where(source)
        shown_name = name or path.name
        # One code row per digit: more rows than the digit cap are refused from the array headers, before
        # anything is read (the library bounds codes arrays by bytes only). CSV codes are bounded by rows.
        if path.is_file() and sniff(path, display_name=shown_name) in ("npy", "npz", "torch"):
            with open_arrays(path, limits=self.limits, display_name=shown_name) as arrays:
                for header in arrays.headers.values():
                    shape = tuple(header.shape)
                    if len(shape) in (1, 2):
                        check_digit_count(int(shape[0]), self.limits, shown_name, SampleFormatError)
        return load_codes(path, limits=self.limits, display_name=name, **kwargs)

    def metrics_table(self, source, n: Optional[int] = None):
        """A metrics CSV (:func:`core.reading.read_metrics_table`) with the app's limits."""
        from core.reading import read_metrics_table

        path, name = self._where(source)
        return read_metrics_table(path, n=n, limits=self.limits, display_name=name)

    def code_metrics(self, source, columns: Sequence[str]) -> "pd.DataFrame":
        """The metrics CSV of coded samples: the ``columns`` it holds (at least one), as float64.

        Unlike :meth:`metrics_table` the six metrics need not all be there (a codes analysis uses the
        diagnostic ones); the file size and row count are bounded by the app's limits before anything
        is parsed beyond the allowed rows.

        Raises
        ------
        core.samples.SampleFormatError
            Not a CSV, no metric column among ``columns``, a non-numeric metric column.
        core.io.UnreadableFileError, FileNotFoundError
            Not a regular file, or over a limit.
        """
        import pandas as pd

        from core.io import check_size, open_regular_file
        from core.reading import check_digit_count
        from core.samples import SampleFormatError

        path, name = self._where(source)
        name = name or path.name
        with open_regular_file(path, "metrics table", display_name=name) as f:
            check_size(os.fstat(f.fileno()).st_size, self.limits.max_bytes, name, "the table")
            try:  # at most one row over the cap is parsed: enough to refuse the file
                df = pd.read_csv(f, nrows=self.limits.max_digits + 1, low_memory=False)
            except MemoryError:
                raise
            except Exception as e:  # pandas raises many kinds for a broken CSV
                raise SampleFormatError(f"{name}: not a readable CSV table ({type(e).__name__})") from None
        check_digit_count(len(df), self.limits, name, SampleFormatError)
        df.columns = [str(c) for c in df.columns]
        present = [m for m in columns if m in df.columns]
        if not present:
            found = ", ".join(shown(c, 30) for c in df.columns[:8]) + (", …" if df.shape[1] > 8 else "")
            raise SampleFormatError(f"{name}: found columns {found}; expected metric columns among "
                                    f"{', '.join(columns)}")
        out = df[present].apply(pd.to_numeric, errors="coerce")
        bad = [m for m in present if out[m].isna().sum() > df[m].isna().sum()]
        if bad:
            raise SampleFormatError(f"{name}: column {bad[0]} holds non-numeric values")
        return out.astype("float64").reset_index(drop=True)

    @staticmethod
    def message(error, source=None) -> str:
        """An error's text for the visitor: the server's temporary paths replaced by what they uploaded.
        Plain text (escape it where it is shown)."""
        from explorer.limits import user_message

        hidden = source.hidden if isinstance(source, Upload) else None
        return user_message(str(error), hidden)
