"""Compiled loops of the fast measurement path (numba, cached on disk).

Each kernel reproduces, operation for operation, a plain reference implementation elsewhere in ``core``
(named in its docstring), so results are identical to the last bit in the common case and within 1e-12
always; ``tests/test_fast_path.py`` compares them on real digits. Keep the floating-point order of
operations when editing: the released Morpho-MNIST tables depend on it (pixel values are truncated to
uint8 after upsampling, so a last-bit change can flip a pixel).
"""
from __future__ import annotations

import math

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
def _smooth_axis1(img, weights, ci, i0, i1, j0, j1, out):
    # gaussian_smooth's second pass for outputs i0..i1-1, j0..j1-1 (float output)
    r = weights.shape[0] // 2
    mid = weights[r]
    cols = img.shape[1]
    n = j1 - j0
    line = np.empty(cols + 2 * r)
    for i in range(i0, i1):
        row = img[i]
        for k in range(j0, j1 + 2 * r):
            line[k] = row[ci[k]]
        centre = line[j0 + r:j1 + r]
        acc = out[i, j0:j1]
        for j in range(n):
            acc[j] = centre[j] * mid
        for k in range(r, 0, -1):
            w = weights[r - k]
            lm = line[j0 + r - k:j1 + r - k]
            lp = line[j0 + r + k:j1 + r + k]
            for j in range(n):
                acc[j] += (lm[j] + lp[j]) * w


@njit(**_OPTS)
def gaussian_smooth(img, weights, mirror):
    """Separable symmetric correlation, rows then columns (reference: scipy.ndimage.correlate1d).

    `weights` has odd length 2r+1 and is symmetric. Each output value accumulates as scipy's
    symmetric-kernel loop does: ``x[i] * w[r] + sum_{k=r..1} (x[i-k] + x[i+k]) * w[r-k]``. Borders: ndimage
    'reflect', or 'mirror' when `mirror` is true.
    """
    rows, cols = img.shape
    r = weights.shape[0] // 2
    ri = _extension(rows, r, mirror)
    ci = _extension(cols, r, mirror)
    tmp = np.empty((rows, cols))
    _smooth_axis0(img, weights, ri, 0, rows, 0, cols, tmp)
    out = np.empty((rows, cols))
    _smooth_axis1(tmp, weights, ci, 0, rows, 0, cols, out)
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
    # a point whose 4 neighbours all lie outside the box of non-zero pixels samples exactly 0.0, so
    # only points within a pixel of that box need the arithmetic (same result, most of the image skipped)
    b0, b1, b2, b3 = _nonzero_box(img)
    lo_r = max(b0 - 1.0, -1.0)
    hi_r = min(np.float64(b1), np.float64(rows))
    lo_c = max(b2 - 1.0, -1.0)
    hi_c = min(np.float64(b3), np.float64(cols))
    for i in range(out_r):
        for j in range(out_c):
            r = coords_r[i, j]
            c = coords_c[i, j]
            if not (r > lo_r and r < hi_r and c > lo_c and c < hi_c):
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
def squared_edt(binary):
    """Exact squared Euclidean distance transform (see _squared_edt_full), computed on the foreground's box
    grown by one pixel: the nearest background pixel of any foreground pixel lies in that box (clamping a
    farther one onto the box brings it closer and keeps it outside the foreground), so the result is the
    same. int64 (rows, cols), 0 on the background."""
    rows, cols = binary.shape
    count, fbox = foreground_box(binary)
    r0 = max(fbox[0] - 1, 0)
    r1 = min(fbox[1] + 1, rows)
    c0 = max(fbox[2] - 1, 0)
    c1 = min(fbox[3] + 1, cols)
    if count == 0 or (r0 == 0 and c0 == 0 and r1 == rows and c1 == cols):
        return _squared_edt_full(binary)
    out = np.zeros((rows, cols), np.int64)
    out[r0:r1, c0:c1] = _squared_edt_full(binary[r0:r1, c0:c1].copy())
    return out


