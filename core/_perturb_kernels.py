"""Compiled loops of the perturbations (numba, cached on disk).

Each kernel reproduces exactly what a numpy / scipy / scikit-image call of the original ``morphomnist``
code does (named in its docstring), including its border rules; ``tests/test_upstream.py`` checks each one
against that call. They work on booleans and integers only (no floating-point arithmetic except the
comparisons of the nearest-neighbour warp), so "exactly" means bit for bit.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_OPTS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

_FAR = 1 << 30  # "no such pixel in this row"


# --------------------------------------------------------------------------------------------------
# Binary morphology with a symmetric, orthogonally convex footprint given by its row half-widths
# --------------------------------------------------------------------------------------------------
@njit(**_OPTS)
def _row_distances(img, value):
    """Horizontal distance of every pixel to the nearest pixel equal to `value` in its row (_FAR if none)."""
    rows, cols = img.shape
    dist = np.empty((rows, cols), np.int64)
    for i in range(rows):
        last = -_FAR
        for j in range(cols):
            if img[i, j] == value:
                last = j
            dist[i, j] = j - last if last > -_FAR else _FAR
        last = _FAR
        for j in range(cols - 1, -1, -1):
            if img[i, j] == value:
                last = j
            if last < _FAR and last - j < dist[i, j]:
                dist[i, j] = last - j
    return dist


@njit(**_OPTS)
def footprint_dilate(binary, half):
    """Dilation of a bool image by the footprint whose row ``dy`` (``-r..r``) spans ``|dx| <= half[dy + r]``.

    ``half[k] < 0`` marks an empty footprint row. Equals ``skimage.morphology.dilation(binary, footprint)``
    (mode 'reflect': mirrored pixels are never closer than real ones for such footprints, so the border adds
    nothing).
    """
    rows, cols = binary.shape
    r = (half.shape[0] - 1) // 2
    dist = _row_distances(binary, True)
    has = np.zeros(rows, np.bool_)
    for i in range(rows):
        for j in range(cols):
            if binary[i, j]:
                has[i] = True
                break
    out = np.zeros((rows, cols), np.bool_)
    for i in range(rows):
        for k in range(2 * r + 1):
            src = i + k - r
            h = half[k]
            if src < 0 or src >= rows or h < 0 or not has[src]:
                continue
            for j in range(cols):
                if dist[src, j] <= h:
                    out[i, j] = True
    return out


@njit(**_OPTS)
def footprint_erode(binary, half):
    """Erosion of a bool image by the footprint of :func:`footprint_dilate`.

    Equals ``skimage.morphology.erosion(binary, footprint)`` (mode 'reflect': pixels beyond the border
    mirror pixels inside the footprint, so only real background erodes).
    """
    rows, cols = binary.shape
    r = (half.shape[0] - 1) // 2
    dist = _row_distances(binary, False)
    out = binary.copy()
    for i in range(rows):
        for j in range(cols):
            if not out[i, j]:
                continue
            for k in range(2 * r + 1):
                src = i + k - r
                if 0 <= src < rows and dist[src, j] <= half[k]:
                    out[i, j] = False
                    break
    return out


# --------------------------------------------------------------------------------------------------
# Warps
# --------------------------------------------------------------------------------------------------
@njit(**_OPTS)
def nearest_warp(img, coords_r, coords_c):
    """``scipy.ndimage.map_coordinates(img, [coords_r, coords_c], order=0, mode='grid-constant', cval=0)``.

    What ``skimage.transform.warp`` does with a boolean image (order 0 since scikit-image 0.19; its mode
    'constant' is ndimage's 'grid-constant'): the pixel ``floor(coord + .5)`` (halves round up), background
    where that pixel is outside the image (NaN too). So a source between ``cols - 1`` and ``cols - .5`` samples
    the last column, one between ``-.5`` and 0 the first.
    """
    rows, cols = img.shape
    out = np.zeros(coords_r.shape, np.bool_)
    for i in range(coords_r.shape[0]):
        for j in range(coords_r.shape[1]):
            r = np.floor(coords_r[i, j] + 0.5)
            c = np.floor(coords_c[i, j] + 0.5)
            if r >= 0.0 and r < rows and c >= 0.0 and c < cols:  # False for NaN
                out[i, j] = img[int(r), int(c)]
    return out


# --------------------------------------------------------------------------------------------------
# Fracture: Bresenham line and brush stamps
# --------------------------------------------------------------------------------------------------
@njit(**_OPTS)
def draw_line(r0, c0, r1, c1):
    """``skimage.draw.line(r0, c0, r1, c1)``: integer Bresenham line, both end points included."""
    dr = abs(r1 - r0)
    dc = abs(c1 - c0)
    n = max(dr, dc) + 1
    rr = np.empty(n, np.int64)
    cc = np.empty(n, np.int64)
    sc = 1 if c1 - c0 > 0 else -1
    sr = 1 if r1 - r0 > 0 else -1
    r, c = r0, c0
    steep = dr > dc
    if steep:
        r, c = c, r
        dr, dc = dc, dr
        sr, sc = sc, sr
    d = 2 * dr - dc
    for i in range(dc):
        if steep:
            rr[i] = c
            cc[i] = r
        else:
            rr[i] = r
            cc[i] = c
        while d >= 0:
            r += sr
            d -= 2 * dc
        c += sc
        d += 2 * dr
    rr[dc] = r1
    cc[dc] = c1
    return rr, cc


@njit(**_OPTS)
def _slice_bounds(start, stop, n):
    # Python's slice(start, stop).indices(n) for step 1: negative ends count from the end, then clip
    if start < 0:
        start += n
        if start < 0:
            start = 0
    elif start > n:
        start = n
    if stop < 0:
        stop += n
        if stop < 0:
            stop = 0
    elif stop > n:
        stop = n
    return start, max(stop - start, 0)


@njit(**_OPTS)
def stamp_line_numpy(img, r0, c0, r1, c1, brush, off_r, off_c):
    """For each pixel (i, j) of ``draw_line(r0, c0, r1, c1)``:
    ``try: img[i - off_r:i - off_r + h, j - off_c:j - off_c + w] &= brush except ValueError: pass``.

    Reproduces numpy exactly: negative slice ends count from the far edge, ends are clipped, and a stamp
    whose clipped window cannot take the brush by broadcasting is skipped (the original's ValueError).
    With ``off = 0`` and no try (a crash instead of the skip) this is the 2018 code; with ``off = h // 2``
    today's.
    """
    h, w = brush.shape
    rows, cols = img.shape
    rr, cc = draw_line(r0, c0, r1, c1)
    for k in range(rr.shape[0]):
        a, lh = _slice_bounds(rr[k] - off_r, rr[k] - off_r + h, rows)
        b, lw = _slice_bounds(cc[k] - off_c, cc[k] - off_c + w, cols)
        if not ((lh == h or h == 1) and (lw == w or w == 1)):
            continue
        for di in range(lh):
            for dj in range(lw):
                if not brush[0 if h == 1 else di, 0 if w == 1 else dj]:
                    img[a + di, b + dj] = False


@njit(**_OPTS)
def stamp_line_clipped(img, r0, c0, r1, c1, brush):
    """For each pixel (i, j) of ``draw_line(r0, c0, r1, c1)``, ``img[i:i + h, j:j + w] &= brush`` with the
    window clipped to the image (the 2018 placement; where 2018 crashed or wrapped around, the part of the
    brush inside the image is applied)."""
    h, w = brush.shape
    rows, cols = img.shape
    rr, cc = draw_line(r0, c0, r1, c1)
    for k in range(rr.shape[0]):
        i = rr[k]
        j = cc[k]
        for di in range(max(0, -i), min(h, rows - i)):
            for dj in range(max(0, -j), min(w, cols - j)):
                if not brush[di, dj]:
                    img[i + di, j + dj] = False


# --------------------------------------------------------------------------------------------------
# Skeleton tools
# --------------------------------------------------------------------------------------------------
@njit(**_OPTS)
def num_neighbours(skel):
    """8-neighbour count of each skeleton pixel, 0 elsewhere (``ndimage.convolve`` mode 'constant')."""
    rows, cols = skel.shape
    out = np.zeros((rows, cols), np.int64)
    for i in range(rows):
        for j in range(cols):
            if not skel[i, j]:
                continue
            n = 0
            for di in range(-1, 2):
                for dj in range(-1, 2):
                    if (di != 0 or dj != 0) and 0 <= i + di < rows and 0 <= j + dj < cols and skel[i + di, j + dj]:
                        n += 1
            out[i, j] = n
    return out


@njit(**_OPTS)
def erase_where(skel, nb, count, brush):
    """Erase ``~brush`` (a (2r+1)-square) around every pixel of `skel` with ``nb == count``, clipped to the image
    (the original's padded stamps). Returns a new array."""
    rows, cols = skel.shape
    out = skel.copy()
    size = brush.shape[0]
    r = (size - 1) // 2
    for i in range(rows):
        for j in range(cols):
            if nb[i, j] != count:
                continue
            for di in range(max(0, r - i), min(size, rows - i + r)):
                for dj in range(max(0, r - j), min(size, cols - j + r)):
                    if not brush[di, dj]:
                        out[i + di - r, j + dj - r] = False
    return out


@njit(**_OPTS)
def window_sums(skel, i, j, r):
    """Raw moment sums of the (2r+1)-square window of `skel` centred at (i, j), zero-padded outside:
    (sum I, sum xI, sum yI, sum x^2 I, sum xyI, sum y^2 I) with x, y window coordinates. All integers, so
    exact whatever the order of summation."""
    rows, cols = skel.shape
    m00 = 0
    mx = 0
    my = 0
    mxx = 0
    mxy = 0
    myy = 0
    for y in range(2 * r + 1):
        si = i - r + y
        if si < 0 or si >= rows:
            continue
        for x in range(2 * r + 1):
            sj = j - r + x
            if sj < 0 or sj >= cols or not skel[si, sj]:
                continue
            m00 += 1
            mx += x
            my += y
            mxx += x * x
            mxy += x * y
            myy += y * y
    return m00, mx, my, mxx, mxy, myy


@njit(**_OPTS)
def bbox(binary):
    """(row0, row1, col0, col1), half-open, of the True pixels; (0, 0, 0, 0) if there are none."""
    rows, cols = binary.shape
    r0, r1, c0, c1 = rows, 0, cols, 0
    for i in range(rows):
        for j in range(cols):
            if binary[i, j]:
                if i < r0:
                    r0 = i
                r1 = i + 1
                if j < c0:
                    c0 = j
                if j + 1 > c1:
                    c1 = j + 1
    if r1 == 0:
        return 0, 0, 0, 0
    return r0, r1, c0, c1


@njit(**_OPTS)
def _count8(skel, i, j):
    rows, cols = skel.shape
    n = 0
    for di in range(-1, 2):
        for dj in range(-1, 2):
            if (di != 0 or dj != 0) and 0 <= i + di < rows and 0 <= j + dj < cols and skel[i + di, j + dj]:
                n += 1
    return n


@njit(**_OPTS)
def _erase_seeds(skel, coords, count, brush):
    # erase ~brush around every skeleton pixel (of `coords`) with `count` neighbours in `skel` (a snapshot)
    rows, cols = skel.shape
    out = skel.copy()
    size = brush.shape[0]
    r = (size - 1) // 2
    for k in range(coords.shape[0]):
        i, j = coords[k, 0], coords[k, 1]
        if not skel[i, j] or _count8(skel, i, j) != count:
            continue
        for di in range(max(0, r - i), min(size, rows - i + r)):
            for dj in range(max(0, r - j), min(size, cols - j + r)):
                if not brush[di, dj]:
                    out[i + di - r, j + dj - r] = False
    return out


@njit(**_OPTS)
def pruned_coords(skel, r_tips, brush_tips, r_forks, brush_forks):
    """(row, col) of the skeleton pixels left after LocationSampler's pruning, in raster order (np.argwhere's).

    Tips (1 neighbour) then forks (3 neighbours, counted on the tip-pruned skeleton) erase ``~brush`` around
    them, as ``erase(skel, num_neighbours(skel) == n, r)``; ``r < 0`` skips a step, ``r == 0`` removes the
    seed pixels only.
    """
    rows, cols = skel.shape
    n = 0
    for i in range(rows):
        for j in range(cols):
            if skel[i, j]:
                n += 1
    coords = np.empty((n, 2), np.int64)
    k = 0
    for i in range(rows):
        for j in range(cols):
            if skel[i, j]:
                coords[k, 0] = i
                coords[k, 1] = j
                k += 1
    cur = skel.copy()
    for step in range(2):
        r = r_tips if step == 0 else r_forks
        brush = brush_tips if step == 0 else brush_forks
        count = 1 if step == 0 else 3
        if r < 0:
            continue
        if r == 0:
            nxt = cur.copy()
            for k in range(n):
                i, j = coords[k, 0], coords[k, 1]
                if cur[i, j] and _count8(cur, i, j) == count:
                    nxt[i, j] = False
            cur = nxt
        else:
            cur = _erase_seeds(cur, coords, count, brush)
    m = 0
    for k in range(n):
        if cur[coords[k, 0], coords[k, 1]]:
            m += 1
    out = np.empty((m, 2), np.int64)
    m = 0
    for k in range(n):
        if cur[coords[k, 0], coords[k, 1]]:
            out[m, 0] = coords[k, 0]
            out[m, 1] = coords[k, 1]
            m += 1
    return out


@njit(**_OPTS)
def binary_moments(binary):
    """Raw moment sums of a bool image as exact integers: (sum I, sum xI, sum yI, sum x^2 I, sum xyI, sum y^2 I),
    x = column, y = row (what ImageMoments sums in float64, exactly, since every partial sum is an integer
    below 2**53)."""
    rows, cols = binary.shape
    m00 = 0
    mx = 0
    my = 0
    mxx = 0
    mxy = 0
    myy = 0
    for i in range(rows):
        for j in range(cols):
            if binary[i, j]:
                m00 += 1
                mx += j
                my += i
                mxx += j * j
                mxy += j * i
                myy += i * i
    return m00, mx, my, mxx, mxy, myy


@njit(**_OPTS)
def parallelogram_counts(img, shear, y_mid):
    """Mass counts of ``bounding_parallelogram`` for an integer image, skipping empty rows.

    ``hcount[t] = sum I[y, x] over x + .5 < t + shear * (y - y_mid)`` and ``vcount[t] = sum I[y, x] over
    y < t``, with the comparison evaluated as the original does (same float64 operations); the sums are
    integers, hence exact, and returned as float64 like the original's counts.
    """
    rows, cols = img.shape
    hcount = np.zeros(cols, np.int64)
    vcount = np.zeros(rows, np.int64)
    prefix = np.zeros(cols + 1, np.int64)
    acc = 0
    for i in range(rows):
        vcount[i] = acc
        s = 0
        for j in range(cols):
            s += np.int64(img[i, j])
            prefix[j + 1] = s
        acc += s
        if s == 0:
            continue
        offset = shear * (i - y_mid)
        k = 0
        for t in range(cols):
            bound = t + offset
            while k < cols and k + 0.5 < bound:
                k += 1
            hcount[t] += prefix[k]
    return hcount.astype(np.float64), vcount.astype(np.float64), acc
