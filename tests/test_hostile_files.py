"""Hostile files (issue 10): FIFOs and devices, decompression bombs, malformed content, killed writers.

Anything that could block or exhaust memory runs in a child process with a timeout and an address-space
limit, and reports its peak resident memory (``VmHWM``), so a regression fails the test instead of hanging
the suite or the machine.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.io import IDXError, UnreadableFileError, load_idx, save_idx
from core.reading import ReadLimits, read_dataset
from core.samples import SampleFormatError, load_codes, load_samples, load_traversal

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets" / "mnist-5k"

PRELUDE = '''
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # an old reader would fail here, not swap
def attempt(fn):
    try:
        fn()
        return {"type": None, "message": "", "mro": []}
    except BaseException as e:
        return {"type": type(e).__name__, "message": str(e)[:600], "mro": [c.__name__ for c in type(e).__mro__]}
def peak_mb():
    # VmHWM: this process image's peak resident memory. ru_maxrss would also count the parent's memory at
    # fork time, which Linux carries across exec.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def done(**out):
    out["peak_mb"] = peak_mb()
    print("RESULT " + json.dumps(out))
'''


def run_child(code: str, cwd: Path, timeout: float = 60, root: Path = ROOT) -> dict:
    """Run `code` (after PRELUDE) in a fresh interpreter importing `root`; return what it passed to done()."""
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return np.ascontiguousarray(load_idx(ASSETS / "train-images-idx3-ubyte.gz")[:40])


# ------------------------------------------------------------------------------------------------
# Hand-built compressed streams: huge inflated sizes for a few hundred kB of file, built in well under a
# second by repeating one independently decodable deflate segment.
# ------------------------------------------------------------------------------------------------

_SEG = 1 << 22


def _deflate_zeros(prefix: bytes, n: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)]
    segment = c.compress(bytes(_SEG)) + c.flush(zlib.Z_FULL_FLUSH)  # full flush: no back-references across
    k, rest = divmod(n, _SEG)
    parts.append(segment * k)
    parts.append(c.compress(bytes(rest)) + c.flush(zlib.Z_FINISH))
    return b"".join(parts)


def _crc_zeros(prefix: bytes, n: int) -> int:
    crc = zlib.crc32(prefix)
    k, rest = divmod(n, _SEG)
    zero = bytes(_SEG)
    for _ in range(k):
        crc = zlib.crc32(zero, crc)
    return zlib.crc32(bytes(rest), crc)


def gzip_bomb(prefix: bytes, n: int, crc: bool = True) -> bytes:
    """A gzip file of `prefix` followed by `n` zero bytes (valid; with ``crc=False`` its CRC is left 0, which
    only a reader of the whole stream can notice)."""
    body = _deflate_zeros(prefix, n)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body
            + struct.pack("<II", _crc_zeros(prefix, n) if crc else 0, (len(prefix) + n) & 0xFFFFFFFF))


def zip_bomb(member: str, prefix: bytes, n: int) -> bytes:
    """A valid single-member zip (deflate) holding `prefix` + `n` zero bytes (n < 4 GiB)."""
    data = _deflate_zeros(prefix, n)
    crc, size, name = _crc_zeros(prefix, n), len(prefix) + n, member.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name),
                          0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def png_bomb(width: int, height: int) -> bytes:
    """A valid all-black RGBA PNG of width x height pixels, a few hundred kB."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    n = height * (1 + 4 * width)  # every scanline: filter byte 0, then zero pixels
    # zlib stream: header, raw deflate, Adler-32 of the data (of n zeros: a = 1, b = n mod 65521)
    idat = b"\x78\xda" + _deflate_zeros(b"", n) + struct.pack(">I", ((n % 65521) << 16) | 1)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def npy_header(shape, dtype="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# Only regular files
# ------------------------------------------------------------------------------------------------

def test_fifo_and_devices_are_refused_before_reading(tmp_path):
    """A FIFO blocked load_idx/load_samples forever; a link to /dev/zero was read until MemoryError."""
    os.mkfifo(tmp_path / "samples.npy")
    os.mkfifo(tmp_path / "metrics.csv")
    (tmp_path / "zero-images-idx3-ubyte").symlink_to("/dev/zero")
    (tmp_path / "random.gz").symlink_to("/dev/urandom")
    folder = tmp_path / "data"
    folder.mkdir()
    os.mkfifo(folder / "train-images-idx3-ubyte.gz")
    out = run_child('''
        from core.io import load_idx, read_idx_header
        from core.samples import load_samples, load_traversal, load_codes
        from core.reading import read_dataset, read_metrics_table, sniff
        from core.datasets import find_split, check_split, load_split, iter_idx_chunks, read_metrics
        calls = {
            "load_idx fifo": lambda: load_idx("samples.npy"),
            "load_idx /dev/zero": lambda: load_idx("zero-images-idx3-ubyte"),
            "load_idx /dev/urandom": lambda: load_idx("random.gz"),
            "read_idx_header /dev/zero": lambda: read_idx_header("zero-images-idx3-ubyte"),
            "iter_idx_chunks /dev/urandom": lambda: list(iter_idx_chunks("random.gz", 100)),
            "load_samples fifo": lambda: load_samples("samples.npy"),
            "load_samples /dev/zero": lambda: load_samples("zero-images-idx3-ubyte"),
            "load_traversal /dev/urandom": lambda: load_traversal("random.gz"),
            "load_codes fifo": lambda: load_codes("samples.npy"),
            "read_dataset fifo": lambda: read_dataset("samples.npy"),
            "read_dataset /dev/zero": lambda: read_dataset("zero-images-idx3-ubyte"),
            "read_dataset folder with fifo": lambda: read_dataset("data"),
            "read_metrics_table fifo": lambda: read_metrics_table("metrics.csv"),
            "read_metrics fifo": lambda: read_metrics("metrics.csv"),
            "check_split fifo": lambda: check_split(find_split("data", "train", require_labels=False)),
            "load_split fifo": lambda: load_split(find_split("data", "train", require_labels=False)),
            "sniff /dev/zero": lambda: sniff("zero-images-idx3-ubyte"),
        }
        done(results={k: attempt(f) for k, f in calls.items()})
    ''', tmp_path, timeout=90)
    for call, r in out["results"].items():
        assert "ValueError" in r["mro"], (call, r)
        assert ("FIFO" in r["message"] or "character device" in r["message"]), (call, r)
        assert "only regular files are read" in r["message"], (call, r)
    assert out["peak_mb"] < 200


def test_check_regular_file(tmp_path):
    from core.reading import check_regular_file

    (tmp_path / "f").write_bytes(b"x")
    assert check_regular_file(tmp_path / "f") == tmp_path / "f"
    with pytest.raises(UnreadableFileError, match="is a folder, not a file"):
        check_regular_file(tmp_path)
    with pytest.raises(FileNotFoundError):
        check_regular_file(tmp_path / "missing")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        check_regular_file(tmp_path / "dangling")
    (tmp_path / "dev").symlink_to("/dev/null")
    with pytest.raises(UnreadableFileError, match=r"character device \(a link to /dev/null\)"):
        check_regular_file(tmp_path / "dev", "IDX file")
    import socket

    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s.npy"))
        with pytest.raises(SampleFormatError, match=r"s.npy: is a socket, not a regular file"):
            load_samples(tmp_path / "s.npy")


# ------------------------------------------------------------------------------------------------
# Decompression bombs
# ------------------------------------------------------------------------------------------------

def _idx_prefix(n_digits: int) -> bytes:
    return bytes([0, 0, 8, 3]) + struct.pack(">3I", n_digits, 28, 28) + bytes(784 * min(n_digits, 1))


def test_gzip_bomb_is_never_inflated_past_its_header(tmp_path):
    """A 0.4 MB .gz whose header declares one digit, followed by 400 MiB of zeros: load_idx inflated it all
    before comparing with the header (4.2 GB for a 2 MB file in the issue)."""
    (tmp_path / "bomb-images-idx3-ubyte.gz").write_bytes(gzip_bomb(_idx_prefix(1), 400 << 20))
    assert (tmp_path / "bomb-images-idx3-ubyte.gz").stat().st_size < 1_000_000
    out = run_child('''
        from core.io import load_idx
        from core.datasets import iter_idx_chunks
        from core.samples import load_samples
        r = {"load_idx": attempt(lambda: load_idx("bomb-images-idx3-ubyte.gz")),
             "iter_idx_chunks": attempt(lambda: list(iter_idx_chunks("bomb-images-idx3-ubyte.gz", 1000))),
             "load_samples": attempt(lambda: load_samples("bomb-images-idx3-ubyte.gz"))}
        done(results=r)
    ''', tmp_path)
    for call, r in out["results"].items():
        assert "ValueError" in r["mro"] and "trailing bytes" in r["message"], (call, r)
    assert out["peak_mb"] < 150, out  # the limit is 300 MB; inflating the bomb would take 400+


def test_gzip_header_over_the_limit_or_impossible_for_the_file_is_refused_at_once(tmp_path):
    # 10 million digits (7.8 GB) in a 7.6 MB file: over the 4 GiB default, refused before anything is inflated.
    n = 10_000_000
    (tmp_path / "huge.gz").write_bytes(gzip_bomb(bytes([0, 0, 8, 3]) + struct.pack(">3I", n, 28, 28), n * 784,
                                                 crc=False))
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match=r"7.3 GiB \(7,840,000,000 bytes\), over the limit of 4.0 GiB"):
            load_idx(tmp_path / "huge.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, peak  # refused from the header: no array allocated, nothing inflated
    # 100,000 digits (78 MB) in a 1 kB file: deflate cannot expand 1032:1 that far -- truncated, not inflated.
    (tmp_path / "small.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 100_000, 28, 28)
                                                      + bytes(100_000)))
    with pytest.raises(IDXError, match=r"truncated data: the header declares shape \(100000, 28, 28\).*at most"):
        load_idx(tmp_path / "small.gz")
    # a smaller caller limit
    save_idx(np.zeros((100, 28, 28), np.uint8), tmp_path / "ok.gz")
    with pytest.raises(IDXError, match="over the limit"):
        load_idx(tmp_path / "ok.gz", max_bytes=50_000)
    assert load_idx(tmp_path / "ok.gz", max_bytes=78_400).shape == (100, 28, 28)