@njit(**_OPTS)
def _squared_edt_full(binary):
    """Exact squared Euclidean distance of each foreground pixel to the nearest background pixel.

    Meijster, Roerdink & Hesselink (2000): column distances, then the lower envelope of parabolas along
    each row, in integers. Pixels outside the image do not count as background, as in
    scipy.ndimage.distance_transform_edt. Returns int64 (rows, cols), 0 on the background; an image with
    no background gets distances larger than any in-image distance.
    """
    rows, cols = binary.shape
    inf = rows + cols  # stands for 'no background in this column'; larger than any real distance
    g = np.empty((rows, cols), np.int64)
    # vertical distances, all columns at once row by row (contiguous, vectorisable inner loops)
    d = np.full(cols, inf, np.int64)
    for i in range(rows):
        b = binary[i]
        gi = g[i]
        for j in range(cols):
            dj = d[j] + 1 if d[j] < inf else inf
            dj = dj if b[j] else 0
            d[j] = dj
            gi[j] = dj
    d[:] = inf
    for i in range(rows - 1, -1, -1):
        b = binary[i]
        gi = g[i]
        for j in range(cols):
            dj = d[j] + 1 if d[j] < inf else inf
            dj = dj if b[j] else 0
            d[j] = dj
            if dj < gi[j]:
                gi[j] = dj
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
                # floor division in float64: exact for these small integers, and much cheaper than int64
                w = 1 + np.int64(np.floor(np.float64(u * u - sq * sq + gu * gu - gs * gs) / np.float64(2 * (u - sq))))
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
def squared_edt_thin(binary):
    """squared_edt for thin shapes (strokes): the same exact integers, found by a local search.

    After the vertical pass (distance g[v] to the nearest background pixel in column v), the squared
    distance of a foreground pixel u of a row is ``min_v (u - v)**2 + g[v]**2``. Columns beyond the
    background pixel ending u's horizontal run never win (that pixel is nearer), and columns at
    horizontal offset o only matter while ``o**2`` is below the best value so far, so the search stops
    after about the stroke's half-width: much cheaper than the lower-envelope pass on digit strokes.
    """
    rows, cols = binary.shape
    inf = rows + cols
    g = np.empty((rows, cols), np.int64)
    d = np.full(cols, inf, np.int64)
    for i in range(rows):
        b = binary[i]
        gi = g[i]
        for j in range(cols):
            dj = d[j] + 1 if d[j] < inf else inf
            dj = dj if b[j] else 0
            d[j] = dj
            gi[j] = dj
    d[:] = inf
    for i in range(rows - 1, -1, -1):
        b = binary[i]
        gi = g[i]
        for j in range(cols):
            dj = d[j] + 1 if d[j] < inf else inf
            dj = dj if b[j] else 0
            d[j] = dj
            if dj < gi[j]:
                gi[j] = dj
    out = np.zeros((rows, cols), np.int64)
    for i in range(rows):
        b = binary[i]
        gi = g[i]
        oi = out[i]
        j = 0
        while j < cols:
            if not b[j]:
                j += 1
                continue
            a = j  # run [a, e) of foreground pixels
            while j < cols and b[j]:
                j += 1
            e = j
            for u in range(a, e):
                best = gi[u] * gi[u]
                if a > 0:
                    best = min(best, (u - a + 1) * (u - a + 1))
                if e < cols:
                    best = min(best, (e - u) * (e - u))
                o = 1
                while o * o < best:
                    if u - o >= a:
                        gv = gi[u - o]
                        best = min(best, o * o + gv * gv)
                    if u + o < e:
                        gv = gi[u + o]
                        best = min(best, o * o + gv * gv)
                    o += 1
                oi[u] = best
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
    d2 = squared_edt_thin(binary)
    # the image in a zero frame, flattened: the 8 neighbours of flat index f are f +- 1, f +- w, f +- w +- 1,
    # with no bounds tests (pixels outside the image count as background here, as in the reference)
    w = cols + 2
    padded = np.zeros((rows + 2) * w, np.uint8)
    n = 0
    for i in range(rows):
        b = binary[i]
        base = (i + 1) * w + 1
        for j in range(cols):
            v = 1 if b[j] else 0
            padded[base + j] = v
            n += v
    pos = np.empty(n, np.int64)
    dk = np.empty(n, np.int64)
    ck = np.empty(n, np.int64)
    distance = np.zeros((rows, cols))
    k = 0
    maxd = 0
    for i in range(rows):
        b = binary[i]
        for j in range(cols):
            if b[j]:
                f = (i + 1) * w + j + 1
                pos[k] = f
                dd = d2[i, j]
                dk[k] = dd
                if dd > maxd:
                    maxd = dd
                distance[i, j] = np.sqrt(np.float64(dd))
                code = (padded[f - w - 1] + 2 * padded[f - w] + 4 * padded[f - w + 1] + 8 * padded[f - 1] + 16
                        + 32 * padded[f + 1] + 64 * padded[f + w - 1] + 128 * padded[f + w]
                        + 256 * padded[f + w + 1])
                ck[k] = corner_table[code]
                k += 1
    # Order by (distance, cornerness, tiebreaker), as numpy.lexsort would: least significant key first,
    # each pass a stable counting sort (sqrt is monotone, so squared distances order alike).
    order = np.empty(n, np.int64)
    for k in range(n):
        order[tiebreaker[k]] = k  # the tiebreaker is a permutation of 0..n-1
    order = _counting_sort(order, ck, 10)
    order = _counting_sort(order, dk, maxd + 1)
    for idx in range(n):
        f = pos[order[idx]]
        code = (padded[f - w - 1] + 2 * padded[f - w] + 4 * padded[f - w + 1] + 8 * padded[f - 1] + 16
                + 32 * padded[f + 1] + 64 * padded[f + w - 1] + 128 * padded[f + w] + 256 * padded[f + w + 1])
        padded[f] = 1 if skel_table[code] != 0 else 0
    result = np.empty((rows, cols), np.bool_)
    for i in range(rows):
        base = (i + 1) * w + 1
        for j in range(cols):
            result[i, j] = padded[base + j] != 0
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


# --------------------------------------------------------------------------------------------------
# numpy.random.default_rng(seed).permutation(n) (reference: numpy's PCG64 and Generator.shuffle)
# --------------------------------------------------------------------------------------------------
_U32 = np.uint64(0xFFFFFFFF)
_MULT_HI = np.uint64(2549297995355413924)   # PCG's default 128-bit multiplier, high and low words
_MULT_LO = np.uint64(4865540595714422341)


@njit(**_OPTS)
def _mulhi64(a, b):
    # high 64 bits of the 128-bit product of two uint64 (schoolbook on 32-bit halves)
    a_lo = a & _U32
    a_hi = a >> np.uint64(32)
    b_lo = b & _U32
    b_hi = b >> np.uint64(32)
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    hi_hi = a_hi * b_hi
    cross = (lo_lo >> np.uint64(32)) + (hi_lo & _U32) + lo_hi
    return (hi_lo >> np.uint64(32)) + (cross >> np.uint64(32)) + hi_hi


@njit(**_OPTS)
def pcg64_permutation(n, state):
    """``numpy.random.default_rng(seed).permutation(n)`` for the PCG64 `state` of that seed.

    `state` is uint64 (4,): the generator's 128-bit state and increment as (state_hi, state_lo, inc_hi,
    inc_lo), taken from ``default_rng(seed).bit_generator.state`` before any draw. Reproduces PCG64's
    XSL-RR output, its 32-bit buffering and numpy's masked-rejection ``random_interval`` in
    ``Generator.shuffle`` (scikit-image >= 0.19 breaks medial-axis ties with it, seed 42).
    """
    s_hi = state[0]
    s_lo = state[1]
    inc_hi = state[2]
    inc_lo = state[3]
    has32 = False
    buffered = np.uint64(0)
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        mask = np.uint64(i)
        mask |= mask >> np.uint64(1)
        mask |= mask >> np.uint64(2)
        mask |= mask >> np.uint64(4)
        mask |= mask >> np.uint64(8)
        mask |= mask >> np.uint64(16)
        while True:
            if has32:
                has32 = False
                draw = buffered
            else:
                # state = state * multiplier + increment (mod 2**128), then the XSL-RR output
                new_hi = _mulhi64(s_lo, _MULT_LO) + s_lo * _MULT_HI + s_hi * _MULT_LO
                new_lo = s_lo * _MULT_LO
                s_lo = new_lo + inc_lo
                carry = np.uint64(1) if s_lo < new_lo else np.uint64(0)
                s_hi = new_hi + inc_hi + carry
                x = s_hi ^ s_lo
                rot = s_hi >> np.uint64(58)
                out = (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))
                buffered = out >> np.uint64(32)
                has32 = True
                draw = out & _U32
            value = np.int64(draw & mask)
            if value <= i:
                break
        tmp = perm[i]
        perm[i] = perm[value]
        perm[value] = tmp
    return perm


