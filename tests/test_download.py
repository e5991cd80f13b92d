"""`core.download` and `morpho download` against a real HTTP server on 127.0.0.1 (no outside network).

The server serves small IDX test files under several mirror prefixes, honours ``Range`` requests, and can
be told to drop a connection part-way, to ignore ranges, to serve corrupted bytes or to answer 404.
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from core import download
from core.cli import main
from core.download import DownloadError, download_file, download_mnist
from core.io import load_idx, save_idx


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def payloads(tmp_path_factory) -> dict[str, bytes]:
    """Four small IDX files named like MNIST's (gzip, reproducible), made from real-format arrays."""
    folder = tmp_path_factory.mktemp("payloads")
    rng = np.random.default_rng(7)
    out = {}
    for split, n in (("train", 300), ("t10k", 120)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for name, arr in ((f"{split}-images-idx3-ubyte.gz", images), (f"{split}-labels-idx1-ubyte.gz", labels)):
            save_idx(arr, folder / name)
            out[name] = (folder / name).read_bytes()
    return out


class _Server:
    """Mirrors under /good/, /flaky/ (drops the first transfer of each file after `cut` bytes), /norange/
    (ignores Range), /bad/ (one flipped byte), /missing/ (404)."""

    def __init__(self, files: dict[str, bytes], cut: int = 64):
        self.files = files
        self.cut = cut
        self.requests: list[tuple[str, str | None]] = []
        self.dropped: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_GET(self):
                rng_header = self.headers.get("Range")
                server.requests.append((self.path, rng_header))
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or parts[1] not in server.files or parts[0] == "missing":
                    self.send_error(404)
                    return
                mirror, name = parts
                data = server.files[name]
                if mirror == "bad":
                    data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
                start = 0
                if rng_header and mirror != "norange":
                    start = int(rng_header.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mirror == "flaky" and name not in server.dropped:
                    server.dropped.add(name)
                    self.wfile.write(body[:server.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def mirror(self, name: str) -> str:
        return f"{self.url}/{name}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(payloads):
    s = _Server(payloads)
    yield s
    s.close()


@pytest.fixture
def sums(payloads) -> dict[str, str]:
    return {name: _sha(data) for name, data in payloads.items()}


def _no_part_files(folder: Path) -> bool:
    return not any(p.name.endswith(".part") for p in folder.iterdir())


def test_official_checksums_and_mirrors():
    assert set(download.MNIST_FILES) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
    assert download.MNIST_FILES["t10k-images-idx3-ubyte.gz"] == \
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    assert all(len(v) == 64 for v in download.MNIST_FILES.values())
    assert any("ossci-datasets" in m for m in download.MIRRORS)


def test_download_falls_back_to_next_mirror(server, sums, payloads, tmp_path):
    results = download_mnist(tmp_path / "mnist", mirrors=[server.mirror("missing"), server.mirror("good")],
                             files=sums, progress=False)
    assert [r.status for r in results] == ["downloaded"] * 4
    for r in results:
        assert r.url.startswith(server.mirror("good"))
        assert r.path.read_bytes() == payloads[r.path.name]
    assert load_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").shape == (120, 28, 28)
    assert _no_part_files(tmp_path / "mnist")


def test_interrupted_download_resumes_with_range(server, sums, payloads, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    with pytest.raises(DownloadError, match="connection closed after 64 of"):
        download_file(name, sums[name], tmp_path, mirrors=[server.mirror("flaky")], progress=False)
    assert not (tmp_path / name).exists()  # never a partial file under the final name
    part = tmp_path / f".{name}.part"
    assert part.stat().st_size == 64
    result = download_file(name, sums[name], tmp_path, mirrors=[server.mirror("flaky")], progress=False)
    assert result.status == "resumed"
    assert server.requests[-1] == (f"/flaky/{name}", "bytes=64-")
    assert (tmp_path / name).read_bytes() == payloads[name]
    assert not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, sums, payloads, tmp_path):
    name = "t10k-images-idx3-ubyte.gz"
    (tmp_path / f".{name}.part").write_bytes(payloads[name][:5000])
    result = download_file(name, sums[name], tmp_path, mirrors=[server.mirror("norange")], progress=False)
    assert result.status == "downloaded"
    assert (tmp_path / name).read_bytes() == payloads[name]


def test_corrupted_part_is_discarded_and_refetched(server, sums, payloads, tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / f".{name}.part").write_bytes(b"\x00" * 50)  # garbage from some earlier run
    result = download_file(name, sums[name], tmp_path, mirrors=[server.mirror("good")], progress=False)
    assert result.status == "downloaded"
    assert (tmp_path / name).read_bytes() == payloads[name]
    assert [r for r in server.requests if r[0].endswith(name)] == [(f"/good/{name}", "bytes=50-"),
                                                                   (f"/good/{name}", None)]


def test_checksum_mismatch_everywhere_leaves_nothing(server, sums, tmp_path):
    name = "t10k-images-idx3-ubyte.gz"
    with pytest.raises(DownloadError) as info:
        download_file(name, sums[name], tmp_path, mirrors=[server.mirror("bad"), server.mirror("missing")],
                      progress=False)
    msg = str(info.value)
    assert name in msg and "does not match" in msg and "HTTP 404" in msg
    assert list(tmp_path.iterdir()) == []


def test_bad_mirror_then_good_mirror(server, sums, payloads, tmp_path):
    name = "train-labels-idx1-ubyte.gz"
    result = download_file(name, sums[name], tmp_path, mirrors=[server.mirror("bad"), server.mirror("good")],
                           progress=False)
    assert result.url == server.mirror("good") + name
    assert (tmp_path / name).read_bytes() == payloads[name]


def test_existing_file_is_kept_or_replaced_only_with_force(server, sums, payloads, tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / name).write_bytes(payloads[name])
    n_before = len(server.requests)
    assert download_file(name, sums[name], tmp_path, mirrors=[server.mirror("good")], progress=False).status \
        == "present"
    assert len(server.requests) == n_before  # verified locally, nothing fetched
    (tmp_path / name).write_bytes(b"something else")
    with pytest.raises(DownloadError, match="--force"):
        download_file(name, sums[name], tmp_path, mirrors=[server.mirror("good")], progress=False)
    assert (tmp_path / name).read_bytes() == b"something else"
    download_file(name, sums[name], tmp_path, mirrors=[server.mirror("good")], progress=False, force=True)
    assert (tmp_path / name).read_bytes() == payloads[name]


def test_unreachable_mirror_message(sums, tmp_path):
    # a port nothing listens on (bound then closed)
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    name = "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(DownloadError, match=f"127.0.0.1:{port}"):
        download_file(name, sums[name], tmp_path, mirrors=[f"http://127.0.0.1:{port}/"], progress=False, timeout=5)


def test_cli_download(server, sums, payloads, tmp_path, capsys):
    checks = tmp_path / "SHA256SUMS"
    checks.write_text("".join(f"{v}  {k}\n" for k, v in sums.items()))
    dest = tmp_path / "mnist"
    argv = ["download", "--to", str(dest), "--mirror", server.mirror("missing"), "--mirror", server.mirror("flaky"),
            "--checksums", str(checks), "-q"]
    assert main(argv) == 1  # every file's first transfer through the flaky mirror drops
    err = capsys.readouterr().err
    assert "morpho download: error:" in err and "kept in" in err
    assert sorted(p.name for p in dest.iterdir()) == sorted(f".{n}.part" for n in sums)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("resumed from") == 4 and out.count("sha256 ok") == 4
    for name, data in payloads.items():
        assert (dest / name).read_bytes() == data
        with gzip.open(dest / name) as f:
            assert f.read(2) == b"\x00\x00"
    assert main(argv) == 0  # all present: nothing to do
    assert capsys.readouterr().out.count(": present") == 4


def test_cli_download_bad_checksums_file(tmp_path, capsys):
    bad = tmp_path / "sums.txt"
    bad.write_text("not a checksum line\n")
    assert main(["download", "--to", str(tmp_path), "--checksums", str(bad), "-q"]) == 1
    assert "expected 'SHA256  FILENAME'" in capsys.readouterr().err


def test_unwritable_destination(server, sums, tmp_path):
    import os
    import tempfile
    if os.geteuid() != 0:
        dest = tmp_path / "locked"
        dest.mkdir()
        dest.chmod(0o555)
    else:  # permission bits do not stop root: use a read-only mount
        dest = None
        for cand in (Path("/sys/fs"), Path("/sys"), Path("/proc/self")):
            try:
                fd, p = tempfile.mkstemp(dir=cand)
            except OSError:
                dest = cand
                break
            os.close(fd)
            os.unlink(p)
        if dest is None:
            pytest.skip("no unwritable folder available to root here")
    name = "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(DownloadError, match="not writable"):
        download_file(name, sums[name], dest, mirrors=[server.mirror("good")], progress=False)
    assert not (dest / name).exists()