def test_npz_bomb_is_refused_from_its_header(tmp_path):
    """A 0.4 MB npz of 500,000 digits (392 MB): the app accepted 2,000,000 (3.5 GB, 20 s) as an upload."""
    n = 500_000
    header = npy_header((n, 28, 28), "|u1")
    (tmp_path / "bomb.npz").write_bytes(zip_bomb("images.npy", header, n * 784))
    assert (tmp_path / "bomb.npz").stat().st_size < 1_000_000
    out = run_child('''
        from core.reading import ReadLimits, read_dataset
        from core.samples import load_samples
        app = ReadLimits(max_bytes=200 << 20, max_digits=100_000)
        small = ReadLimits(max_bytes=100 << 20)
        r = {"load_samples digits": attempt(lambda: load_samples("bomb.npz", limits=app)),
             "load_samples bytes": attempt(lambda: load_samples("bomb.npz", limits=small)),
             "read_dataset digits": attempt(lambda: read_dataset("bomb.npz", limits=app))}
        done(results=r)
    ''', tmp_path)
    r = out["results"]
    assert r["load_samples digits"]["type"] == "SampleFormatError"
    assert "500,000 digits, over the limit of 100,000" in r["load_samples digits"]["message"]
    assert r["load_samples bytes"]["type"] == "SampleFormatError"
    assert "over the limit of 100.0 MiB" in r["load_samples bytes"]["message"]
    assert "ValueError" in r["read_dataset digits"]["mro"] and "over the limit" in r["read_dataset digits"]["message"]
    assert out["peak_mb"] < 150, out