# --------------------------------------------------------------------------------------------------
# Fused per-digit pipeline: upsampling + Gaussian restricted to the ink's box, binarisation, medial
# axis on the box, and every morphometric in one compiled call (reference: core.measure.measure_details
# with engine="reference"). Pixels outside the box are exactly 0 in the reference too: the legacy
# bicubic and the Gaussian have compact support, so a hi-res pixel whose taps all fall on zero input
# pixels is 0.0 exactly, and adding 0.0 to a sum leaves it unchanged, so values inside the box are
# bit-identical to the full-grid computation.
# --------------------------------------------------------------------------------------------------
@njit(**_OPTS)
def _nonzero_box(img):
    # (r0, r1, c0, c1): half-open box of the non-zero values ((0, 0, 0, 0) if none), in one pass
    rows, cols = img.shape
    colany = np.zeros(cols, np.bool_)
    r0 = rows
    r1 = 0
    for i in range(rows):
        row = img[i]
        anyrow = False
        for j in range(cols):
            nz = row[j] != 0
            colany[j] |= nz
            anyrow |= nz
        if anyrow:
            if i < r0:
                r0 = i
            r1 = i + 1
    if r1 == 0:
        return 0, 0, 0, 0
    c0 = 0
    while not colany[c0]:
        c0 += 1
    c1 = cols
    while not colany[c1 - 1]:
        c1 -= 1
    return r0, r1, c0, c1


@njit(**_OPTS)
def _legacy_taps(n_in, n_out):
    # first tap (before mirroring) and fraction of each output position of the legacy bicubic warp
    f = n_in / n_out
    off = 0.5 * f - 0.5
    base = np.empty(n_out, np.int64)
    frac = np.empty(n_out)
    for j in range(n_out):
        c = f * j + off
        c0 = np.floor(c)
        frac[j] = c - c0
        base[j] = np.int64(c0) - 1
    return base, frac


@njit(**_OPTS)
def _resize_live(base, n_in, lo, hi):
    # [first, last) of output positions whose 4 mirrored taps touch input positions lo..hi-1
    n_out = base.shape[0]
    first = n_out
    last = 0
    for j in range(n_out):
        for t in range(4):
            m = mirror_index(base[j] + t, n_in)
            if m >= lo and m < hi:
                if j < first:
                    first = j
                last = j + 1
                break
    if last == 0:
        return 0, 0
    return first, last


@njit(**_OPTS)
def _smooth_live(ext, r, lo, hi):
    # [first, last) of Gaussian outputs whose taps ext[i .. i + 2r] touch positions lo..hi-1
    n = ext.shape[0] - 2 * r
    first = n
    last = 0
    for i in range(n):
        for k in range(2 * r + 1):
            m = ext[i + k]
            if m >= lo and m < hi:
                if i < first:
                    first = i
                last = i + 1
                break
    if last == 0:
        return 0, 0
    return first, last


@njit(**_OPTS)
def _bicubic_columns(img, cbase, cfrac, p0, p1, j0, j1, tmp):
    # legacy bicubic along columns for input rows p0..p1-1, outputs j0..j1-1
    cols = img.shape[1]
    for p in range(p0, p1):
        for j in range(j0, j1):
            b = cbase[j]
            tmp[p, j] = _cubic(cfrac[j], img[p, mirror_index(b, cols)], img[p, mirror_index(b + 1, cols)],
                               img[p, mirror_index(b + 2, cols)], img[p, mirror_index(b + 3, cols)])


@njit(**_OPTS)
def _bicubic_rows(tmp, rbase, rfrac, i0, i1, j0, j1, lo, hi, res):
    # legacy bicubic along rows for outputs i0..i1-1, j0..j1-1, clipped to [lo, hi].
    # Inner loops run over slices from 0 so that numba can drop its negative-index checks and vectorise.
    rows = tmp.shape[0]
    n = j1 - j0
    for i in range(i0, i1):
        b = rbase[i]
        t0 = tmp[mirror_index(b, rows), j0:j1]
        t1 = tmp[mirror_index(b + 1, rows), j0:j1]
        t2 = tmp[mirror_index(b + 2, rows), j0:j1]
        t3 = tmp[mirror_index(b + 3, rows), j0:j1]
        x = rfrac[i]
        out = res[i, j0:j1]
        for j in range(n):
            v = _cubic(x, t0[j], t1[j], t2[j], t3[j])
            if v < lo:
                v = lo
            elif v > hi:
                v = hi
            out[j] = v


@njit(**_OPTS)
def _smooth_axis0(img, weights, ri, i0, i1, j0, j1, out):
    # gaussian_smooth's first pass for outputs i0..i1-1, j0..j1-1 (loops over slices, as above)
    r = weights.shape[0] // 2
    mid = weights[r]
    n = j1 - j0
    for i in range(i0, i1):
        src = img[ri[i + r], j0:j1]
        acc = out[i, j0:j1]
        for j in range(n):
            acc[j] = src[j] * mid
        for k in range(r, 0, -1):
            a = img[ri[i + r - k], j0:j1]
            b = img[ri[i + r + k], j0:j1]
            w = weights[r - k]
            for j in range(n):
                acc[j] += (a[j] + b[j]) * w


