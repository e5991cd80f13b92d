"""core.io: IDX round trips, byte-identical MNIST, clear errors on bad files, atomic saves."""
import gzip
import os
import struct

import numpy as np
import pytest

from core import io
from core.io import IDXError, load_idx, save_idx

from conftest import SAMPLE


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_roundtrip_every_type(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        array = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True).astype(dtype)
    else:
        array = rng.normal(size=(3, 4, 5)).astype(dtype)
    save_idx(array, tmp_path / name)
    loaded = load_idx(tmp_path / name)
    assert loaded.dtype == np.dtype(dtype) and loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


def test_mnist_file_is_byte_identical(tmp_path):
    original = gzip.decompress((SAMPLE / "train-images-idx3-ubyte.gz").read_bytes())
    images = load_idx(SAMPLE / "train-images-idx3-ubyte.gz")
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    save_idx(images, tmp_path / "plain-idx3-ubyte")
    assert (tmp_path / "plain-idx3-ubyte").read_bytes() == original
    save_idx(images, tmp_path / "images-idx3-ubyte.gz")
    assert gzip.decompress((tmp_path / "images-idx3-ubyte.gz").read_bytes()) == original
    labels = load_idx(SAMPLE / "train-labels-idx1-ubyte.gz")
    assert labels.shape == (5000,) and labels.dtype == np.uint8