def test_npy_headers_that_lie_are_refused_without_allocating(tmp_path):
    # 2**40 float64 (8 TiB) declared: np.load raised MemoryError.
    (tmp_path / "huge.npy").write_bytes(npy_header((2 ** 40,)) + bytes(800))
    with pytest.raises(SampleFormatError, match=r"truncated data: .* needs 8,796,093,022,208 bytes, the file has 800"):
        load_samples(tmp_path / "huge.npy")
    # a file that does hold what it declares, over a caller's limit
    np.save(tmp_path / "big.npy", np.zeros((1000, 28, 28), np.float32))
    with pytest.raises(SampleFormatError, match=r"over the limit of 1.0 MiB"):
        load_samples(tmp_path / "big.npy", limits=ReadLimits(max_bytes=1 << 20))
    # declares more than the file holds: truncated, said before reading
    (tmp_path / "short.npy").write_bytes(npy_header((10, 28, 28), "|u1") + bytes(100))
    with pytest.raises(SampleFormatError, match=r"truncated data: shape \(10, 28, 28\) of uint8 needs 7,840 bytes"):
        load_samples(tmp_path / "short.npy")
    # inside an npz, the member's stored size bounds it as well
    with zipfile.ZipFile(tmp_path / "short.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", npy_header((10 ** 9, 28, 28), "|u1") + bytes(1000))
    with pytest.raises(SampleFormatError, match=r"short.npz \[x\]: truncated data"):
        load_samples(tmp_path / "short.npz")