@njit(**_OPTS)
def _smooth_axis1_truncate(img, weights, ci, i0, i1, j0, j1, hires):
    # gaussian_smooth's second pass for outputs i0..i1-1, j0..j1-1, then to_uint8_truncate
    r = weights.shape[0] // 2
    mid = weights[r]
    cols = img.shape[1]
    n = j1 - j0
    line = np.empty(cols + 2 * r)
    acc = np.empty(n)
    for i in range(i0, i1):
        row = img[i]
        for k in range(j0, j1 + 2 * r):
            line[k] = row[ci[k]]
        centre = line[j0 + r:j1 + r]
        for j in range(n):
            acc[j] = centre[j] * mid
        for k in range(r, 0, -1):
            w = weights[r - k]
            lm = line[j0 + r - k:j1 + r - k]
            lp = line[j0 + r + k:j1 + r + k]
            for j in range(n):
                acc[j] += (lm[j] + lp[j]) * w
        out = hires[i, j0:j1]
        for j in range(n):
            v = 255.0 * acc[j]
            if v < 0.0:
                v = 0.0
            out[j] = np.uint8(np.int64(v))


@njit(**_OPTS)
def released_hires(unit, scale, weights):
    """Released-mode hi-res image: legacy bicubic upsampling, Gaussian, truncation to uint8.

    Equal to ``to_uint8_truncate(gaussian_smooth(legacy_bicubic_resize(unit, ...), weights, False))``
    (reference: core.resample.upscale, mode "released"), computed only where the result can be non-zero.

    Parameters
    ----------
    unit : float64 (rows, cols), values in [0, 1]
    scale : int
    weights : float64 (2r+1,), the Gaussian weights

    Returns
    -------
    hires : uint8 (rows * scale, cols * scale)
    box : (r0, r1, c0, c1), the half-open box outside which `hires` is 0
    """
    rows, cols = unit.shape
    out_rows = rows * scale
    out_cols = cols * scale
    r = weights.shape[0] // 2
    lo = unit.min()
    hi = unit.max()
    rbase, rfrac = _legacy_taps(rows, out_rows)
    cbase, cfrac = _legacy_taps(cols, out_cols)
    ri = _extension(out_rows, r, False)
    ci = _extension(out_cols, r, False)
    if lo == 0.0:
        ir0, ir1, ic0, ic1 = _nonzero_box(unit)
    else:  # no zero background: every output can be non-zero
        ir0, ir1, ic0, ic1 = 0, rows, 0, cols
    rr0, rr1 = _resize_live(rbase, rows, ir0, ir1)
    rc0, rc1 = _resize_live(cbase, cols, ic0, ic1)
    gr0, gr1 = _smooth_live(ri, r, rr0, rr1)
    gc0, gc1 = _smooth_live(ci, r, rc0, rc1)
    tmp = np.zeros((rows, out_cols))
    _bicubic_columns(unit, cbase, cfrac, ir0, ir1, rc0, rc1, tmp)
    res = np.zeros((out_rows, out_cols))
    _bicubic_rows(tmp, rbase, rfrac, rr0, rr1, rc0, rc1, lo, hi, res)
    sm = np.zeros((out_rows, out_cols))
    _smooth_axis0(res, weights, ri, gr0, gr1, rc0, rc1, sm)
    hires = np.zeros((out_rows, out_cols), np.uint8)
    _smooth_axis1_truncate(sm, weights, ci, gr0, gr1, gc0, gc1, hires)
    return hires, (gr0, gr1, gc0, gc1)


# scipy.ndimage's cubic B-spline pole, sqrt(3) - 2, as written in scipy/ndimage/src/ni_splines.c
_POLE3 = -0.267949192431122706472553658494127633


@njit(**_OPTS)
def _spline_filter_line(c, n):
    # ni_splines.c apply_filter for order 3, mode 'mirror' (gain, causal and anti-causal passes), in place
    z = _POLE3
    gain = 1.0
    gain *= (1.0 - z) * (1.0 - 1.0 / z)
    for i in range(n):
        c[i] *= gain
    z_i = z
    z_n_1 = math.pow(z, n - 1)
    c[0] = c[0] + z_n_1 * c[n - 1]
    for i in range(1, n - 1):
        c[0] += z_i * (c[i] + z_n_1 * c[n - 1 - i])
        z_i *= z
    c[0] /= 1 - z_n_1 * z_n_1
    for i in range(1, n):
        c[i] += z * c[i - 1]
    c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1)
    for i in range(n - 2, -1, -1):
        c[i] = z * (c[i + 1] - c[i])


@njit(**_OPTS)
def _nd_mirror_coordinate(x, n):
    # ni_interpolation.c map_coordinate, mode 'mirror'
    if x < 0:
        if n <= 1:
            return 0.0
        sz2 = 2 * n - 2
        x = sz2 * np.int64(-x / sz2) + x
        return x + sz2 if x <= 1 - n else -x
    if x > n - 1:
        if n <= 1:
            return 0.0
        sz2 = 2 * n - 2
        x -= sz2 * np.int64(x / sz2)
        if x >= n:
            x = sz2 - x
    return x


