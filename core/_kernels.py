"""Compiled loops of the fast measurement path (numba, cached on disk).

Each kernel reproduces, operation for operation, a plain reference implementation elsewhere in ``core``
(named in its docstring), so results are identical to the last bit in the common case and within 1e-12
always; ``tests/test_fast_path.py`` compares them on real digits. Keep the floating-point order of
operations when editing: the released Morpho-MNIST tables depend on it (pixel values are truncated to
uint8 after upsampling, so a last-bit change can flip a pixel).
"""
from __future__ import annotations

import numpy as np
from numba import njit

_OPTS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


# --------------------------------------------------------------------------------------------------
# Resampling (reference: core.resample)
# --------------------------------------------------------------------------------------------------
@njit(**_OPTS)
def mirror_index(coord, size):
    """scikit-image's 'reflect' coordinate map (mirror about the edge pixels: d c b | a b c d | c b a)."""
    dim = size - 1
    if dim == 0:
        return 0
    if coord < 0:
        if (-coord // dim) % 2 != 0:
            return dim - (-coord % dim)
        return -coord % dim
    if coord > dim:
        if (coord // dim) % 2 != 0:
            return dim - (coord % dim)
        return coord % dim
    return coord


@njit(**_OPTS)
def _cubic(x, f0, f1, f2, f3):
    # Catmull-Rom cubic convolution (Keys, 1981) in scikit-image's legacy operation order
    return f1 + 0.5 * x * (f2 - f0 + x * (2.0 * f0 - 5.0 * f1 + 4.0 * f2 - f3 + x * (3.0 * (f1 - f2) + f3 - f0)))


@njit(**_OPTS)
def legacy_bicubic_resize(img, out_rows, out_cols, clip):
    """Resize with the legacy bicubic warp (reference: core.resample.legacy_bicubic_resize_reference).

    Output pixel (i, j) samples the input at row ``fr * i + (0.5 * fr - 0.5)``, col likewise, with
    ``fr = rows / out_rows``; borders mirror. With `clip`, the result is clipped to the input's range.
    """
    rows, cols = img.shape
    fr = rows / out_rows
    fc = cols / out_cols
    r_off = 0.5 * fr - 0.5
    c_off = 0.5 * fc - 0.5
    # column pass first for every input row (the warp interpolates each of 4 rows along columns, then
    # along rows; this is the same arithmetic, computed once per input row instead of 4 times)
    col_base = np.empty(out_cols, np.int64)
    col_x = np.empty(out_cols)
    for j in range(out_cols):
        c = fc * j + c_off
        c0 = np.floor(c)
        col_x[j] = c - c0
        col_base[j] = np.int64(c0) - 1
    tmp = np.empty((rows, out_cols))
    for p in range(rows):
        for j in range(out_cols):
            b = col_base[j]
            tmp[p, j] = _cubic(col_x[j], img[p, mirror_index(b, cols)], img[p, mirror_index(b + 1, cols)],
                               img[p, mirror_index(b + 2, cols)], img[p, mirror_index(b + 3, cols)])
    out = np.empty((out_rows, out_cols))
    lo = img.min()
    hi = img.max()
    for i in range(out_rows):
        r = fr * i + r_off
        r0 = np.floor(r)
        xr = r - r0
        b = np.int64(r0) - 1
        p0 = mirror_index(b, rows)
        p1 = mirror_index(b + 1, rows)
        p2 = mirror_index(b + 2, rows)
        p3 = mirror_index(b + 3, rows)
        for j in range(out_cols):
            v = _cubic(xr, tmp[p0, j], tmp[p1, j], tmp[p2, j], tmp[p3, j])
            if clip:
                if v < lo:
                    v = lo
                elif v > hi:
                    v = hi
            out[i, j] = v
    return out


@njit(**_OPTS)
def _reflect_index(k, n):
    # scipy.ndimage 'reflect' (symmetric about the edge: c b a | a b c | c b a), n >= 1
    period = 2 * n
    k = k % period
    if k < 0:
        k += period
    if k >= n:
        k = period - 1 - k
    return k


@njit(**_OPTS)
def _mirror_index_nd(k, n):
    # scipy.ndimage 'mirror' (about the edge pixel centre: c b | a b c | b a), n >= 2
    if n == 1:
        return 0
    period = 2 * n - 2
    k = k % period
    if k < 0:
        k += period
    if k >= n:
        k = period - k
    return k


@njit(**_OPTS)
def _extension(n, r, mirror):
    # source index of each position -r .. n + r - 1 of a line extended at both ends
    idx = np.empty(n + 2 * r, np.int64)
    for k in range(-r, n + r):
        idx[k + r] = _mirror_index_nd(k, n) if mirror else _reflect_index(k, n)
    return idx


@njit(**_OPTS)
def gaussian_smooth(img, weights, mirror):
    """Separable symmetric correlation, rows then columns (reference: scipy.ndimage.correlate1d).

    `weights` has odd length 2r+1 and is symmetric. Each output value accumulates as scipy's
    symmetric-kernel loop does: ``x[i] * w[r] + sum_{k=r..1} (x[i-k] + x[i+k]) * w[r-k]``. Borders: ndimage
    'reflect', or 'mirror' when `mirror` is true.
    """
    rows, cols = img.shape
    r = weights.shape[0] // 2
    mid = weights[r]
    ri = _extension(rows, r, mirror)
    ci = _extension(cols, r, mirror)
    # pass along axis 0, written row by row so that the inner loop runs over contiguous columns
    tmp = np.empty((rows, cols))
    for i in range(rows):
        src = img[ri[i + r]]
        for j in range(cols):
            tmp[i, j] = src[j] * mid
        for k in range(r, 0, -1):
            a = img[ri[i + r - k]]
            b = img[ri[i + r + k]]
            w = weights[r - k]
            for j in range(cols):
                tmp[i, j] += (a[j] + b[j]) * w
    out = np.empty((rows, cols))
    line = np.empty(cols + 2 * r)
    for i in range(rows):
        for k in range(cols + 2 * r):
            line[k] = tmp[i, ci[k]]
        for j in range(cols):
            c = j + r
            acc = line[c] * mid
            for k in range(r, 0, -1):
                acc += (line[c - k] + line[c + k]) * weights[r - k]
            out[i, j] = acc
    return out


@njit(**_OPTS)
def to_uint8_truncate(img):
    """``(255. * img).astype(np.uint8)`` for values in [0, 1] (truncation, as the original code)."""
    rows, cols = img.shape
    out = np.empty((rows, cols), np.uint8)
    for i in range(rows):
        for j in range(cols):
            v = 255.0 * img[i, j]
            if v < 0.0:
                v = 0.0
            out[i, j] = np.uint8(np.int64(v))
    return out


@njit(**_OPTS)
def bilinear_warp(img, coords_r, coords_c):
    """Bilinear sampling with zero outside (reference: scipy.ndimage.map_coordinates(order=1, cval=0))."""
    rows, cols = img.shape
    out_r, out_c = coords_r.shape
    out = np.empty((out_r, out_c))
    for i in range(out_r):
        for j in range(out_c):
            r = coords_r[i, j]
            c = coords_c[i, j]
            if not (r > -1.0 and r < rows and c > -1.0 and c < cols):
                out[i, j] = 0.0
                continue
            r0 = np.int64(np.floor(r))
            c0 = np.int64(np.floor(c))
            dr = r - r0
            dc = c - c0
            v00 = img[r0, c0] if (r0 >= 0 and c0 >= 0) else 0.0
            v01 = img[r0, c0 + 1] if (r0 >= 0 and c0 + 1 < cols) else 0.0
            v10 = img[r0 + 1, c0] if (r0 + 1 < rows and c0 >= 0) else 0.0
            v11 = img[r0 + 1, c0 + 1] if (r0 + 1 < rows and c0 + 1 < cols) else 0.0
            out[i, j] = (1.0 - dr) * ((1.0 - dc) * v00 + dc * v01) + dr * ((1.0 - dc) * v10 + dc * v11)
    return out


# --------------------------------------------------------------------------------------------------
# Binarisation, distance transform, medial axis (reference: core.skeleton)
# --------------------------------------------------------------------------------------------------
@njit(**_OPTS)
def binarise(hires, threshold):
    """``hires >= min + (max - min) * threshold`` (reference: core.morpho.binarise)."""
    lo = hires.min()
    hi = hires.max()
    level = lo + (hi - lo) * threshold
    rows, cols = hires.shape
    out = np.empty((rows, cols), np.bool_)
    for i in range(rows):
        for j in range(cols):
            out[i, j] = hires[i, j] >= level
    return out


@njit(**_OPTS)
def squared_edt(binary):
    """Exact squared Euclidean distance of each foreground pixel to the nearest background pixel.

    Meijster, Roerdink & Hesselink (2000): column distances, then the lower envelope of parabolas along
    each row, in integers. Pixels outside the image do not count as background, as in
    scipy.ndimage.distance_transform_edt. Returns int64 (rows, cols), 0 on the background; an image with
    no background gets distances larger than any in-image distance.
    """
    rows, cols = binary.shape
    inf = rows + cols  # stands for 'no background in this column'; larger than any real distance
    g = np.empty((rows, cols), np.int64)
    for j in range(cols):
        d = inf
        for i in range(rows):
            if not binary[i, j]:
                d = 0
            elif d < inf:
                d += 1
            g[i, j] = d
        d = inf
        for i in range(rows - 1, -1, -1):
            if not binary[i, j]:
                d = 0
            elif d < inf:
                d += 1
            if d < g[i, j]:
                g[i, j] = d
    out = np.empty((rows, cols), np.int64)
    s = np.empty(cols, np.int64)
    t = np.empty(cols, np.int64)
    for i in range(rows):
        q = 0
        s[0] = 0
        t[0] = 0
        for u in range(1, cols):
            gu = g[i, u]
            while q >= 0:
                sq = s[q]
                gs = g[i, sq]
                if (t[q] - sq) * (t[q] - sq) + gs * gs > (t[q] - u) * (t[q] - u) + gu * gu:
                    q -= 1
                else:
                    break
            if q < 0:
                q = 0
                s[0] = u
            else:
                sq = s[q]
                gs = g[i, sq]
                w = 1 + (u * u - sq * sq + gu * gu - gs * gs) // (2 * (u - sq))
                if w < cols:
                    q += 1
                    s[q] = u
                    t[q] = w
        for u in range(cols - 1, -1, -1):
            sq = s[q]
            gs = g[i, sq]
            out[i, u] = (u - sq) * (u - sq) + gs * gs
            if u == t[q]:
                q -= 1
    return out


@njit(**_OPTS)
def _mt_init(seed, mt):
    mt[0] = seed & 0xFFFFFFFF
    for i in range(1, 624):
        prev = mt[i - 1]
        mt[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF


@njit(**_OPTS)
def _mt_twist(mt):
    for kk in range(624):
        y = (mt[kk] & 0x80000000) | (mt[(kk + 1) % 624] & 0x7FFFFFFF)
        v = mt[(kk + 397) % 624] ^ (y >> 1)
        if y & 1:
            v ^= 0x9908B0DF
        mt[kk] = v


@njit(**_OPTS)
def legacy_permutation(n, seed):
    """``numpy.random.RandomState(seed).permutation(n)`` (MT19937, legacy bounded integers).

    scikit-image < 0.19 broke ties in the medial axis with this permutation (seed 0).
    """
    mt = np.empty(624, np.int64)
    _mt_init(seed, mt)
    pos = 624
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        mask = i
        mask |= mask >> 1
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        while True:
            if pos >= 624:
                _mt_twist(mt)
                pos = 0
            y = mt[pos]
            pos += 1
            y ^= y >> 11
            y ^= (y << 7) & 0x9D2C5680
            y ^= (y << 15) & 0xEFC60000
            y ^= y >> 18
            y &= 0xFFFFFFFF
            value = y & mask
            if value <= i:
                break
        tmp = perm[i]
        perm[i] = perm[value]
        perm[value] = tmp
    return perm


@njit(**_OPTS)
def _counting_sort(order, key, nkeys):
    # stable reorder of `order` by key[order] in 0..nkeys-1
    counts = np.zeros(nkeys + 1, np.int64)
    for k in range(order.shape[0]):
        counts[key[order[k]] + 1] += 1
    for v in range(nkeys):
        counts[v + 1] += counts[v]
    out = np.empty_like(order)
    for k in range(order.shape[0]):
        v = key[order[k]]
        out[counts[v]] = order[k]
        counts[v] += 1
    return out


@njit(**_OPTS)
def medial_axis(binary, tiebreaker, skel_table, corner_table):
    """Medial axis by ordered thinning (reference: core.skeleton.medial_axis_reference).

    Foreground pixels are visited by increasing distance to the background, then decreasing
    "cornerness" order of the lookup (fewest neighbours last), then `tiebreaker` (a permutation of the
    foreground pixels in raster order); each is removed unless `skel_table` keeps its neighbourhood.

    Returns
    -------
    skeleton : bool (rows, cols)
    distance : float64 (rows, cols), Euclidean distance to the background (0 on the background)
    """
    rows, cols = binary.shape
    d2 = squared_edt(binary)
    n = 0
    for i in range(rows):
        for j in range(cols):
            if binary[i, j]:
                n += 1
    ii = np.empty(n, np.int64)
    jj = np.empty(n, np.int64)
    dk = np.empty(n, np.int64)
    ck = np.empty(n, np.int64)
    distance = np.zeros((rows, cols))
    k = 0
    maxd = 0
    for i in range(rows):
        for j in range(cols):
            if binary[i, j]:
                ii[k] = i
                jj[k] = j
                dd = d2[i, j]
                dk[k] = dd
                if dd > maxd:
                    maxd = dd
                distance[i, j] = np.sqrt(np.float64(dd))
                code = 0
                bit = 1
                for di in range(-1, 2):
                    for dj in range(-1, 2):
                        y = i + di
                        x = j + dj
                        if y >= 0 and y < rows and x >= 0 and x < cols and binary[y, x]:
                            code += bit
                        bit *= 2
                ck[k] = corner_table[code]
                k += 1
    # Order by (distance, cornerness, tiebreaker), as numpy.lexsort would: least significant key first,
    # each pass a stable counting sort (sqrt is monotone, so squared distances order alike).
    order = np.empty(n, np.int64)
    for k in range(n):
        order[tiebreaker[k]] = k  # the tiebreaker is a permutation of 0..n-1
    order = _counting_sort(order, ck, 10)
    order = _counting_sort(order, dk, maxd + 1)
    result = binary.copy()
    for idx in range(n):
        o = order[idx]
        i = ii[o]
        j = jj[o]
        acc = 16
        if i > 0:
            if j > 0 and result[i - 1, j - 1]:
                acc += 1
            if result[i - 1, j]:
                acc += 2
            if j < cols - 1 and result[i - 1, j + 1]:
                acc += 4
        if j > 0 and result[i, j - 1]:
            acc += 8
        if j < cols - 1 and result[i, j + 1]:
            acc += 32
        if i < rows - 1:
            if j > 0 and result[i + 1, j - 1]:
                acc += 64
            if result[i + 1, j]:
                acc += 128
            if j < cols - 1 and result[i + 1, j + 1]:
                acc += 256
        result[i, j] = skel_table[acc] != 0
    return result, distance


# --------------------------------------------------------------------------------------------------
# Morphometrics (reference: core.morpho)
# --------------------------------------------------------------------------------------------------
@njit(**_OPTS)
def skeleton_stats(skeleton, distance):
    """(number of pixels, sum of distances, horizontal+vertical links, diagonal links) of a skeleton."""
    rows, cols = skeleton.shape
    npx = 0
    dsum = 0.0
    straight = 0
    diagonal = 0
    for i in range(rows):
        for j in range(cols):
            if not skeleton[i, j]:
                continue
            npx += 1
            dsum += distance[i, j]
            if j + 1 < cols and skeleton[i, j + 1]:
                straight += 1
            if i + 1 < rows:
                if skeleton[i + 1, j]:
                    straight += 1
                if j > 0 and skeleton[i + 1, j - 1]:
                    diagonal += 1
                if j + 1 < cols and skeleton[i + 1, j + 1]:
                    diagonal += 1
    return npx, dsum, straight, diagonal


@njit(**_OPTS)
def raw_moments(img):
    """(m00, sum x*I, sum y*I, sum x^2*I, sum x*y*I, sum y^2*I) of an image, x = column, y = row."""
    rows, cols = img.shape
    m00 = 0.0
    mx = 0.0
    my = 0.0
    mxx = 0.0
    mxy = 0.0
    myy = 0.0
    for i in range(rows):
        for j in range(cols):
            v = np.float64(img[i, j])
            m00 += v
            mx += j * v
            my += i * v
            mxx += j * j * v
            mxy += j * i * v
            myy += i * i * v
    return m00, mx, my, mxx, mxy, myy


@njit(**_OPTS)
def parallelogram_cdfs(img, shear, y_mid):
    """Horizontal (sheared) and vertical mass below each integer location (reference: core.morpho).

    ``hcount[t] = sum I[y, x] over x + .5 < t + shear * (y - y_mid)``; ``vcount[t] = sum I[y, x] over y < t``.
    """
    rows, cols = img.shape
    hcount = np.zeros(cols)
    vcount = np.zeros(rows)
    rowsum = np.zeros(rows)
    prefix = np.zeros(cols + 1)
    for i in range(rows):
        s = 0.0
        prefix[0] = 0.0
        for j in range(cols):
            s += np.float64(img[i, j])
            prefix[j + 1] = s
        rowsum[i] = s
        offset = shear * (i - y_mid)
        k = 0  # number of columns x with x + .5 < t + offset; grows with t
        for t in range(cols):
            bound = t + offset
            while k < cols and k + 0.5 < bound:
                k += 1
            hcount[t] += prefix[k]
    acc = 0.0
    for t in range(rows):
        vcount[t] = acc
        acc += rowsum[t]
    return hcount, vcount
