"""Read limits are exact: a file of exactly the limit is read, one byte more is refused (a raised limit, even by
a little, fails here)."""
import numpy as np
import pytest

from core.io import IDXError, UnreadableFileError, check_size, load_idx, save_idx


def test_check_size_refuses_one_byte_over():
    check_size(1000, 1000, "x.npy", "the array")
    with pytest.raises(UnreadableFileError, match=r"x.npy: the array would take .*1,001 bytes.*over the limit"):
        check_size(1001, 1000, "x.npy", "the array")


@pytest.mark.parametrize("name", ["d-images-idx3-ubyte", "d-images-idx3-ubyte.gz"])
def test_load_idx_limit_is_exact(tmp_path, published_digits, name):
    images = published_digits[0][:100]  # 78,400 bytes of real digits
    save_idx(images, tmp_path / name)
    np.testing.assert_array_equal(load_idx(tmp_path / name, max_bytes=images.nbytes), images)
    with pytest.raises(IDXError, match="over the limit"):
        load_idx(tmp_path / name, max_bytes=images.nbytes - 1)