@njit(**_OPTS)
def _zoom_taps(n_in, n_out):
    # tap indices (n_out, 4) and cubic B-spline weights (n_out, 4) of ndimage.zoom(grid_mode=True)
    zoom = n_in / n_out
    idx = np.empty((n_out, 4), np.int64)
    w = np.empty((n_out, 4))
    for k in range(n_out):
        cc = np.float64(k)
        cc += 0.5
        cc *= zoom
        cc -= 0.5
        cc = _nd_mirror_coordinate(cc, n_in)
        start = np.int64(np.floor(cc)) - 1
        for t in range(4):
            i = start + t
            if n_in <= 1:
                i = 0
            else:
                s2 = 2 * n_in - 2
                if i < 0:
                    i = s2 * (-i // s2) + i
                    i = i + s2 if i <= 1 - n_in else -i
                elif i >= n_in:
                    i -= s2 * (i // s2)
                    if i >= n_in:
                        i = s2 - i
            idx[k, t] = i
        x = cc - np.floor(cc)
        y = x
        z = 1.0 - x
        w[k, 1] = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0
        w[k, 2] = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0
        w[k, 0] = z * z * z / 6.0
        last = 1.0
        last -= w[k, 0]
        last -= w[k, 1]
        last -= w[k, 2]
        w[k, 3] = last
    return idx, w


@njit(**_OPTS)
def _spline_filter_axis0(c, j0, j1):
    # _spline_filter_line applied to every column j0..j1-1 of c (along axis 0), in place: the same operations
    # on each value, with the loop over columns innermost (contiguous, vectorised)
    n = c.shape[0]
    m = j1 - j0
    z = _POLE3
    gain = 1.0
    gain *= (1.0 - z) * (1.0 - 1.0 / z)
    for i in range(n):
        row = c[i, j0:j1]
        for j in range(m):
            row[j] *= gain
    z_n_1 = math.pow(z, n - 1)
    c0 = c[0, j0:j1]
    cl = c[n - 1, j0:j1]
    for j in range(m):
        c0[j] = c0[j] + z_n_1 * cl[j]
    z_i = z
    for i in range(1, n - 1):
        a = c[i, j0:j1]
        b = c[n - 1 - i, j0:j1]
        for j in range(m):
            c0[j] += z_i * (a[j] + z_n_1 * b[j])
        z_i *= z
    denom = 1 - z_n_1 * z_n_1
    for j in range(m):
        c0[j] /= denom
    for i in range(1, n):
        cur = c[i, j0:j1]
        prev = c[i - 1, j0:j1]
        for j in range(m):
            cur[j] += z * prev[j]
    last = c[n - 1, j0:j1]
    prev = c[n - 2, j0:j1]
    zz = z * z - 1
    for j in range(m):
        last[j] = (z * prev[j] + last[j]) * z / zz
    for i in range(n - 2, -1, -1):
        cur = c[i, j0:j1]
        nxt = c[i + 1, j0:j1]
        for j in range(m):
            cur[j] = z * (nxt[j] - cur[j])


@njit(**_OPTS)
def _spline_coefficients_t(img, j0, j1):
    # scipy's spline_filter(order=3, mode="mirror") of img (axis 0, then axis 1), returned transposed:
    # ct[q, p] = coefficient (p, q). Columns of img outside j0..j1-1 must be all 0.0: they filter to the
    # filtered zero line (computed once), so only j0..j1-1 go through the axis-0 pass.
    rows, cols = img.shape
    c = img.copy()
    if rows > 1:
        if j0 > 0 or j1 < cols:
            zl = np.zeros(rows)
            _spline_filter_line(zl, rows)
            for i in range(rows):
                v = zl[i]
                row = c[i]
                for j in range(j0):
                    row[j] = v
                for j in range(j1, cols):
                    row[j] = v
        if j1 > j0:
            _spline_filter_axis0(c, j0, j1)
    ct = np.empty((cols, rows))
    for p in range(rows):
        for q in range(cols):
            ct[q, p] = c[p, q]
    if cols > 1:
        _spline_filter_axis0(ct, 0, rows)
    return ct


@njit(**_OPTS)
def _zoom_sum(ct, out_rows, out_cols, lo, hi):
    # the 4x4 tap sum of ndimage.zoom (grid_mode, mirror) over coefficients ct (transposed), clipped
    cols, rows = ct.shape
    ridx, rw = _zoom_taps(rows, out_rows)
    cidx, cw = _zoom_taps(cols, out_cols)
    # gather the 4 column taps of every coefficient row once: g[p, t, j] = c[p, cidx[j, t]]
    g = np.empty((rows, 4, out_cols))
    for j in range(out_cols):
        for t in range(4):
            src = ct[cidx[j, t]]
            for p in range(rows):
                g[p, t, j] = src[p]
    cwt = np.empty((4, out_cols))
    for t in range(4):
        for j in range(out_cols):
            cwt[t, j] = cw[j, t]
    out = np.empty((out_rows, out_cols))
    acc = np.empty(out_cols)
    for i in range(out_rows):
        for j in range(out_cols):
            acc[j] = 0.0
        for a in range(4):
            src = g[ridx[i, a]]
            wa = rw[i, a]
            for b in range(4):
                srow = src[b]
                wrow = cwt[b]
                for j in range(out_cols):
                    acc[j] += srow[j] * wa * wrow[j]
        for j in range(out_cols):
            v = acc[j]
            if v < lo:
                v = lo
            elif v > hi:
                v = hi
            out[i, j] = v
    return out


@njit(**_OPTS)
def spline_zoom(img, out_rows, out_cols):
    """``ndimage.zoom(img, order=3, mode="mirror", grid_mode=True)`` to (out_rows, out_cols), clipped to
    the range of `img` (reference: core.resample._resize, mode "upstream").

    Same arithmetic as scipy (spline prefilter per axis, then a 4x4 tap sum per output pixel in scipy's
    order), so equal to the last bit in practice and within 1e-12 always.
    """
    rows, cols = img.shape
    ct = _spline_coefficients_t(img, 0, cols)
    return _zoom_sum(ct, out_rows, out_cols, img.min(), img.max())


@njit(**_OPTS)
def upstream_hires(unit, scale, weights):
    """Upstream-mode hi-res image (spline zoom, Gaussian, truncation); box as released_hires."""
    rows, cols = unit.shape
    up = spline_zoom(unit, rows * scale, cols * scale)
    hires = to_uint8_truncate(gaussian_smooth(up, weights, False))
    r0, r1, c0, c1 = _nonzero_box(hires)
    if r1 == 0:
        return hires, (0, hires.shape[0], 0, hires.shape[1])
    return hires, (r0, r1, c0, c1)


@njit(**_OPTS)
def binary_and_box(hires, box, threshold):
    """Binarise `hires` (zero outside `box`) at ``min + (max - min) * threshold`` (reference: binarise).

    Returns
    -------
    binary : bool (rows, cols)
    count : int, number of foreground pixels
    fbox : (r0, r1, c0, c1), half-open bounding box of the foreground (zeros if there is none)
    """
    rows, cols = hires.shape
    r0, r1, c0, c1 = box
    full = r0 == 0 and c0 == 0 and r1 == rows and c1 == cols
    n = c1 - c0
    lo = np.uint8(255)
    hi = np.uint8(0)
    for i in range(r0, r1):
        row = hires[i, c0:c1]
        for j in range(n):
            v = row[j]
            lo = min(lo, v)
            hi = max(hi, v)
    if r1 <= r0 or c1 <= c0:
        lo = np.uint8(0)
    if not full:  # the rest of the image is 0
        lo = np.uint8(0)
    level = lo + (hi - lo) * threshold
    if not full and level <= 0:  # the background itself is foreground: binarise everything
        r0, r1, c0, c1 = 0, rows, 0, cols
        n = cols
    binary = np.zeros((rows, cols), np.bool_)
    count = 0
    fr0, fr1 = rows, 0
    colany = np.zeros(n, np.bool_)
    for i in range(r0, r1):
        row = hires[i, c0:c1]
        out = binary[i, c0:c1]
        rc = 0
        for j in range(n):
            f = row[j] >= level
            out[j] = f
            colany[j] |= f
            rc += f
        if rc:
            count += rc
            if i < fr0:
                fr0 = i
            fr1 = i + 1
    if count == 0:
        return binary, 0, (0, 0, 0, 0)
    fc0 = 0
    while not colany[fc0]:
        fc0 += 1
    fc1 = n
    while not colany[fc1 - 1]:
        fc1 -= 1
    return binary, count, (fr0, fr1, c0 + fc0, c0 + fc1)


@njit(**_OPTS)
def _tiebreaker(n, upstream, tb_data):
    # tb_data = (PCG64 state of default_rng(42), MT19937 stream of RandomState(0), PCG64 stream): see
    # core.skeleton.kernel_tables()[0] (TIEBREAK_DATA)
    pcg_state, mt_words, pcg_words = tb_data
    perm, ok = permutation_from_stream(n, pcg_words if upstream else mt_words)
    if ok:
        return perm
    return pcg64_permutation(n, pcg_state) if upstream else legacy_permutation(n, 0)


@njit(**_OPTS)
def _margin_box(fbox, rows, cols):
    # the foreground box grown by one pixel on each side, within the image
    fr0, fr1, fc0, fc1 = fbox
    return max(fr0 - 1, 0), min(fr1 + 1, rows), max(fc0 - 1, 0), min(fc1 + 1, cols)


@njit(**_OPTS)
def _medial_axis_sub(binary, count, fbox, upstream, tb_data, skel_table, corner_table):
    # medial axis of the margin box of the foreground: (skeleton, distance, margin box), box-sized arrays
    rows, cols = binary.shape
    r0, r1, c0, c1 = _margin_box(fbox, rows, cols)
    sub = binary[r0:r1, c0:c1].copy()
    tb = _tiebreaker(count, upstream, tb_data)
    skel, dist = medial_axis(sub, tb, skel_table, corner_table)
    return skel, dist, (r0, r1, c0, c1)


@njit(**_OPTS)
def medial_axis_box(binary, count, fbox, upstream, tb_data, skel_table, corner_table):
    """Medial axis and distance map of `binary`, computed on its foreground box plus a one-pixel margin.

    Exact: the nearest background pixel of any foreground pixel lies in that margin box (clamping a
    farther background pixel onto the box brings it closer and keeps it outside the foreground box),
    and raster order inside the box is raster order in the image, so the tie-breaker is unchanged.

    Returns skeleton (bool), distance (float64), both full-size (reference: core.skeleton.medial_axis).
    """
    rows, cols = binary.shape
    skeleton = np.zeros((rows, cols), np.bool_)
    distance = np.zeros((rows, cols))
    if count == 0:
        return skeleton, distance
    skel, dist, (r0, r1, c0, c1) = _medial_axis_sub(binary, count, fbox, upstream, tb_data, skel_table,
                                                     corner_table)
    skeleton[r0:r1, c0:c1] = skel
    distance[r0:r1, c0:c1] = dist
    return skeleton, distance


@njit(**_OPTS)
def _moments_and_cdfs(hires, box):
    # raw moments over `box` (zero elsewhere) of a uint8 image: sums of integers, accumulated exactly in
    # int64 (so equal to raw_moments' float64 sums, which are exact too) and vectorisable.
    r0, r1, c0, c1 = box
    n = c1 - c0
    m00 = 0
    mx = 0
    my = 0
    mxx = 0
    mxy = 0
    myy = 0
    for i in range(r0, r1):
        row = hires[i, c0:c1]
        s0 = 0
        s1 = 0
        s2 = 0
        for jj in range(n):
            v = np.int64(row[jj])
            j = jj + c0
            s0 += v
            s1 += j * v
            s2 += j * j * v
        m00 += s0
        mx += s1
        mxx += s2
        my += i * s0
        mxy += i * s1
        myy += i * i * s0
    return (np.float64(m00), np.float64(mx), np.float64(my), np.float64(mxx), np.float64(mxy),
            np.float64(myy))


@njit(**_OPTS)
def _box_parallelogram_cdfs(img, box, shear, y_mid):
    # parallelogram_cdfs of a uint8 image over `box` (the image is 0 elsewhere). Every count is a sum of
    # integers, so it is accumulated exactly in int64 (equal to the float64 sums of the reference); each row
    # adds its partial sums only where they change, and its total to every later location via a running sum.
    rows, cols = img.shape
    r0, r1, c0, c1 = box
    hcount = np.zeros(cols, np.int64)
    tail = np.zeros(cols + 1, np.int64)
    rowsum = np.zeros(rows, np.int64)
    n = c1 - c0
    prefix = np.zeros(n + 1, np.int64)  # prefix[m] = sum of the row's first m box pixels
    for i in range(r0, r1):
        row = img[i, c0:c1]
        s = 0
        for j in range(n):
            s += np.int64(row[j])
            prefix[j + 1] = s
        rowsum[i] = s
        offset = shear * (i - y_mid)
        # k(t), the number of columns x with x + .5 < bound = fl(t + offset), is ceil(bound - .5) clipped to
        # [0, cols]: bound - .5 is exact (|bound| < 2**52), and for an integer x, x + .5 < bound <=> x < bound - .5.
        # Start 2 below the first location whose count can exceed c0 (margin for the rounding of t + offset).
        t_start = min(max(np.int64(np.floor(c0 + 0.5 - offset)) - 2, 0), cols)
        for t in range(t_start, cols):
            bound = t + offset
            k = min(max(np.int64(np.ceil(bound - 0.5)), 0), cols)
            if k <= c0:
                continue
            if k >= c1:
                tail[t] += s
                break
            hcount[t] += prefix[k - c0]
    hout = np.empty(cols)
    run = 0
    for t in range(cols):
        run += tail[t]
        hout[t] = np.float64(hcount[t] + run)
    vcount = np.empty(rows)
    acc = 0
    for t in range(rows):
        vcount[t] = np.float64(acc)
        acc += rowsum[t]
    return hout, vcount


@njit(**_OPTS)
def metrics_from_morphology(hires, box, binary, count, skeleton, distance, scale, bound_frac, two, out):
    """The six morphometrics into out[0:6] (reference: core.measure.measure_details), except that out[3]
    holds ``-horizontal_shear``: the slant is ``numpy.arctan`` of it, taken by the caller."""
    npx, dsum, straight, diagonal = skeleton_stats(skeleton, distance)
    m00, mx, my, mxx, mxy, myy = _moments_and_cdfs(hires, box)
    m10 = mx / m00
    m01 = my / m00
    u11 = mxy / m00 - m10 * m01
    # m01 ** 2 as Python and numpy scalars compute it: libm's pow, which is not always m01 * m01. `two` (2.0)
    # comes from the caller's data so that LLVM cannot rewrite pow(m01, 2.0) as a multiplication.
    u02 = myy / m00 - math.pow(m01, two)
    shear = u11 / u02
    hcount, vcount = _box_parallelogram_cdfs(hires, box, shear, m01)
    rows, cols = hires.shape
    half = bound_frac / 2
    q = np.array([half, 1. - half])
    lr = np.interp(q, hcount / m00, np.arange(cols).astype(np.float64))
    tb = np.interp(q, vcount / m00, np.arange(rows).astype(np.float64))
    out[0] = count / scale ** 2
    out[1] = (straight + math.sqrt(2.) * diagonal) / scale
    out[2] = 2. * (dsum / npx) / scale if npx else np.nan
    out[3] = -shear  # the caller takes np.arctan: numpy's own arctan, whose last bit the released tables have
    out[4] = (lr[1] - lr[0]) / scale
    out[5] = (tb[1] - tb[0]) / scale


@njit(**_OPTS)
def morphology(unit, upstream, threshold, scale, weights, tb_data, skel_table, corner_table):
    """hires, box, binary, count, skeleton, distance of one digit (reference: core.morpho.ImageMorphology)."""
    if scale > 1:
        if upstream:
            hires, box = upstream_hires(unit, scale, weights)
        else:
            hires, box = released_hires(unit, scale, weights)
    else:
        hires = to_uint8_truncate(unit)
        box = (0, hires.shape[0], 0, hires.shape[1])
    binary, count, fbox = binary_and_box(hires, box, threshold)
    skeleton, distance = medial_axis_box(binary, count, fbox, upstream, tb_data, skel_table, corner_table)
    return hires, box, binary, count, skeleton, distance


@njit(**_OPTS)
def measure_digit(unit, upstream, threshold, scale, bound_frac, weights, tb_data, skel_table, corner_table, out):
    """Measure one digit (float64 (rows, cols) in [0, 1]) into out[0:6]: the whole pipeline, compiled
    (out[3] = -shear, see metrics_from_morphology)."""
    if scale > 1:
        if upstream:
            hires, box = upstream_hires(unit, scale, weights)
        else:
            hires, box = released_hires(unit, scale, weights)
    else:
        hires = to_uint8_truncate(unit)
        box = (0, hires.shape[0], 0, hires.shape[1])
    binary, count, fbox = binary_and_box(hires, box, threshold)
    if count == 0:
        skel = np.zeros((1, 1), np.bool_)
        dist = np.zeros((1, 1))
    else:  # box-sized skeleton and distances: the skeleton statistics need nothing outside
        skel, dist, _ = _medial_axis_sub(binary, count, fbox, upstream, tb_data, skel_table, corner_table)
    two = weights[0] * 0.0 + 2.0  # a run-time 2.0 (see metrics_from_morphology)
    metrics_from_morphology(hires, box, binary, count, skel, dist, scale, bound_frac, two, out)


@njit(**_OPTS)
def measure_uint8_stack(images, upstream, threshold, scale, bound_frac, weights, tb_data, skel_table,
                        corner_table, out, status):
    """Measure uint8 digits (n, rows, cols) into out (n, 6); status[k] = 1 for a blank digit (row left NaN).

    Releases the GIL, so threads measure in parallel.
    """
    n, rows, cols = images.shape
    unit = np.empty((rows, cols))
    scale_inv = 1.0 / 255
    for k in range(n):
        img = images[k]
        lo = img[0, 0]
        hi = lo
        for i in range(rows):
            for j in range(cols):
                v = img[i, j]
                unit[i, j] = v * scale_inv
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
        if lo == hi:
            status[k] = 1
            continue
        measure_digit(unit, upstream, threshold, scale, bound_frac, weights, tb_data, skel_table,
                      corner_table, out[k])


@njit(**_OPTS)
def foreground_box(binary):
    """(count, (r0, r1, c0, c1)): number of foreground pixels and their half-open bounding box."""
    rows, cols = binary.shape
    count = 0
    fr0, fr1, fc0, fc1 = rows, 0, cols, 0
    for i in range(rows):
        for j in range(cols):
            if binary[i, j]:
                count += 1
                if i < fr0:
                    fr0 = i
                fr1 = i + 1
                if j < fc0:
                    fc0 = j
                if j >= fc1:
                    fc1 = j + 1
    if count == 0:
        return 0, (0, 0, 0, 0)
    return count, (fr0, fr1, fc0, fc1)


@njit(**_OPTS)
def _smooth_box(img, weights):
    # gaussian_smooth(img, weights, False) computed only where it can be non-zero (img is 0 outside its
    # non-zero box; a Gaussian output whose taps all read 0.0 is 0.0). Returns (smoothed, its box).
    rows, cols = img.shape
    r = weights.shape[0] // 2
    ri = _extension(rows, r, False)
    ci = _extension(cols, r, False)
    ir0, ir1, ic0, ic1 = _nonzero_box(img)
    gr0, gr1 = _smooth_live(ri, r, ir0, ir1)
    gc0, gc1 = _smooth_live(ci, r, ic0, ic1)
    tmp = np.zeros((rows, cols))
    _smooth_axis0(img, weights, ri, gr0, gr1, ic0, ic1, tmp)
    out = np.zeros((rows, cols))
    _smooth_axis1(tmp, weights, ci, gr0, gr1, gc0, gc1, out)
    return out, (gr0, gr1, gc0, gc1)


@njit(**_OPTS)
def released_lowres(img, out_rows, out_cols, weights):
    """``pyramid_reduce`` in released mode: Gaussian, then the legacy bicubic resize with clipping
    (reference: core.resample.downscale), on the box where `img` is non-zero. float64 (out_rows, out_cols)."""
    rows, cols = img.shape
    sm, (gr0, gr1, gc0, gc1) = _smooth_box(img, weights)
    full = gr0 == 0 and gc0 == 0 and gr1 == rows and gc1 == cols
    lo = 0.0
    hi = 0.0
    if full:
        lo = sm.min()
        hi = sm.max()
    else:  # the rest is 0
        for i in range(gr0, gr1):
            for j in range(gc0, gc1):
                v = sm[i, j]
                lo = min(lo, v)
                hi = max(hi, v)
    rbase, rfrac = _legacy_taps(rows, out_rows)
    cbase, cfrac = _legacy_taps(cols, out_cols)
    tmp = np.zeros((rows, out_cols))
    _bicubic_columns(sm, cbase, cfrac, gr0, gr1, 0, out_cols, tmp)
    out = np.zeros((out_rows, out_cols))
    _bicubic_rows(tmp, rbase, rfrac, 0, out_rows, 0, out_cols, lo, hi, out)
    return out


@njit(**_OPTS)
def upstream_lowres(img, out_rows, out_cols, weights):
    """``pyramid_reduce`` in upstream mode: Gaussian (on the non-zero box), then the clipped spline zoom
    (equal to ``spline_zoom(gaussian_smooth(img, weights, False), ...)``; columns outside the smoothed box are
    0.0 and skip the spline prefilter's first pass; the range for clipping comes from the box)."""
    rows, cols = img.shape
    sm, (gr0, gr1, gc0, gc1) = _smooth_box(img, weights)
    full = gr0 == 0 and gc0 == 0 and gr1 == rows and gc1 == cols
    lo = 0.0
    hi = 0.0
    if full:
        lo = sm.min()
        hi = sm.max()
    elif gr1 > gr0:  # the rest is 0.0 (and the box values are >= 0)
        lo = sm[gr0, gc0]
        hi = lo
        for i in range(gr0, gr1):
            for j in range(gc0, gc1):
                v = sm[i, j]
                lo = min(lo, v)
                hi = max(hi, v)
        lo = min(lo, 0.0)
        hi = max(hi, 0.0)
    ct = _spline_coefficients_t(sm, gc0, gc1)
    return _zoom_sum(ct, out_rows, out_cols, lo, hi)


@njit(**_OPTS)
def raw_moments_uint8(img):
    """raw_moments of a uint8 (or bool viewed as uint8) image, accumulated exactly in int64."""
    rows, cols = img.shape
    return _moments_and_cdfs(img, (0, rows, 0, cols))


# --------------------------------------------------------------------------------------------------
# Tie-breaking permutations from precomputed random streams. Both permutations (legacy RandomState(0)
# and default_rng(42)) draw 32-bit words one after the other and keep ``word & mask`` when it is <= i:
# the words do not depend on n, so they are generated once and every permutation only masks and swaps.
# --------------------------------------------------------------------------------------------------
@njit(**_OPTS)
def mt_stream(seed, length):
    """The first `length` 32-bit outputs of MT19937 seeded as ``RandomState(seed)`` (uint32)."""
    mt = np.empty(624, np.int64)
    _mt_init(seed, mt)
    out = np.empty(length, np.uint32)
    pos = 624
    for k in range(length):
        if pos >= 624:
            _mt_twist(mt)
            pos = 0
        y = mt[pos]
        pos += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        out[k] = np.uint32(y & 0xFFFFFFFF)
    return out


@njit(**_OPTS)
def pcg_stream(state, length):
    """The first `length` 32-bit draws (next_uint32: low half, then high half of each 64-bit output) of
    PCG64 from `state` (see pcg64_permutation), uint32."""
    s_hi = state[0]
    s_lo = state[1]
    inc_hi = state[2]
    inc_lo = state[3]
    out = np.empty(length, np.uint32)
    for k in range(0, length, 2):
        new_hi = _mulhi64(s_lo, _MULT_LO) + s_lo * _MULT_HI + s_hi * _MULT_LO
        new_lo = s_lo * _MULT_LO
        s_lo = new_lo + inc_lo
        carry = np.uint64(1) if s_lo < new_lo else np.uint64(0)
        s_hi = new_hi + inc_hi + carry
        x = s_hi ^ s_lo
        rot = s_hi >> np.uint64(58)
        word = (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))
        out[k] = np.uint32(word & _U32)
        if k + 1 < length:
            out[k + 1] = np.uint32(word >> np.uint64(32))
    return out


@njit(**_OPTS)
def permutation_from_stream(n, stream):
    """(perm, ok): the masked-rejection shuffle of ``arange(n)`` drawing 32-bit words from `stream`;
    ok is False if the stream ran out (the caller then generates the words itself)."""
    perm = np.arange(n)
    pos = 0
    length = stream.shape[0]
    for i in range(n - 1, 0, -1):
        mask = np.uint32(i)
        mask |= mask >> np.uint32(1)
        mask |= mask >> np.uint32(2)
        mask |= mask >> np.uint32(4)
        mask |= mask >> np.uint32(8)
        mask |= mask >> np.uint32(16)
        while True:
            if pos >= length:
                return perm, False
            value = np.int64(stream[pos] & mask)
            pos += 1
            if value <= i:
                break
        tmp = perm[i]
        perm[i] = perm[value]
        perm[value] = tmp
    return perm, True
