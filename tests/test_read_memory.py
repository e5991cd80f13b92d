"""Reads are bounded by memory (ReadLimits.max_memory), estimated from declared shapes before anything is
materialised; decoders open regular files only; the reading layer does not import the samples layer."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.decoders import DecoderError, as_decoder
from core.io import DEFAULT_LIMITS, ReadLimits, UnreadableFileError
from core.reading import read_dataset, read_peak_bytes
from hostile import npz_declaring
from core.samples import SampleFormatError, load_samples

ROOT = Path(__file__).resolve().parents[1]


def test_default_memory_limit_is_one_gib():
    assert DEFAULT_LIMITS.max_memory == 2 ** 30
    with pytest.raises(ValueError, match="max_memory"):
        ReadLimits(max_memory=0)


def test_npz_declaring_millions_of_digits_refused_before_reading(tmp_path):
    path = npz_declaring(tmp_path / "declared.npz", (400_000, 28, 28), "<f4")  # 1.25 GB declared, ~1.3 MB on disk
    assert path.stat().st_size < 3_000_000
    with pytest.raises(UnreadableFileError, match=r"max_memory"):
        read_dataset(path)
    with pytest.raises(SampleFormatError, match=r"max_memory"):
        load_samples(path)


def test_memory_limit_is_configurable(tmp_path):
    path = npz_declaring(tmp_path / "small.npz", (100, 28, 28), "<f4")
    assert len(read_dataset(path)) == 100
    peak = read_peak_bytes((100, 28, 28), np.float32)
    assert peak == 100 * 784 * (4 + 9)
    with pytest.raises(UnreadableFileError, match=f"{peak:,} bytes of memory.*limit of {peak - 1:,}"):
        read_dataset(path, limits=ReadLimits(max_memory=peak - 1))
    assert len(read_dataset(path, limits=ReadLimits(max_memory=peak))) == 100


def test_stride_zero_tensor_refused_before_materialising(tmp_path):
    torch = pytest.importorskip("torch")  # optional dependency of the PyTorch reader
    path = tmp_path / "stride0.pt"
    torch.save(torch.zeros(1).expand(700_000, 28, 28), path)
    assert path.stat().st_size < 4_000
    with pytest.raises(UnreadableFileError, match=r"\(700000, 28, 28\).*max_memory"):
        read_dataset(path)
    with pytest.raises(SampleFormatError, match=r"max_memory"):
        load_samples(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_decoder_fifo_refused_not_opened(tmp_path):
    fifo = tmp_path / "x.onnx"
    os.mkfifo(fifo)
    with pytest.raises(DecoderError, match="x.onnx"):
        as_decoder(str(fifo))


def test_reading_does_not_import_samples():
    code = "import sys, core.reading; print('core.samples' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_idx_files_bounded_by_memory(tmp_path):
    from core.io import save_idx
    path = tmp_path / "digits-images-idx3-ubyte"
    save_idx(np.full((100, 28, 28), 7, np.uint8), path)
    tight = ReadLimits(max_memory=100 * 784 - 1)
    with pytest.raises(UnreadableFileError, match="max_memory"):
        read_dataset(path, limits=tight, display_name="digits.idx")
    with pytest.raises(SampleFormatError, match="max_memory"):
        load_samples(path, limits=tight)
    assert len(read_dataset(path, limits=ReadLimits(max_memory=100 * 784), display_name="digits.idx")) == 100