def test_png_bomb_is_refused_before_decoding(tmp_path):
    """A 0.3 MB PNG of 8,200 x 8,200 RGBA pixels (269 MB decoded): the issue's 146 KB PNG cost 659 MB before
    being refused; a larger one escaped as PIL's DecompressionBombError."""
    (tmp_path / "bomb.png").write_bytes(png_bomb(8200, 8200))
    (tmp_path / "huge.png").write_bytes(png_bomb(20000, 20000))
    assert (tmp_path / "bomb.png").stat().st_size < 1_000_000
    out = run_child('''
        from core.samples import load_samples
        from core.reading import ReadLimits
        r = {"default": attempt(lambda: load_samples("bomb.png")),
             "small limit": attempt(lambda: load_samples("bomb.png", limits=ReadLimits(max_image_pixels=1_000_000))),
             "pil bomb": attempt(lambda: load_samples("huge.png"))}
        done(results=r)
    ''', tmp_path)
    r = out["results"]
    assert r["default"]["type"] == "SampleFormatError"
    assert "8200x8200 image (67,240,000 pixels), over the limit of 64,000,000 pixels; not decoded" in r["default"]["message"]
    assert r["small limit"]["type"] == "SampleFormatError" and "over the limit of 1,000,000" in r["small limit"]["message"]
    assert r["pil bomb"]["type"] == "SampleFormatError"
    assert out["peak_mb"] < 150, out


# ------------------------------------------------------------------------------------------------
# load_samples: one error type whatever the content, no temporary paths
# ------------------------------------------------------------------------------------------------