def test_gzip_output_is_reproducible(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    save_idx(array, tmp_path / "a.gz")
    os.utime(tmp_path / "a.gz", (0, 0))
    save_idx(array, tmp_path / "b.gz")
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def _header(code=0x08, dims=(2, 3)):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


BAD_FILES = {
    "empty": (b"", "empty"),
    "truncated magic": (b"\x00\x00\x08", "truncated header"),
    "truncated dims": (bytes([0, 0, 8, 3]) + b"\x00\x00\x00\x02", "truncated header"),
    "wrong magic": (b"\x01\x02\x08\x01" + b"\x00\x00\x00\x01" + b"x", "wrong magic"),
    "unknown type": (_header(code=0x0A) + bytes(6), "unknown IDX type code 0x0a"),
    "zero dimensions": (bytes([0, 0, 8, 0]), "zero dimensions"),
    "truncated data": (_header() + bytes(5), "truncated data"),
    "trailing bytes": (_header() + bytes(7), "1 trailing bytes"),
    "huge declared size": (_header(dims=(0xFFFFFFFF, 0xFFFFFFFF)) + bytes(10), "truncated data"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
@pytest.mark.parametrize("gz", [False, True])
def test_bad_files_raise_idx_error_naming_file(tmp_path, case, gz):
    content, expected = BAD_FILES[case]
    path = tmp_path / (f"bad-{case.replace(' ', '_')}" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(IDXError) as err:
        load_idx(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_random_bytes_never_escape_as_other_errors(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(200):
        data = rng.integers(0, 256, size=rng.integers(0, 64), dtype=np.uint8).tobytes()
        if k % 3 == 0 and len(data) >= 2:
            data = b"\x00\x00" + data[2:]  # get past the magic check now and then
        path = tmp_path / f"random{k}.idx"
        path.write_bytes(data)
        try:
            load_idx(path)
        except IDXError as e:
            assert str(path) in str(e)
    garbage_gz = tmp_path / "not-really.gz"
    garbage_gz.write_bytes(b"this is not gzip at all")
    with pytest.raises(IDXError, match="not a readable gzip"):
        load_idx(garbage_gz)
    truncated_gz = tmp_path / "truncated.gz"
    truncated_gz.write_bytes(gzip.compress(_header() + bytes(6))[:-12])
    with pytest.raises(IDXError):
        load_idx(truncated_gz)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "nope.idx")
    with pytest.raises(IDXError, match="folder"):
        load_idx(tmp_path)


def test_save_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(IDXError, match="int64"):
        save_idx(np.zeros(3, np.int64), tmp_path / "x.idx")
    with pytest.raises(IDXError, match="0-D"):
        save_idx(np.float32(1), tmp_path / "x.idx")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_existing_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "images-idx3-ubyte.gz"
    save_idx(np.ones((2, 2), np.uint8), target)
    before = target.read_bytes()

    def broken_write(self, data):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(gzip.GzipFile, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_idx(np.zeros((5, 5), np.uint8), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_atomic_write_csv_and_header(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2]})
    io.atomic_write_csv(df, tmp_path / "t.csv", index=False)
    assert (tmp_path / "t.csv").read_text() == "a\n1\n2\n"
    save_idx(np.zeros((4, 28, 28), np.uint8), tmp_path / "h.idx")
    dtype, shape = io.read_idx_header(tmp_path / "h.idx")
    assert dtype == np.uint8 and shape == (4, 28, 28)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
@pytest.mark.parametrize("gz", [False, True])
def test_chunked_reader_refuses_exactly_what_load_idx_refuses(tmp_path, case, gz):
    """The CLI's chunked reader accepted IDX files with trailing bytes that load_idx refuses (issue 10)."""
    from core.datasets import iter_idx_chunks

    content, expected = BAD_FILES[case]
    path = tmp_path / (f"bad-{case.replace(' ', '_')}" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(IDXError) as err:
        for _ in iter_idx_chunks(path, 1):
            pass
    assert str(path) in str(err.value) and expected in str(err.value)


@pytest.mark.parametrize("name", ["t.idx", "t.idx.gz"])
def test_chunked_reader_checks_the_whole_file_even_for_a_partial_range(tmp_path, name):
    from core.datasets import iter_idx_chunks

    images = load_idx(SAMPLE / "train-images-idx3-ubyte.gz")[:50]
    save_idx(images, tmp_path / name)
    chunks = list(iter_idx_chunks(tmp_path / name, 7, start=3, stop=40))
    assert [o for o, _ in chunks] == [3, 10, 17, 24, 31, 38]
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), images[3:40])
    with pytest.raises(IDXError, match="over the limit"):
        list(iter_idx_chunks(tmp_path / name, 7, max_bytes=1000))
    raw = _header(dims=(50, 28, 28)) + images.tobytes() + b"\x00\x01"
    (tmp_path / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    with pytest.raises(IDXError, match="2 trailing bytes"):
        list(iter_idx_chunks(tmp_path / name, 7, start=3, stop=10))


def test_gzip_is_recognised_from_its_content(tmp_path):
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    save_idx(array, tmp_path / "a.idx.gz")
    os.replace(tmp_path / "a.idx.gz", tmp_path / "a-idx3-ubyte")  # gzip data without a .gz name
    np.testing.assert_array_equal(load_idx(tmp_path / "a-idx3-ubyte"), array)
    save_idx(array, tmp_path / "b.idx")
    os.replace(tmp_path / "b.idx", tmp_path / "b.gz")  # as a browser leaves a decompressed download
    np.testing.assert_array_equal(load_idx(tmp_path / "b.gz"), array)
    (tmp_path / "c.gz").write_bytes(b"<html>not found</html>")
    with pytest.raises(IDXError, match=r"wrong magic number .* \(the name ends in .gz, but the file is not "
                                       r"gzip-compressed either"):
        load_idx(tmp_path / "c.gz")


def test_save_idx_parameter_names_as_the_original(tmp_path):
    import inspect

    assert list(inspect.signature(save_idx).parameters) == ["data", "path"]
    save_idx(data=np.ones(3, np.uint8), path=tmp_path / "k.idx")
    np.testing.assert_array_equal(load_idx(tmp_path / "k.idx"), np.ones(3, np.uint8))


def test_read_limits_validation():
    from core.io import DEFAULT_LIMITS, ReadLimits

    assert DEFAULT_LIMITS.max_bytes == 4 * 2 ** 30 and DEFAULT_LIMITS.max_digits == 10_000_000
    assert DEFAULT_LIMITS.max_image_pixels == 64_000_000
    with pytest.raises(ValueError, match="max_digits must be a positive integer"):
        ReadLimits(max_digits=0)
    with pytest.raises(ValueError):
        ReadLimits(max_bytes=1.5)


def test_a_plain_file_read_error_is_not_called_a_gzip_problem(tmp_path, monkeypatch):
    import errno

    save_idx(np.zeros((2, 3), np.uint8), tmp_path / "a.idx")
    real_open = io.open_regular_file

    class FailingDisk:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            raise OSError(errno.EIO, "Input/output error")

        readinto = read

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(io, "open_regular_file", lambda *a, **k: FailingDisk(real_open(*a, **k)))
    with pytest.raises(IDXError) as err:
        load_idx(tmp_path / "a.idx")
    assert "cannot read (Input/output error)" in str(err.value) and "gzip" not in str(err.value)