def _malformed_files(tmp_path: Path, digits: np.ndarray) -> dict:
    good_png = io.BytesIO()
    Image.fromarray(digits[0]).save(good_png, format="PNG")
    pickled = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94."
    files = {
        "pickle bytes as an npz member": ("zip", {"images.npy": pickled}),
        "npz member not an npy": ("zip", {"images.npy": b"hello world, not numpy"}),
        "zip without arrays": ("zip", {"readme.txt": b"hi"}),
        "truncated PNG": ("raw", good_png.getvalue()[:len(good_png.getvalue()) // 2]),
        "PNG header only": ("raw", good_png.getvalue()[:40]),
        "huge npy header": ("raw", npy_header((2 ** 62,), "<f8")),
        "npy header dict garbage": ("raw", b"\x93NUMPY\x01\x00\x10\x00{'descr': zz}    \n"),
        "npy with an enormous header length": ("raw", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{"),
        "structured npy": ("raw", npy_bytes(np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))),
        "complex npy": ("raw", npy_bytes(np.zeros((2, 28, 28), np.complex64))),
        "string npy": ("raw", npy_bytes(np.array(["a", "b"]))),
        "object npy holding a pickle": ("raw", npy_header((2,), "|O") + pickled),
        "damaged zip": ("raw", b"PK\x03\x04" + bytes(range(256)) * 4),
        "gzip of text": ("raw", gzip.compress(b"just some text\n")),
        "truncated gzip IDX": ("raw", gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 28, 28)
                                                    + bytes(1568))[:-30]),
        "IDX with a wrong type code": ("raw", bytes([0, 0, 8, 3])[:2] + bytes([0x0A, 1, 0, 0, 0, 1, 5])),
        "empty": ("raw", b""),
        "binary junk": ("raw", bytes(range(256))),
        "text": ("raw", b"not,numbers\nfoo,bar\n"),
        "JPEG header only": ("raw", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
        "legacy torch header only": ("raw", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."),
    }
    paths = {}
    for i, (label, (kind, content)) in enumerate(files.items()):
        p = tmp_path / f"case{i}.bin"
        if kind == "zip":
            with zipfile.ZipFile(p, "w") as zf:
                for member, data in content.items():
                    zf.writestr(member, data)
        else:
            p.write_bytes(content)
        paths[label] = p
    return paths


def test_load_samples_raises_only_sample_format_errors(tmp_path, digits):
    secret = tmp_path / "srv-tmp-7f3a"
    secret.mkdir()
    cases = _malformed_files(secret, digits)
    for label, path in cases.items():
        for loader in (load_samples, load_traversal, load_codes):
            try:
                loader(path, display_name="upload.npz")
            except SampleFormatError as e:
                msg = str(e)
                assert "srv-tmp-7f3a" not in msg and str(secret) not in msg, (label, msg)
                assert "upload.npz" in msg, (label, msg)
            except Exception as e:  # pragma: no cover - the failure this test exists for
                pytest.fail(f"{label}: {loader.__name__} raised {type(e).__name__}: {e}")
            else:
                pytest.fail(f"{label}: {loader.__name__} accepted it")


def _mutants(data: bytes, rng, count: int):
    for _ in range(count):
        b = bytearray(data)
        op = rng.integers(4)
        if op == 0:  # flip bytes
            for i in rng.integers(0, len(b), size=rng.integers(1, 8)):
                b[i] = rng.integers(256)
        elif op == 1:  # truncate
            b = b[:rng.integers(0, len(b))]
        elif op == 2:  # append junk
            b += bytes(rng.integers(0, 256, size=rng.integers(1, 64), dtype=np.uint8))
        else:  # overwrite a header field with a large number
            i = int(rng.integers(0, min(len(b), 128)))
            b[i:i + 4] = b"\xff\xff\xff\x7f"
        yield bytes(b)


def test_mutated_files_never_escape_as_other_errors(tmp_path, digits):
    rng = np.random.default_rng(10)
    png = io.BytesIO()
    Image.fromarray(np.concatenate(list(digits[:4]), axis=1)).save(png, format="PNG")
    npz = io.BytesIO()
    np.savez_compressed(npz, images=digits[:8], labels=np.arange(8))
    idx = gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 4, 28, 28) + digits[:4].tobytes())
    sources = {"npy": npy_bytes(digits[:4]), "npz": npz.getvalue(), "png": png.getvalue(), "idx.gz": idx}
    count = 0
    for kind, data in sources.items():
        for j, mutant in enumerate(_mutants(data, rng, 60)):
            p = tmp_path / f"m-{kind}-{j}"
            p.write_bytes(mutant)
            try:
                s = load_samples(p)
                assert s.images.ndim == 3 and s.images.shape[1:] == (28, 28)
            except SampleFormatError as e:
                assert p.name in str(e)
            count += 1
    assert count == 240


# ------------------------------------------------------------------------------------------------
# Killed writers and durable renames
# ------------------------------------------------------------------------------------------------

_WRITER = '''
import sys, time
from core.io import atomic_write
with atomic_write(sys.argv[1], "wb") as f:
    f.write(b"partial data")
    f.flush()
    print("writing", flush=True)
    time.sleep(120)
'''


def _start_writer(target: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def test_parts_of_killed_writers_are_removed_but_live_ones_kept(tmp_path):
    from core.io import remove_stale_parts

    target = tmp_path / "out.csv"
    killed = _start_writer(target)
    live = _start_writer(target)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        parts = sorted(p.name for p in tmp_path.iterdir())
        assert len(parts) == 2 and all(p.startswith(".out.csv.") and p.endswith(".part") for p in parts)
        assert not target.exists()  # kill -9 never leaves a partial final file
        # a part of an older version (no pid): removed only once old; another file's part: never
        legacy_old = tmp_path / ".out.csv.k2j4l9ab.part"
        legacy_new = tmp_path / ".out.csv.zz9xk3qq.part"
        other = tmp_path / f".other.csv.{killed.pid}-00000000.abcd1234.part"
        for p in (legacy_old, legacy_new, other):
            p.write_bytes(b"x")
        os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
        removed = remove_stale_parts(target, older_than=3600)
        names = {p.name for p in removed}
        assert legacy_old.name in names and legacy_new.name not in names and other.name not in names
        assert any(f".{killed.pid}-" in n for n in names)
        left = [p.name for p in tmp_path.iterdir()]
        assert any(f".{live.pid}-" in n for n in left), "the live writer's part must stay"
        assert legacy_new.name in left and other.name in left
    finally:
        live.kill()
        live.wait(10)
        killed.kill()
    assert remove_stale_parts(tmp_path / "missing-folder" / "x.csv") == []


def test_atomic_write_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    import stat as stat_mod

    from core import io as core_io

    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        st = os.fstat(fd)
        synced.append(("folder" if stat_mod.S_ISDIR(st.st_mode) else "file", (tmp_path / "a.idx").exists()))
        return real_fsync(fd)

    monkeypatch.setattr(core_io.os, "fsync", recording_fsync)
    core_io.save_idx(np.arange(10, dtype=np.uint8), tmp_path / "a.idx")
    assert synced == [("file", False), ("folder", True)]
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx"]
    assert oct((tmp_path / "a.idx").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------------------
# read_dataset
# ------------------------------------------------------------------------------------------------

def test_read_dataset_limits_and_messages(tmp_path):
    data = read_dataset(ASSETS)
    assert data.images.shape == (5000, 28, 28) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64 and data.metrics.shape == (5000, 6)
    assert data.split == "train" and data.metrics_source == "CSV train-morpho.csv"
    with pytest.raises(UnreadableFileError, match="5,000 digits, over the limit of 1,000"):
        read_dataset(ASSETS, limits=ReadLimits(max_digits=1000))
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(UnreadableFileError, match="a text file starting with 'hello'"):
        read_dataset(tmp_path / "notes.txt")


def test_read_dataset_upload_messages_name_the_upload(tmp_path):
    hidden = tmp_path / "tmp-upload-91xk"
    hidden.mkdir()
    (hidden / "f").write_bytes(npy_header((10, 28, 28), "|u1") + bytes(100))
    with pytest.raises(UnreadableFileError) as e:
        read_dataset(hidden / "f", display_name="digits.npy")
    assert str(e.value).startswith("digits.npy: truncated data") and "91xk" not in str(e.value)
    np.save(hidden / "g", np.zeros((3, 28, 28), np.uint8))
    data = read_dataset(hidden / "g.npy", display_name="mine.npy")
    assert data.name == "mine.npy" and data.images.shape == (3, 28, 28)


def _print_bomb_figures(trees: list[str]) -> None:
    """Peak memory and time of load_samples on the three bombs, per source tree, each call in a fresh child."""
    import tempfile

    folder = Path(tempfile.mkdtemp())
    (folder / "bomb-images-idx3-ubyte.gz").write_bytes(gzip_bomb(_idx_prefix(1), 400 << 20))
    (folder / "bomb.npz").write_bytes(zip_bomb("images.npy", npy_header((500_000, 28, 28), "|u1"), 500_000 * 784))
    (folder / "bomb.png").write_bytes(png_bomb(8200, 8200))
    cases = {"gzip IDX, 0.4 MB -> 400 MiB": ("bomb-images-idx3-ubyte.gz", None),
             "npz, 0.4 MB, 500,000 digits (max_digits=100,000)": ("bomb.npz", 100_000),
             "PNG, 0.3 MB, 8200x8200 RGBA": ("bomb.png", None)}
    for label, (name, max_digits) in cases.items():
        cells = []
        for tree in trees:
            kw = "" if max_digits is None else f", limits=ReadLimits(max_digits={max_digits})"
            code = f'''
                import time
                from core.samples import load_samples
                try:
                    from core.reading import ReadLimits
                except ImportError:  # the old tree: no limits at all
                    ReadLimits = None
                t = time.perf_counter()
                kw = "{kw}" if ReadLimits else ""
                r = attempt(lambda: eval("load_samples('{name}'" + kw + ")"))
                done(result=r["type"] or "accepted", seconds=time.perf_counter() - t)
            '''
            out = run_child(code, folder, timeout=300, root=Path(tree))
            cells.append(f"{out['result']}, peak {out['peak_mb']:.0f} MB, {out['seconds']:.2f} s")
        print(f"{label}: " + " | ".join(f"{t}: {c}" for t, c in zip(trees, cells)))


if __name__ == "__main__":
    # python tests/test_hostile_files.py [OLD_TREE ...]: figures for this tree and any other source trees
    # (e.g. `git archive <old commit> core | tar -x -C /tmp/old`).
    _print_bomb_figures(sys.argv[1:] + [str(ROOT)])
