/*
 * rbfi_cpu.c: fused CPU kernels for the RBFI layer (de Alfaro 2018, eq. 2, 10, 11).
 *
 *   s[b,j,i] = (u[j,i] (x[b,i] - w[j,i]))^2,   z[b,j] = max_i s[b,j,i]
 *
 * Forward writes z (B, M) and, on request, the arg-max (int32, first occurrence). Backward
 * recomputes s tile by tile and never holds a (B, M, N) array. With upstream g[b,j]:
 *
 *   pseudogradient (eq. 11): ds[b,j,i] = g[b,j] exp(beta (s[b,j,i] - z[b,j]))   for every i
 *   true gradient  (eq. 10): ds[b,j,i] = g[b,j] at i = argmax[b,j], 0 elsewhere
 *   dx[b,i] =  sum_j ds 2 u^2 (x - w),  dw[j,i] = -sum_b ds 2 u^2 (x - w),
 *   du[j,i] =  sum_b ds 2 u (x - w)^2.
 *
 * With t = u (x - w) and q = 2 g exp(beta (t^2 - z)) t the three become
 *   dx[b,i] += q u,   Q[j,i] += q (then dw = -u Q),   du[j,i] += q (x - w),
 * so each exp is computed once and feeds every accumulation.
 *
 * Vector code uses GCC vector extensions (width 16 with AVX-512, 8 with AVX2, 4 otherwise) plus
 * a few intrinsics; threads come from OpenMP (the caller passes torch's thread count).
 * Every array is float32 (or int32), C-contiguous, row-major. Functions return 0 on success.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define VL 16
#elif defined(__AVX2__)
#define VL 8
#else
#define VL 4
#endif

typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));
typedef uint32_t vu __attribute__((vector_size(VL * 4)));

#define INLINE static inline __attribute__((always_inline))

/* Backward: JB units per register block (their w, u, Q, DU live in registers). Measured on a
 * 2-core Zen 5: 4 is best with 32 zmm registers (AVX-512), 2 with 16 ymm registers (AVX2). */
#ifndef JB
#define JB (VL >= 16 ? 4 : 2)
#endif
/* Forward register tile: FB batch rows x FJ units (2 x 4 measured best for AVX2 and AVX-512). */
#ifndef FB
#define FB 2
#endif
#ifndef FJ
#define FJ 4
#endif

/* ---------------------------------------------------------------- small vector helpers */

INLINE vf vload(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
INLINE void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }
INLINE vf vset(float s) { return (vf){0} + s; }
INLINE vf vsel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }
INLINE vi visel(vi m, vi a, vi b) { return (a & m) | (b & ~m); }

INLINE vf vmax(vf a, vf b) {
#if defined(__AVX512F__)
    return (vf)_mm512_max_ps((__m512)a, (__m512)b);
#elif defined(__AVX__)
    return (vf)_mm256_max_ps((__m256)a, (__m256)b);
#else
    return vsel(a > b, a, b);
#endif
}

/* nonzero when any lane of the comparison mask m is set */
INLINE int vany(vi m) {
#if defined(__AVX512F__)
    return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
#elif defined(__AVX__)
    return _mm256_movemask_ps((__m256)m) != 0;
#else
    int r = 0;
    for (int k = 0; k < VL; k++) r |= m[k];
    return r != 0;
#endif
}

/* Horizontal reductions by a rotate-and-combine tree (log2(VL) shuffles); every lane ends
 * holding the result. */
INLINE vi rotate_perm(int shift) {
    vi p;
    for (int k = 0; k < VL; k++) p[k] = (k + shift) % VL;
    return p;
}

INLINE float hmax(vf v) {
    for (int sh = VL / 2; sh >= 1; sh /= 2) v = vmax(v, __builtin_shuffle(v, rotate_perm(sh)));
    return v[0];
}

INLINE int32_t hmin_i(vi v) {
    for (int sh = VL / 2; sh >= 1; sh /= 2) {
        const vi r = __builtin_shuffle(v, rotate_perm(sh));
        v = visel(r < v, r, v);
    }
    return v[0];
}

/*
 * 2^y for y in [-125, 127] (callers clamp). y = n + f with n = round(y), |f| <= 1/2;
 * 2^f by a degree-5 polynomial fitted for minimal relative error on [-1/2, 1/2]
 * (max relative error 2.4e-7 when evaluated in float32, about 2 ulp), then n is added to
 * the exponent field. The rounding uses the 1.5 * 2^23 trick, whose low mantissa bits hold n.
 */
#define EXP2_MAGIC 12582912.0f /* 1.5 * 2^23 */
#define P0 1.0000001192092896f
#define P1 0.6931469440460205f
#define P2 0.24022120237350464f
#define P3 0.05550713092088699f
#define P4 0.009675541892647743f
#define P5 0.0013276472454890609f

INLINE vf vexp2(vf y) {
    vf r = y + EXP2_MAGIC;
    vf n = r - EXP2_MAGIC;
    vf f = y - n;
    vf p = vset(P5);
    p = p * f + P4;
    p = p * f + P3;
    p = p * f + P2;
    p = p * f + P1;
    p = p * f + P0;
    return (vf)((vu)p + ((vu)r << 23));
}

INLINE float sexp2(float y) {
    float r = y + EXP2_MAGIC;
    float n = r - EXP2_MAGIC;
    float f = y - n;
    float p = P5;
    p = p * f + P4;
    p = p * f + P3;
    p = p * f + P2;
    p = p * f + P1;
    p = p * f + P0;
    uint32_t pb, rb;
    memcpy(&pb, &p, 4);
    memcpy(&rb, &r, 4);
    pb += rb << 23;
    memcpy(&p, &pb, 4);
    return p;
}

#define Y_MIN -125.0f

static int clamp_threads(int nthreads) { return nthreads < 1 ? 1 : nthreads; }

/* This thread's number and the team's size, inside a parallel region (0 and 1 without
 * OpenMP). */
INLINE void thread_slot(int *tid, int *nt) {
#ifdef _OPENMP
    *tid = omp_get_thread_num();
    *nt = omp_get_num_threads();
#else
    *tid = 0;
    *nt = 1;
#endif
}

/* Where v > best (strict): best = v, idx = iv. Where v < best when LESS. */
INLINE void vargext_step(vf *best, vi *idx, vf v, vi iv, const int LESS) {
#if defined(__AVX512F__)
    const __mmask16 m = LESS ? _mm512_cmp_ps_mask((__m512)v, (__m512)*best, _CMP_LT_OQ)
                             : _mm512_cmp_ps_mask((__m512)v, (__m512)*best, _CMP_GT_OQ);
    *best = (vf)_mm512_mask_mov_ps((__m512)*best, m, (__m512)v);
    *idx = (vi)_mm512_mask_mov_epi32((__m512i)*idx, m, (__m512i)iv);
#else
    const vi m = LESS ? v < *best : v > *best;
    *best = vsel(m, v, *best);
    *idx = visel(m, iv, *idx);
#endif
}

/* ------------------------------------------------------------------------ forward */

/* One register tile: rows x[b0 .. b0+NB), units j0 .. j0+NJ); writes z (and idx if WANT_IDX). */
INLINE void fwd_tile(const float *x, const float *w, const float *u, int64_t M, int64_t N,
                     int64_t b0, int64_t j0, float *z, int32_t *idx, const int NB, const int NJ,
                     const int WANT_IDX) {
    vf best[FB][FJ];
    vi bidx[FB][FJ];
    vi lane;
    for (int k = 0; k < VL; k++) lane[k] = k;
    for (int bb = 0; bb < NB; bb++)
        for (int jj = 0; jj < NJ; jj++) {
            best[bb][jj] = vset(-1.0f);
            bidx[bb][jj] = lane;
        }
    int64_t i = 0;
    vi iv = lane;
    for (; i + VL <= N; i += VL) {
        vf xv[FB];
        for (int bb = 0; bb < NB; bb++) xv[bb] = vload(x + (b0 + bb) * N + i);
        for (int jj = 0; jj < NJ; jj++) {
            vf wv = vload(w + (j0 + jj) * N + i);
            vf uv = vload(u + (j0 + jj) * N + i);
            for (int bb = 0; bb < NB; bb++) {
                vf t = uv * (xv[bb] - wv);
                vf s = t * t;
                if (WANT_IDX) {
                    vi m = s > best[bb][jj];
                    best[bb][jj] = vsel(m, s, best[bb][jj]);
                    bidx[bb][jj] = visel(m, iv, bidx[bb][jj]);
                } else {
                    best[bb][jj] = vmax(best[bb][jj], s);
                }
            }
        }
        iv += VL;
    }
    for (int bb = 0; bb < NB; bb++)
        for (int jj = 0; jj < NJ; jj++) {
            /* lane reduction: the largest value, the smallest index among lanes holding it */
            float m = hmax(best[bb][jj]);
            int32_t mi = 0;
            if (WANT_IDX) {
                const vi at_max = best[bb][jj] == vset(m);
                mi = hmin_i(visel(at_max, bidx[bb][jj], (vi){0} + INT32_MAX));
            }
            const float *xr = x + (b0 + bb) * N;
            const float *wr = w + (j0 + jj) * N;
            const float *ur = u + (j0 + jj) * N;
            for (int64_t k = i; k < N; k++) {
                float t = ur[k] * (xr[k] - wr[k]);
                float s = t * t;
                if (s > m) {
                    m = s;
                    mi = (int32_t)k;
                }
            }
            z[(b0 + bb) * M + j0 + jj] = m;
            if (WANT_IDX) idx[(b0 + bb) * M + j0 + jj] = mi;
        }
}

static void fwd_impl(const float *x, const float *w, const float *u, int64_t B, int64_t M,
                     int64_t N, float *z, int32_t *idx, int nthreads, const int WANT_IDX) {
    const int64_t nbb = (B + FB - 1) / FB, njb = (M + FJ - 1) / FJ;
#pragma omp parallel for schedule(dynamic, 8) num_threads(nthreads) if (nthreads > 1)
    for (int64_t tile = 0; tile < nbb * njb; tile++) {
        /* unit-major order: a thread's consecutive tiles reuse the same w, u rows from L1 */
        const int64_t j0 = (tile / nbb) * FJ, b0 = (tile % nbb) * FB;
        if (b0 + FB <= B && j0 + FJ <= M) {
            fwd_tile(x, w, u, M, N, b0, j0, z, idx, FB, FJ, WANT_IDX);
        } else {
            for (int64_t b = b0; b < B && b < b0 + FB; b++)
                for (int64_t j = j0; j < M && j < j0 + FJ; j++)
                    fwd_tile(x, w, u, M, N, b, j, z, idx, 1, 1, WANT_IDX);
        }
    }
}

/* ------------------------------------------- forward with lanes over units (small N) */

/*
 * For a small N (conv layers: a window of a few dozen pixels) fwd_tile's per-pair lane
 * reductions cost more than the arithmetic. Here the lanes run over VL units instead: wT, uT
 * are (N, Mp) transposes of w, u (Mp = M rounded up to VL, zero-padded), x[b,i] is broadcast,
 * and each lane keeps its own unit's running max over i, with WANT_IDX the i where it last rose
 * under a strict `>`: the first arg-max, exactly as a scalar scan (and as fwd_tile) finds it.
 * No horizontal reduction at all. Tiles of UV_RB rows x one vector of units.
 */
#ifndef UV_RB
#define UV_RB 8
#endif
/* Lanes over units when the transposes (2 N Mp floats) fit in 256 KiB (L2): every row tile
 * sweeps them. Measured on conv layers (N 25 to 512, M 16 to 64): 2 to 40x faster than the
 * tiles; on the MLP's 784 x 512 layers (3.2 MB of transposes) slower. docs/conv.md. */
#ifndef UV_MAX_ELEMS
#define UV_MAX_ELEMS 32768
#endif
#define LAYOUT_AUTO 0
#define LAYOUT_TILES 1
#define LAYOUT_UNITS 2

static int use_units_layout(int64_t M, int64_t N, int layout) {
    if (layout != LAYOUT_AUTO) return layout == LAYOUT_UNITS;
    return N * ((M + VL - 1) / VL * VL) <= UV_MAX_ELEMS;
}

/* wT[i * Mp + j] = w[j * N + i] (0 for j >= M); the same for u (|u| when ABS_U). NULL when out
 * of memory. */
static float *transpose_units(const float *w, const float *u, int64_t M, int64_t N, int64_t Mp,
                              int abs_u) {
    float *t = (float *)calloc((size_t)(2 * N * Mp), sizeof(float));
    if (!t) return NULL;
    for (int64_t j = 0; j < M; j++)
        for (int64_t i = 0; i < N; i++) {
            const float uv = u[j * N + i];
            t[i * Mp + j] = w[j * N + i];
            t[N * Mp + i * Mp + j] = abs_u && uv < 0.0f ? -uv : uv;
        }
    return t;
}

/* The inputs up to the last one where some unit has u != 0 (at least 1). Trailing inputs with
 * u = 0 for every unit (the zero columns a conv layer pads its window with) add s = 0, which
 * changes neither a max of non-negative terms nor its first arg-max (an earlier input then
 * also holds the max), and q = 0 to every gradient: the lanes-over-units loops stop there. */
static int64_t used_inputs(const float *uT, int64_t N, int64_t Mp) {
    for (int64_t i = N - 1; i > 0; i--)
        for (int64_t j = 0; j < Mp; j++)
            if (uT[i * Mp + j] != 0.0f) return i + 1;
    return 1;
}

/* Store the first nj lanes of v at p. */
INLINE void vstore_n(float *p, vf v, int nj) {
    if (nj == VL)
        vstore(p, v);
    else
        memcpy(p, &v, sizeof(float) * (size_t)nj);
}

INLINE void vstore_n_i(int32_t *p, vi v, int nj) { memcpy(p, &v, sizeof(int32_t) * (size_t)nj); }

INLINE void fwd_uv_tile(const float *x, const float *wT, const float *uT, int64_t M, int64_t Mp,
                        int64_t N, int64_t ne, int64_t b0, int64_t j0, float *z, int32_t *idx,
                        const int NB, const int WANT_IDX) {
    vf best[UV_RB];
    vi bidx[UV_RB];
    for (int r = 0; r < NB; r++) {
        best[r] = vset(-1.0f);
        bidx[r] = (vi){0};
    }
    for (int64_t i = 0; i < ne; i++) {
        const vf wv = vload(wT + i * Mp + j0), uv = vload(uT + i * Mp + j0);
        const vi iv = (vi){0} + (int32_t)i;
        for (int r = 0; r < NB; r++) {
            const vf t = uv * (vset(x[(b0 + r) * N + i]) - wv);
            const vf s = t * t;
            if (WANT_IDX)
                vargext_step(&best[r], &bidx[r], s, iv, 0);
            else
                best[r] = vmax(best[r], s);
        }
    }
    const int nj = M - j0 < VL ? (int)(M - j0) : VL;
    for (int r = 0; r < NB; r++) {
        vstore_n(z + (b0 + r) * M + j0, best[r], nj);
        if (WANT_IDX) vstore_n_i(idx + (b0 + r) * M + j0, bidx[r], nj);
    }
}

static int fwd_uv(const float *x, const float *w, const float *u, int64_t B, int64_t M,
                  int64_t N, float *z, int32_t *idx, int nthreads) {
    const int64_t Mp = (M + VL - 1) / VL * VL, njv = Mp / VL, nrt = (B + UV_RB - 1) / UV_RB;
    float *wT = transpose_units(w, u, M, N, Mp, 0);
    if (!wT) return 3;
    const float *uT = wT + N * Mp;
    const int64_t ne = used_inputs(uT, N, Mp);
#pragma omp parallel for schedule(dynamic, 4) num_threads(nthreads) if (nthreads > 1)
    for (int64_t tile = 0; tile < nrt * njv; tile++) {
        /* row-major: a row tile's x stays in L1 while the transposes stream from L2 */
        const int64_t b0 = (tile / njv) * UV_RB, j0 = (tile % njv) * VL;
        if (b0 + UV_RB <= B) {
            if (idx)
                fwd_uv_tile(x, wT, uT, M, Mp, N, ne, b0, j0, z, idx, UV_RB, 1);
            else
                fwd_uv_tile(x, wT, uT, M, Mp, N, ne, b0, j0, z, NULL, UV_RB, 0);
        } else {
            for (int64_t b = b0; b < B; b++) {
                if (idx)
                    fwd_uv_tile(x, wT, uT, M, Mp, N, ne, b, j0, z, idx, 1, 1);
                else
                    fwd_uv_tile(x, wT, uT, M, Mp, N, ne, b, j0, z, NULL, 1, 0);
            }
        }
    }
    free(wT);
    return 0;
}

/* rbfi_forward in the given layout (LAYOUT_AUTO, _TILES, _UNITS): the same z and arg-max bits
 * either way (tests compare them). */
int rbfi_forward_layout(const float *x, const float *w, const float *u, int64_t B, int64_t M,
                        int64_t N, float *z, int32_t *idx, int nthreads, int layout) {
    if (N < 1 || B < 0 || M < 0) return 1;
    nthreads = clamp_threads(nthreads);
    if (B > 0 && M > 0 && use_units_layout(M, N, layout))
        return fwd_uv(x, w, u, B, M, N, z, idx, nthreads);
    if (idx)
        fwd_impl(x, w, u, B, M, N, z, idx, nthreads, 1);
    else
        fwd_impl(x, w, u, B, M, N, z, NULL, nthreads, 0);
    return 0;
}

/* z[b,j] = max_i (u[j,i] (x[b,i] - w[j,i]))^2; idx (may be NULL) gets the first arg-max. */
int rbfi_forward(const float *x, const float *w, const float *u, int64_t B, int64_t M,
                 int64_t N, float *z, int32_t *idx, int nthreads) {
    return rbfi_forward_layout(x, w, u, B, M, N, z, idx, nthreads, LAYOUT_AUTO);
}

/* ------------------------------------------------------ pseudogradient backward (eq. 11) */

/*
 * Notation: t = u (x - w), y = c (t^2 - z) with c = beta log2(e), so that the weight of eq. (11)
 * is exp(beta (s - z)) = 2^y, and q = 2 g 2^y t. Then
 *   dx[b,i] += q u[j,i],   Q[j,i] += q (dw = -u Q),   du[j,i] += q (x[b,i] - w[j,i]).
 *
 * Skipping: y >= -c z always (t^2 >= 0). A (b, j) pair is "dense" when -c z >= y_thr: no term
 * can fall below the threshold and no check is made. Otherwise a vector whose every lane has
 * y < y_thr is skipped, and lanes below y_thr in a computed vector are zeroed.
 */

/* zc[k] = c z[b, j0+k], g2[k] = 2 g[b, j0+k]; returns 1 when every pair (b, j0+k) is dense. */
INLINE int row_scalars(const float *z, const float *g, int64_t M, int64_t b, int64_t j0, int nj,
                       float c, float y_thr, float *zc, float *g2) {
    int dense = 1;
    for (int k = 0; k < nj; k++) {
        zc[k] = c * z[b * M + j0 + k];
        g2[k] = 2.0f * g[b * M + j0 + k];
        dense &= -zc[k] >= y_thr;
    }
    return dense;
}

/*
 * Units j0 .. j0+NJ against every batch row. For each vector of VL inputs, w and u of the NJ
 * units and their Q and DU accumulators stay in registers while the batch loop runs innermost;
 * dw = -u Q and du = DU are then written once. dx (if DX) accumulates into the rows of dxb.
 * zcT, g2T: row_scalars of row b at b * JB; denseT[b]: the pairs of row b are all dense.
 * Returns the number of skipped terms.
 */
INLINE int64_t bwd_units(const float *x, const float *w, const float *u, int64_t N, int64_t B,
                         int64_t j0, const float *zcT, const float *g2T, const int *denseT,
                         float c, float y_thr, float *dxb, float *dw, float *du, const int NJ,
                         const int DX, const int P) {
    int64_t skipped = 0;
    const vf cv = vset(c);
    int64_t i = 0;
    for (; i + VL <= N; i += VL) {
        vf wv[JB], uv[JB], qa[JB], da[JB];
        for (int k = 0; k < NJ; k++) {
            wv[k] = vload(w + (j0 + k) * N + i);
            uv[k] = vload(u + (j0 + k) * N + i);
            qa[k] = vset(0.0f);
            da[k] = vset(0.0f);
        }
        for (int64_t b = 0; b < B; b++) {
            const vf xv = vload(x + b * N + i);
            vf acc = vset(0.0f);
            if (DX) acc = vload(dxb + b * N + i);
            const float *zc = zcT + b * JB, *g2 = g2T + b * JB;
            const int dense = denseT[b];
            for (int k = 0; k < NJ; k++) {
                const vf d = xv - wv[k];
                const vf t = uv[k] * d;
                const vf y = t * (t * cv) - zc[k];
                vf e;
                if (dense) {
                    e = vexp2(y);
                } else {
                    const vi keep = y >= y_thr;
                    if (!vany(keep)) {
                        skipped += VL;
                        continue;
                    }
                    e = (vf)((vi)vexp2(vmax(y, vset(Y_MIN))) & keep);
                }
                const vf q = e * (t * g2[k]);
                if (DX) acc += q * uv[k];
                if (P) {
                    qa[k] += q;
                    da[k] += q * d;
                }
            }
            if (DX) vstore(dxb + b * N + i, acc);
        }
        if (P)
            for (int k = 0; k < NJ; k++) {
                vstore(dw + (j0 + k) * N + i, -(uv[k] * qa[k]));
                vstore(du + (j0 + k) * N + i, da[k]);
            }
    }
    for (; i < N; i++) { /* the last N mod VL inputs: same arithmetic, scalar */
        for (int k = 0; k < NJ; k++) {
            const float wk = w[(j0 + k) * N + i], uk = u[(j0 + k) * N + i];
            float qs = 0.0f, ds = 0.0f;
            for (int64_t b = 0; b < B; b++) {
                const float d = x[b * N + i] - wk;
                const float t = uk * d;
                const float y = t * (t * c) - zcT[b * JB + k];
                if (y < y_thr) { /* y_thr >= Y_MIN, so sexp2 below stays in range */
                    skipped++;
                    continue;
                }
                const float q = sexp2(y) * (t * g2T[b * JB + k]);
                if (DX) dxb[b * N + i] += q * uk;
                qs += q;
                ds += q * d;
            }
            if (P) {
                dw[(j0 + k) * N + i] = -uk * qs;
                du[(j0 + k) * N + i] = ds;
            }
        }
    }
    return skipped;
}

/* bwd_units for nj <= JB units starting at j0, after filling the per-row scalars. */
static int64_t bwd_block(const float *x, const float *w, const float *u, const float *z,
                         const float *g, int64_t B, int64_t M, int64_t N, int64_t j0, int nj,
                         float c, float y_thr, float *zcT, float *g2T, int *denseT, float *dxb,
                         float *dw, float *du) {
    for (int64_t b = 0; b < B; b++)
        denseT[b] = row_scalars(z, g, M, b, j0, nj, c, y_thr, zcT + b * JB, g2T + b * JB);
    const int DX = dxb != NULL, P = dw != NULL;
#define UNITS(NJ_, DX_, P_) \
    bwd_units(x, w, u, N, B, j0, zcT, g2T, denseT, c, y_thr, dxb, dw, du, NJ_, DX_, P_)
    if (nj == JB) {
        if (DX && P) return UNITS(JB, 1, 1);
        if (P) return UNITS(JB, 0, 1);
        return UNITS(JB, 1, 0);
    }
    int64_t skipped = 0;
    for (int k = 0; k < nj; k++) { /* a last, partial block: one unit at a time */
        for (int64_t b = 0; b < B; b++) {
            zcT[b * JB] = zcT[b * JB + k];
            g2T[b * JB] = g2T[b * JB + k];
            denseT[b] = -zcT[b * JB] >= y_thr;
        }
        const int64_t jk = j0 + k;
        if (DX && P)
            skipped += bwd_units(x, w, u, N, B, jk, zcT, g2T, denseT, c, y_thr, dxb, dw, du, 1,
                                 1, 1);
        else if (P)
            skipped += bwd_units(x, w, u, N, B, jk, zcT, g2T, denseT, c, y_thr, dxb, dw, du, 1,
                                 0, 1);
        else
            skipped += bwd_units(x, w, u, N, B, jk, zcT, g2T, denseT, c, y_thr, dxb, dw, du, 1,
                                 1, 0);
    }
#undef UNITS
    return skipped;
}

#define DX_CHUNKS 8
#define DX_PARTIAL_BYTES ((int64_t)64 << 20)

/*
 * The parameters' pseudogradient with lanes over units (no dx: the first layer of a conv net,
 * whose input needs no gradient), for the shapes fwd_uv takes. A vector of VL units and a block
 * of UB inputs keep w, u, Q and DU in registers while every row runs innermost (as bwd_units,
 * transposed); per row the units' c z and 2 g are one vector load each. The terms, their order
 * (over b, per (j, i)) and the skip rule are bwd_units': the same dw, du (tested); only
 * *skipped counts vectors of units instead of vectors of inputs. No padding of N is needed:
 * the loops stop at the last input some unit uses (used_inputs).
 */
#ifndef UB
#define UB (VL >= 16 ? 6 : 2)
#endif

INLINE int64_t bwd_uv_block(const float *x, const float *wT, const float *uT, const float *zcT,
                            const float *g2T, int64_t B, int64_t N, int64_t Mp, int64_t j0,
                            int64_t i0, float c, float y_thr, float *Qo, float *DUo,
                            const int NK) {
    vf wv[UB], uv[UB], qa[UB], da[UB];
    const vf cv = vset(c);
    int64_t skipped = 0;
    for (int k = 0; k < NK; k++) {
        wv[k] = vload(wT + (i0 + k) * Mp + j0);
        uv[k] = vload(uT + (i0 + k) * Mp + j0);
        qa[k] = da[k] = vset(0.0f);
    }
    for (int64_t b = 0; b < B; b++) {
        const vf zc = vload(zcT + b * Mp + j0), g2 = vload(g2T + b * Mp + j0);
        const int dense = !vany(-zc < vset(y_thr));
        for (int k = 0; k < NK; k++) {
            const vf d = vset(x[b * N + i0 + k]) - wv[k];
            const vf t = uv[k] * d;
            const vf y = t * (t * cv) - zc;
            vf e;
            if (dense) {
                e = vexp2(y);
            } else {
                const vi keep = y >= y_thr;
                if (!vany(keep)) {
                    skipped += VL;
                    continue;
                }
                e = (vf)((vi)vexp2(vmax(y, vset(Y_MIN))) & keep);
            }
            const vf q = e * (t * g2);
            qa[k] += q;
            da[k] += q * d;
        }
    }
    for (int k = 0; k < NK; k++) {
        vstore(Qo + k * VL, -(uv[k] * qa[k]));
        vstore(DUo + k * VL, da[k]);
    }
    return skipped;
}

static int bwd_uv_params(const float *x, const float *w, const float *u, const float *z,
                         const float *g, int64_t B, int64_t M, int64_t N, float c, float y_thr,
                         float *dw, float *du, int nthreads, int64_t *skipped) {
    const int64_t Mp = (M + VL - 1) / VL * VL, njv = Mp / VL;
    float *wT = transpose_units(w, u, M, N, Mp, 0);
    float *rows = (float *)calloc((size_t)(2 * B * Mp), sizeof(float)); /* c z, 2 g; 0 pads */
    if (!wT || !rows) {
        free(wT);
        free(rows);
        return 3;
    }
    const float *uT = wT + N * Mp;
    float *zcT = rows, *g2T = rows + B * Mp;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < M; j++) {
            zcT[b * Mp + j] = c * z[b * M + j];
            g2T[b * Mp + j] = 2.0f * g[b * M + j];
        }
    const int64_t ne = used_inputs(uT, N, Mp), nib = (ne + UB - 1) / UB;
    memset(dw, 0, sizeof(float) * (size_t)(M * N));
    memset(du, 0, sizeof(float) * (size_t)(M * N));
    int64_t total = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nthreads > 1) \
    reduction(+ : total)
    for (int64_t task = 0; task < njv * nib; task++) {
        const int64_t j0 = (task / nib) * VL, i0 = (task % nib) * UB;
        const int nk = ne - i0 < UB ? (int)(ne - i0) : UB;
        float Q[UB * VL], DU[UB * VL];
        if (nk == UB)
            total += bwd_uv_block(x, wT, uT, zcT, g2T, B, N, Mp, j0, i0, c, y_thr, Q, DU, UB);
        else
            for (int k = 0; k < nk; k++)
                total += bwd_uv_block(x, wT, uT, zcT, g2T, B, N, Mp, j0, i0 + k, c, y_thr,
                                      Q + k * VL, DU + k * VL, 1);
        for (int k = 0; k < nk; k++)
            for (int l = 0; l < VL && j0 + l < M; l++) {
                dw[(j0 + l) * N + i0 + k] = Q[k * VL + l];
                du[(j0 + l) * N + i0 + k] = DU[k * VL + l];
            }
    }
    free(wT);
    free(rows);
    if (skipped) *skipped = total;
    return 0;
}


/* bwd_block's scratch, one per thread, for up to `rows` rows: zcT and g2T (rows x JB), denseT
 * (rows). bwd_scratch_alloc returns 0 when an allocation failed (free it all the same). */
typedef struct {
    float *zcT, *g2T;
    int *denseT;
} bwd_scratch_t;

static int bwd_scratch_alloc(bwd_scratch_t *s, size_t rows) {
    s->zcT = (float *)malloc(sizeof(float) * rows * JB);
    s->g2T = (float *)malloc(sizeof(float) * rows * JB);
    s->denseT = (int *)malloc(sizeof(int) * rows);
    return s->zcT && s->g2T && s->denseT;
}

static void bwd_scratch_free(bwd_scratch_t *s) {
    free(s->zcT);
    free(s->g2T);
    free(s->denseT);
}

/*
 * Rows split instead of units, for many rows and few units (conv layers: B = batch x patches).
 * The unit split below gives each chunk of units its own buffer for dx (B N floats each: 18 MB
 * for a 2500 x 32 x 256 conv layer, zeroed and summed every call); here chunk r owns rows
 * [B r / R, B (r + 1) / R) outright, dx included, and only dw, du (M N each) get a buffer per
 * chunk, added in chunk order. R is fixed (DX_CHUNKS, or the thread count above it), so results
 * are bitwise reproducible as with the unit split. Taken when the unit split's dx buffers
 * would exceed ROW_SPLIT_BYTES, the rows outnumber the units 8 to 1 and there are at least
 * ROW_SPLIT_ROWS of them (an MLP's batch, up to 1000 rows, keeps the unit split and its bits).
 */
#define ROW_SPLIT_BYTES ((int64_t)2 << 20)
#define ROW_SPLIT_ROWS 2048

static int row_split(int64_t B, int64_t M, int64_t N, int nthreads, int64_t nblocks, int ndx) {
    int64_t nchunks = nthreads > DX_CHUNKS ? nthreads : DX_CHUNKS;
    if (nchunks > nblocks) nchunks = nblocks;
    const int64_t bytes = (nchunks - 1) * ndx * B * N * (int64_t)sizeof(float);
    return B >= ROW_SPLIT_ROWS && B >= 8 * M && bytes > ROW_SPLIT_BYTES;
}

static int bwd_rows(const float *x, const float *w, const float *u, const float *z,
                    const float *g, int64_t B, int64_t M, int64_t N, float c, float y_thr,
                    float *dx, float *dw, float *du, int nthreads, int64_t *skipped) {
    const int64_t nblocks = (M + JB - 1) / JB, mn = M * N;
    int64_t nchunks = nthreads > DX_CHUNKS ? nthreads : DX_CHUNKS;
    if (nchunks > B) nchunks = B;
    const int want_p = dw != NULL;
    float *partial = NULL; /* chunk ch >= 1: its dw at (ch - 1) 2 M N, its du after it */
    if (want_p && nchunks > 1) {
        partial = (float *)malloc(sizeof(float) * (size_t)((nchunks - 1) * 2 * mn));
        if (!partial) return 3;
    }
    int64_t total_skipped = 0;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(+ : total_skipped)
    {
        int tid, nt;
        thread_slot(&tid, &nt);
        bwd_scratch_t sc;
        const int ok = bwd_scratch_alloc(&sc, (size_t)(B / nchunks + 1));
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < nchunks; ch++) {
            if (!ok) continue;
            const int64_t b0 = B * ch / nchunks, nb = B * (ch + 1) / nchunks - b0;
            float *dwc = !want_p ? NULL : ch == 0 ? dw : partial + (size_t)((ch - 1) * 2 * mn);
            float *duc = !want_p ? NULL : ch == 0 ? du : dwc + mn;
            for (int64_t blk = 0; blk < nblocks; blk++) {
                const int64_t j0 = blk * JB;
                const int nj = M - j0 < JB ? (int)(M - j0) : JB;
                total_skipped += bwd_block(x + b0 * N, w, u, z + b0 * M, g + b0 * M, nb, M, N, j0,
                                           nj, c, y_thr, sc.zcT, sc.g2T, sc.denseT, dx + b0 * N,
                                           dwc, duc);
            }
        }
        bwd_scratch_free(&sc);
        /* (implicit barrier above) add the chunks' dw, du in chunk order, split by thread */
        if (want_p && nchunks > 1) {
            const int64_t k_lo = mn * tid / nt, k_hi = mn * (tid + 1) / nt;
            for (int64_t ch = 1; ch < nchunks; ch++) {
                const float *src = partial + (size_t)((ch - 1) * 2 * mn);
                for (int64_t k = k_lo; k < k_hi; k++) {
                    dw[k] += src[k];
                    du[k] += src[mn + k];
                }
            }
        }
    }
    free(partial);
    if (failed) return 3;
    if (skipped) *skipped = total_skipped;
    return 0;
}


/*
 * Pseudogradient backward. dx (B, N), dw and du (M, N) are outputs; dx may be NULL, and dw and
 * du may both be NULL (not one alone). Terms with beta (s - z) < -skip_t are dropped; with
 * skip_t = +inf only weights below 2^-125 (under float32's normal range) are. *skipped (may be
 * NULL) receives the number of terms whose computation was skipped.
 *
 * Threads take chunks of consecutive unit blocks dynamically (robust to a core busy with other
 * work); each block's dw and du rows are written by the one thread that runs it. dx is summed
 * over units: chunk c accumulates its units' share in its own buffer (chunk 0 in dx itself), in
 * unit order, and the buffers are added in chunk order at the end. The chunking depends only on
 * (M, B, N) and the thread count (not at all for up to DX_CHUNKS threads), never on the
 * scheduling, so results are bitwise reproducible. No atomics.
 */
int rbfi_backward_pseudo_layout(const float *x, const float *w, const float *u,
                                const float *z, const float *g, int64_t B, int64_t M, int64_t N,
                                float beta, float skip_t, float *dx, float *dw, float *du,
                                int nthreads, int64_t *skipped, int layout) {
    if (N < 1 || B < 0 || M < 0 || !(beta >= 0.0f)) return 1;
    if ((dw == NULL) != (du == NULL)) return 2;
    nthreads = clamp_threads(nthreads);
    const int want_dx = dx != NULL;
    if (want_dx) memset(dx, 0, sizeof(float) * (size_t)(B * N));
    if (skipped) *skipped = 0;
    if (M == 0 || (B == 0 && dw == NULL)) return 0;

    const float c = beta * 1.4426950408889634f; /* log2(e) */
    float y_thr = -skip_t * 1.4426950408889634f;
    if (!(y_thr >= Y_MIN)) y_thr = Y_MIN; /* weights < 2^-125 always dropped */

    const int64_t nblocks = (M + JB - 1) / JB;
    if (!want_dx && dw && B > 0 && use_units_layout(M, N, layout))
        return bwd_uv_params(x, w, u, z, g, B, M, N, c, y_thr, dw, du, nthreads, skipped);
    if (want_dx && row_split(B, M, N, nthreads, nblocks, 1))
        return bwd_rows(x, w, u, z, g, B, M, N, c, y_thr, dx, dw, du, nthreads, skipped);
    int64_t nchunks = nblocks; /* without dx, every block is its own chunk */
    if (want_dx) {
        nchunks = nthreads > DX_CHUNKS ? nthreads : DX_CHUNKS;
        const int64_t fit = 1 + DX_PARTIAL_BYTES / (int64_t)(sizeof(float) * B * N + 1);
        if (nchunks > fit) nchunks = fit > nthreads ? fit : nthreads;
        if (nchunks > nblocks) nchunks = nblocks;
    }
    float *partial = NULL;
    if (want_dx && nchunks > 1) {
        partial = (float *)calloc((size_t)(nchunks - 1) * (size_t)(B * N), sizeof(float));
        if (!partial) return 3;
    }
    int64_t total_skipped = 0;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(+ : total_skipped)
    {
        int tid, nt;
        thread_slot(&tid, &nt);
        bwd_scratch_t sc;
        const int ok = bwd_scratch_alloc(&sc, (size_t)(B > 0 ? B : 1));
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < nchunks; ch++) {
            if (!ok) continue;
            float *dxc = !want_dx ? NULL : ch == 0 ? dx : partial + (size_t)(ch - 1) * B * N;
            for (int64_t blk = nblocks * ch / nchunks; blk < nblocks * (ch + 1) / nchunks; blk++) {
                const int64_t j0 = blk * JB;
                const int nj = M - j0 < JB ? (int)(M - j0) : JB;
                total_skipped += bwd_block(x, w, u, z, g, B, M, N, j0, nj, c, y_thr, sc.zcT,
                                           sc.g2T, sc.denseT, dxc, dw, du);
            }
        }
        bwd_scratch_free(&sc);
        /* (implicit barrier above) add the chunk buffers in chunk order, rows split by thread */
        if (want_dx && nchunks > 1) {
            const int64_t r_lo = B * tid / nt, r_hi = B * (tid + 1) / nt;
            for (int64_t ch = 1; ch < nchunks; ch++) {
                const float *src = partial + (size_t)(ch - 1) * B * N;
                for (int64_t k = r_lo * N; k < r_hi * N; k++) dx[k] += src[k];
            }
        }
    }
    free(partial);
    if (failed) return 3;
    if (skipped) *skipped = total_skipped;
    return 0;
}

int rbfi_backward_pseudo(const float *x, const float *w, const float *u, const float *z,
                         const float *g, int64_t B, int64_t M, int64_t N, float beta,
                         float skip_t, float *dx, float *dw, float *du, int nthreads,
                         int64_t *skipped) {
    return rbfi_backward_pseudo_layout(x, w, u, z, g, B, M, N, beta, skip_t, dx, dw, du,
                                       nthreads, skipped, LAYOUT_AUTO);
}

/* ---------------------------------------------------------- true-gradient backward (eq. 10) */

/* ds = g at i = idx[b,j] only: O(B M) work. dx may be NULL; dw and du both or neither. */
int rbfi_backward_argmax(const float *x, const float *w, const float *u, const int32_t *idx,
                         const float *g, int64_t B, int64_t M, int64_t N, float *dx, float *dw,
                         float *du, int nthreads) {
    if (N < 1 || B < 0 || M < 0) return 1;
    if ((dw == NULL) != (du == NULL)) return 2;
    nthreads = clamp_threads(nthreads);
    if (dx) memset(dx, 0, sizeof(float) * (size_t)(B * N));
    if (dw) {
        memset(dw, 0, sizeof(float) * (size_t)(M * N));
        memset(du, 0, sizeof(float) * (size_t)(M * N));
    }
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        if (dx) {
#pragma omp for schedule(static)
            for (int64_t b = 0; b < B; b++)
                for (int64_t j = 0; j < M; j++) {
                    const int64_t i = idx[b * M + j];
                    const float uu = u[j * N + i];
                    const float t = uu * (x[b * N + i] - w[j * N + i]);
                    dx[b * N + i] += 2.0f * g[b * M + j] * t * uu;
                }
        }
        if (dw) {
#pragma omp for schedule(static)
            for (int64_t j = 0; j < M; j++)
                for (int64_t b = 0; b < B; b++) {
                    const int64_t i = idx[b * M + j];
                    const float uu = u[j * N + i];
                    const float d = x[b * N + i] - w[j * N + i];
                    const float q = 2.0f * g[b * M + j] * uu * d;
                    dw[j * N + i] -= q * uu;
                    du[j * N + i] += q * d;
                }
        }
    }
    return 0;
}

/* ============================================================ interval version (IBP) */

/*
 * For a box lo <= x <= hi (lo, hi: (B, N)) the exact range [z_lo, z_hi] of z:
 *
 *   near[b,j,i] = clamp(w, lo, hi) - w = max(lo - w, 0) + min(hi - w, 0)
 *   far[b,j,i]  = hi - w if (lo - w) + (hi - w) >= 0 else lo - w   (the farther end; hi on a tie)
 *   z_lo[b,j] = max_i (u near)^2,   z_hi[b,j] = max_i (u far)^2.
 *
 * Forward, with a = lo - w and b = w - hi (a + b = lo - hi <= 0):
 *   |near| = max(a, b, 0),   |far| = max(-a, -b) = -min(a, b),
 * the same float32 values as the formulas above (negation is exact, a rounded sum has the sign
 * of the exact one). Squaring is monotone in |t| also after rounding, so without arg-maxes the
 * kernel keeps the running max of |u| max(a, b) (from 0, which absorbs the clamp at 0) and the
 * running min of |u| min(a, b) (<= 0) and squares once at the end: 8 vector ops per (b, j, i)
 * against the 4 of the point kernel. With arg-maxes the same loop also remembers where each
 * running extreme last changed under a strict comparison: 12 vector ops, and the first arg-max
 * of s exactly (see ifwd_tile). With lo = hi = x both equal rbfi_forward's z.
 */

/* Interval forward register tiles (batch rows x units), plain and with arg-maxes. Each pair
 * needs two accumulators (four with arg-maxes), so the tiles are smaller than the point
 * kernel's 2 x 4. AVX2 (16 registers), first layer, 1 thread: plain 2 x 2 6.4 ms = 1 x 4 <
 * 2 x 4 6.7 < 1 x 8 7.3. Arg-max (the t-domain loop of ifwd_tile), first layer, 1 thread, on a
 * 2-core AMD EPYC: AVX2 2 x 2 9.8 ms < 1 x 2 11.5 < 1 x 3 13.2 < 2 x 1 13.8; AVX-512 2 x 2 9.7
 * < 1 x 4 10.4 < 2 x 3 10.7 = 1 x 3 (the squared-domain loop before: 13.0, AVX-512 1 x 4). The
 * AVX-512 plain size is a guess, unmeasured. */
#ifndef IFB
#define IFB 2
#endif
#ifndef IFJ
#define IFJ (VL >= 16 ? 4 : 2)
#endif
#ifndef IFB_IDX
#define IFB_IDX 2
#endif
#ifndef IFJ_IDX
#define IFJ_IDX 2
#endif
#define IFB_MAX (IFB > IFB_IDX ? IFB : IFB_IDX)
#define IFJ_MAX (IFJ > IFJ_IDX ? IFJ : IFJ_IDX)

INLINE vf vmin(vf a, vf b) {
#if defined(__AVX512F__)
    return (vf)_mm512_min_ps((__m512)a, (__m512)b);
#elif defined(__AVX__)
    return (vf)_mm256_min_ps((__m256)a, (__m256)b);
#else
    return vsel(a < b, a, b);
#endif
}

INLINE vf vabs(vf a) { return (vf)((vi)a & ((vi){0} + INT32_MAX)); }

INLINE float hmin(vf v) {
    for (int sh = VL / 2; sh >= 1; sh /= 2) v = vmin(v, __builtin_shuffle(v, rotate_perm(sh)));
    return v[0];
}

/* first index among the lanes of bidx whose best equals m */
INLINE int32_t first_lane_index(vf best, vi bidx, float m) {
    const vi at_max = best == vset(m);
    return hmin_i(visel(at_max, bidx, (vi){0} + INT32_MAX));
}

/* The exact first arg-maxes of s_near = (|u| max(a, b, 0))^2 and s_far = (|u| min(a, b))^2 of
 * one (row, unit) pair by a plain scalar scan with a strict `>` (the fallback of ifwd_tile). */
static void ifwd_scan_exact(const float *lr, const float *hr, const float *wr, const float *ur,
                            int64_t N, float *zn, float *zf, int32_t *kn, int32_t *kf) {
    float mn = -1.0f, mf = -1.0f;
    for (int64_t k = 0; k < N; k++) {
        const float a = lr[k] - wr[k], b = wr[k] - hr[k];
        const float ua = ur[k] < 0.0f ? -ur[k] : ur[k];
        const float ab = a > b ? a : b;
        const float tn = ua * (ab > 0.0f ? ab : 0.0f), tf = ua * (a < b ? a : b);
        const float sn = tn * tn, sf = tf * tf;
        if (sn > mn) {
            mn = sn;
            *kn = (int32_t)k;
        }
        if (sf > mf) {
            mf = sf;
            *kf = (int32_t)k;
        }
    }
    *zn = mn;
    *zf = mf;
}

/* The t-domain arg-max is the s-domain one when the extreme |t| lies in [2^-60, 2^60] (or is
 * 0, all t then 0): there fl(t^2) is strictly increasing in |t| (consecutive floats' squares
 * differ by more than an ulp), so s ties exactly where |t| ties. */
#define T_EXACT_MIN 8.673617379884035e-19f /* 2^-60 */
#define T_EXACT_MAX 1.152921504606847e18f  /* 2^60 */
INLINE int t_exact(float t) {
    const float a = t < 0.0f ? -t : t;
    return a == 0.0f || (a >= T_EXACT_MIN && a <= T_EXACT_MAX);
}

/*
 * One register tile of the interval forward: rows b0 .. b0+NB, units j0 .. j0+NJ.
 *
 * Both modes keep tn = |u| max(a, b) and tf = |u| min(a, b) per element (no squares): the plain
 * mode their running max (from 0, absorbing the clamp at 0) and min, squared once at the end.
 * With WANT_IDX also, per lane, the index where the running max (min) last changed under a
 * strict comparison, i.e. the first occurrence; across lanes the smallest index holding the
 * extreme. That is the first arg-max of s itself (what a strict `>` scan over the squares
 * gives) whenever t_exact holds for the extreme; a pair where it does not (an extreme |t| in
 * (0, 2^-60) or beyond 2^60, or NaN) is rescanned exactly, squares and all.
 */
INLINE void ifwd_tile(const float *lo, const float *hi, const float *w, const float *u,
                      int64_t M, int64_t N, int64_t b0, int64_t j0, float *zl, float *zh,
                      int32_t *il, int32_t *ih, const int NB, const int NJ, const int WANT_IDX) {
    vf bn[IFB_MAX][IFJ_MAX], bf[IFB_MAX][IFJ_MAX];
    vi jn[IFB_MAX][IFJ_MAX], jf[IFB_MAX][IFJ_MAX];
    vi lane;
    for (int k = 0; k < VL; k++) lane[k] = k;
    for (int bb = 0; bb < NB; bb++)
        for (int jj = 0; jj < NJ; jj++) {
            bn[bb][jj] = bf[bb][jj] = vset(0.0f);
            if (WANT_IDX) jn[bb][jj] = jf[bb][jj] = lane;
        }
    int64_t i = 0;
    vi iv = lane;
    for (; i + VL <= N; i += VL) {
        vf lv[IFB_MAX], hv[IFB_MAX];
        for (int bb = 0; bb < NB; bb++) {
            lv[bb] = vload(lo + (b0 + bb) * N + i);
            hv[bb] = vload(hi + (b0 + bb) * N + i);
        }
        for (int jj = 0; jj < NJ; jj++) {
            const vf wv = vload(w + (j0 + jj) * N + i);
            const vf ua = vabs(vload(u + (j0 + jj) * N + i));
            for (int bb = 0; bb < NB; bb++) {
                const vf a = lv[bb] - wv, b = wv - hv[bb];
                const vf tn = ua * vmax(a, b), tf = ua * vmin(a, b);
                if (WANT_IDX) {
                    vargext_step(&bn[bb][jj], &jn[bb][jj], tn, iv, 0);
                    vargext_step(&bf[bb][jj], &jf[bb][jj], tf, iv, 1);
                } else {
                    bn[bb][jj] = vmax(bn[bb][jj], tn);
                    bf[bb][jj] = vmin(bf[bb][jj], tf);
                }
            }
        }
        if (WANT_IDX) iv += VL;
    }
    for (int bb = 0; bb < NB; bb++)
        for (int jj = 0; jj < NJ; jj++) {
            const float *lr = lo + (b0 + bb) * N, *hr = hi + (b0 + bb) * N;
            const float *wr = w + (j0 + jj) * N, *ur = u + (j0 + jj) * N;
            const int64_t o = (b0 + bb) * M + j0 + jj;
            float mn = hmax(bn[bb][jj]), mf = hmin(bf[bb][jj]);
            int32_t kn = 0, kf = 0;
            if (WANT_IDX && i > 0) {
                kn = first_lane_index(bn[bb][jj], jn[bb][jj], mn);
                kf = first_lane_index(bf[bb][jj], jf[bb][jj], mf);
            }
            for (int64_t k = i; k < N; k++) {
                const float a = lr[k] - wr[k], b = wr[k] - hr[k];
                const float ua = ur[k] < 0.0f ? -ur[k] : ur[k];
                const float tn = ua * (a > b ? a : b), tf = ua * (a < b ? a : b);
                if (tn > mn) {
                    mn = tn;
                    kn = (int32_t)k;
                }
                if (tf < mf) {
                    mf = tf;
                    kf = (int32_t)k;
                }
            }
            if (WANT_IDX && !(t_exact(mn) && t_exact(mf))) {
                float sn, sf;
                ifwd_scan_exact(lr, hr, wr, ur, N, &sn, &sf, &kn, &kf);
            }
            zl[o] = mn * mn;
            zh[o] = mf * mf;
            if (il) il[o] = kn;
            if (ih) ih[o] = kf;
        }
}

/* Tiles go unit-major to threads, as in fwd_impl. One parallel loop per mode, each with
 * constant flags and tile (OpenMP outlines the region before inlining, so a shared loop would
 * test WANT_IDX inside the hot loop and allocate registers for both modes). */
#define IFWD_LOOP(TB, TJ, WANT_IDX_)                                                              \
    do {                                                                                          \
        const int64_t nbb = (B + (TB) - 1) / (TB), njb = (M + (TJ) - 1) / (TJ);                   \
        _Pragma("omp parallel for schedule(dynamic, 8) num_threads(nthreads) if (nthreads > 1)") \
        for (int64_t tile = 0; tile < nbb * njb; tile++) {                                        \
            const int64_t j0 = (tile / nbb) * (TJ), b0 = (tile % nbb) * (TB);                     \
            if (b0 + (TB) <= B && j0 + (TJ) <= M) {                                               \
                ifwd_tile(lo, hi, w, u, M, N, b0, j0, zl, zh, il, ih, TB, TJ, WANT_IDX_);         \
            } else {                                                                              \
                for (int64_t b = b0; b < B && b < b0 + (TB); b++)                                 \
                    for (int64_t j = j0; j < M && j < j0 + (TJ); j++)                             \
                        ifwd_tile(lo, hi, w, u, M, N, b, j, zl, zh, il, ih, 1, 1, WANT_IDX_);     \
            }                                                                                     \
        }                                                                                         \
    } while (0)

static void ifwd_plain(const float *lo, const float *hi, const float *w, const float *u,
                       int64_t B, int64_t M, int64_t N, float *zl, float *zh, int nthreads) {
    int32_t *il = NULL, *ih = NULL;
    IFWD_LOOP(IFB, IFJ, 0);
}

static void ifwd_idx(const float *lo, const float *hi, const float *w, const float *u,
                     int64_t B, int64_t M, int64_t N, float *zl, float *zh, int32_t *il,
                     int32_t *ih, int nthreads) {
    IFWD_LOOP(IFB_IDX, IFJ_IDX, 1);
}

/*
 * The interval forward with lanes over units (see fwd_uv): per lane the running max of
 * tn = |u| max(a, b) from 0 and the running min of tf = |u| min(a, b), squared at the end (as
 * ifwd_tile's plain mode); with WANT_IDX the squares themselves under a strict `>` from -1,
 * i.e. the first arg-maxes of s exactly (as ifwd_scan_exact), and the same z: squaring is
 * monotone after rounding, so max fl(t^2) = fl(max |t|)^2.
 */
INLINE void ifwd_uv_tile(const float *lo, const float *hi, const float *wT, const float *uT,
                         int64_t M, int64_t Mp, int64_t N, int64_t ne, int64_t b0, int64_t j0,
                         float *zl, float *zh, int32_t *il, int32_t *ih, const int NB,
                         const int WANT_IDX) {
    vf bn[UV_RB], bf[UV_RB];
    vi kn[UV_RB], kf[UV_RB];
    for (int r = 0; r < NB; r++) {
        bn[r] = WANT_IDX ? vset(-1.0f) : vset(0.0f);
        bf[r] = WANT_IDX ? vset(-1.0f) : vset(0.0f);
        kn[r] = kf[r] = (vi){0};
    }
    for (int64_t i = 0; i < ne; i++) {
        const vf wv = vload(wT + i * Mp + j0), ua = vload(uT + i * Mp + j0);
        const vi iv = (vi){0} + (int32_t)i;
        for (int r = 0; r < NB; r++) {
            const vf a = vset(lo[(b0 + r) * N + i]) - wv, b = wv - vset(hi[(b0 + r) * N + i]);
            if (WANT_IDX) {
                const vf tn = ua * vmax(vmax(a, b), vset(0.0f)), tf = ua * vmin(a, b);
                vargext_step(&bn[r], &kn[r], tn * tn, iv, 0);
                vargext_step(&bf[r], &kf[r], tf * tf, iv, 0);
            } else {
                bn[r] = vmax(bn[r], ua * vmax(a, b));
                bf[r] = vmin(bf[r], ua * vmin(a, b));
            }
        }
    }
    const int nj = M - j0 < VL ? (int)(M - j0) : VL;
    for (int r = 0; r < NB; r++) {
        const int64_t o = (b0 + r) * M + j0;
        vstore_n(zl + o, WANT_IDX ? bn[r] : bn[r] * bn[r], nj);
        vstore_n(zh + o, WANT_IDX ? bf[r] : bf[r] * bf[r], nj);
        if (WANT_IDX && il) vstore_n_i(il + o, kn[r], nj);
        if (WANT_IDX && ih) vstore_n_i(ih + o, kf[r], nj);
    }
}

static int ifwd_uv(const float *lo, const float *hi, const float *w, const float *u, int64_t B,
                   int64_t M, int64_t N, float *zl, float *zh, int32_t *il, int32_t *ih,
                   int nthreads) {
    const int64_t Mp = (M + VL - 1) / VL * VL, njv = Mp / VL, nrt = (B + UV_RB - 1) / UV_RB;
    const int want_idx = il != NULL || ih != NULL;
    float *wT = transpose_units(w, u, M, N, Mp, 1);
    if (!wT) return 3;
    const float *uT = wT + N * Mp;
    const int64_t ne = used_inputs(uT, N, Mp);
#pragma omp parallel for schedule(dynamic, 4) num_threads(nthreads) if (nthreads > 1)
    for (int64_t tile = 0; tile < nrt * njv; tile++) {
        const int64_t b0 = (tile / njv) * UV_RB, j0 = (tile % njv) * VL;
        if (b0 + UV_RB <= B) {
            if (want_idx)
                ifwd_uv_tile(lo, hi, wT, uT, M, Mp, N, ne, b0, j0, zl, zh, il, ih, UV_RB, 1);
            else
                ifwd_uv_tile(lo, hi, wT, uT, M, Mp, N, ne, b0, j0, zl, zh, il, ih, UV_RB, 0);
        } else {
            for (int64_t b = b0; b < B; b++) {
                if (want_idx)
                    ifwd_uv_tile(lo, hi, wT, uT, M, Mp, N, ne, b, j0, zl, zh, il, ih, 1, 1);
                else
                    ifwd_uv_tile(lo, hi, wT, uT, M, Mp, N, ne, b, j0, zl, zh, il, ih, 1, 0);
            }
        }
    }
    free(wT);
    return 0;
}

/* rbfi_interval_forward in the given layout (as rbfi_forward_layout). */
int rbfi_interval_forward_layout(const float *lo, const float *hi, const float *w,
                                 const float *u, int64_t B, int64_t M, int64_t N, float *z_lo,
                                 float *z_hi, int32_t *idx_lo, int32_t *idx_hi, int nthreads,
                                 int layout) {
    if (N < 1 || B < 0 || M < 0) return 1;
    nthreads = clamp_threads(nthreads);
    if (B > 0 && M > 0 && use_units_layout(M, N, layout))
        return ifwd_uv(lo, hi, w, u, B, M, N, z_lo, z_hi, idx_lo, idx_hi, nthreads);
    if (idx_lo || idx_hi)
        ifwd_idx(lo, hi, w, u, B, M, N, z_lo, z_hi, idx_lo, idx_hi, nthreads);
    else
        ifwd_plain(lo, hi, w, u, B, M, N, z_lo, z_hi, nthreads);
    return 0;
}

/* z_lo[b,j] = max_i (u near)^2, z_hi[b,j] = max_i (u far)^2 over the box [lo, hi] (lo <= hi);
 * idx_lo, idx_hi (each may be NULL) get the first arg-maxes. */
int rbfi_interval_forward(const float *lo, const float *hi, const float *w, const float *u,
                          int64_t B, int64_t M, int64_t N, float *z_lo, float *z_hi,
                          int32_t *idx_lo, int32_t *idx_hi, int nthreads) {
    return rbfi_interval_forward_layout(lo, hi, w, u, B, M, N, z_lo, z_hi, idx_lo, idx_hi,
                                        nthreads, LAYOUT_AUTO);
}

/*
 * Interval pseudogradient backward (eq. 11 for both maxes), one pass. Per (b, j, i):
 *   dl = lo - w, dh = hi - w, far_hi = dl + dh >= 0,
 *   d_n = max(dl, min(dh, 0)) (= near),  d_f = far_hi ? dh : dl (= far),
 *   t = u d,  q = 2 g 2^(c (t^2 - z)) t  with c = beta log2(e), for (d_n, z_lo, g_lo) and
 *   (d_f, z_hi, g_hi): two exps, each computed once and feeding every accumulation:
 *   Q[j,i] += q_n + q_f (dw = -u Q),   du[j,i] += q_n d_n + q_f d_f,
 *   dhi[b,i] += u (far_hi ? q_f : q_n),   dlo[b,i] += u (far_hi ? q_n : q_f).
 * The last line routes each q to the end its d was measured to: whenever q_n != 0, w lies
 * outside [lo, hi] and the near end is the one opposite the far end (w inside: d_n = 0, q_n = 0).
 * Dense (nothing skipped). y >= -c z always, so a row whose c z <= 125 needs no clamp; other
 * rows clamp y to the polynomial's range [-125, 127].
 */
#ifndef IJB
#define IJB (VL >= 16 ? 4 : 2)
#endif
#define Y_MAX 127.0f

typedef struct {
    float *zl, *zh, *gl, *gh; /* per row b, at b * IJB + k: c z_lo, c z_hi, 2 g_lo, 2 g_hi */
    int *clamp;               /* per row: some pair needs the exponent clamped */
} irow_t;

INLINE vf vclamp_y(vf y) { return vmin(vmax(y, vset(Y_MIN)), vset(Y_MAX)); }
INLINE float sclamp_y(float y) { return y < Y_MIN ? Y_MIN : y > Y_MAX ? Y_MAX : y; }

INLINE void ibwd_units(const float *lo, const float *hi, const float *w, const float *u,
                       int64_t N, int64_t B, int64_t j0, irow_t rs, float c, float *dlob,
                       float *dhib, float *dw, float *du, const int NJ, const int DX,
                       const int P) {
    const vf cv = vset(c), zero = vset(0.0f);
    int64_t i = 0;
    for (; i + VL <= N; i += VL) {
        vf wv[IJB], uv[IJB], qa[IJB], da[IJB];
        for (int k = 0; k < NJ; k++) {
            wv[k] = vload(w + (j0 + k) * N + i);
            uv[k] = vload(u + (j0 + k) * N + i);
            qa[k] = da[k] = zero;
        }
        for (int64_t b = 0; b < B; b++) {
            const vf lv = vload(lo + b * N + i), hv = vload(hi + b * N + i);
            vf accl = zero, acch = zero;
            if (DX) {
                accl = vload(dlob + b * N + i);
                acch = vload(dhib + b * N + i);
            }
            const float *zl = rs.zl + b * IJB, *zh = rs.zh + b * IJB;
            const float *gl = rs.gl + b * IJB, *gh = rs.gh + b * IJB;
            const int clamp = rs.clamp[b];
            for (int k = 0; k < NJ; k++) {
                const vf dl = lv - wv[k], dh = hv - wv[k];
                const vi far_hi = dl + dh >= 0.0f;
                const vf df = vsel(far_hi, dh, dl), dn = vmax(dl, vmin(dh, zero));
                const vf tn = uv[k] * dn, tf = uv[k] * df;
                vf yn = tn * (tn * cv) - zl[k], yf = tf * (tf * cv) - zh[k];
                if (clamp) {
                    yn = vclamp_y(yn);
                    yf = vclamp_y(yf);
                }
                const vf qn = vexp2(yn) * (tn * gl[k]), qf = vexp2(yf) * (tf * gh[k]);
                if (DX) {
                    acch += vsel(far_hi, qf, qn) * uv[k];
                    accl += vsel(far_hi, qn, qf) * uv[k];
                }
                if (P) {
                    qa[k] += qn + qf;
                    da[k] += qn * dn + qf * df;
                }
            }
            if (DX) {
                vstore(dlob + b * N + i, accl);
                vstore(dhib + b * N + i, acch);
            }
        }
        if (P)
            for (int k = 0; k < NJ; k++) {
                vstore(dw + (j0 + k) * N + i, -(uv[k] * qa[k]));
                vstore(du + (j0 + k) * N + i, da[k]);
            }
    }
    for (; i < N; i++) { /* the last N mod VL inputs: same arithmetic, scalar */
        for (int k = 0; k < NJ; k++) {
            const float wk = w[(j0 + k) * N + i], uk = u[(j0 + k) * N + i];
            float qs = 0.0f, ds = 0.0f;
            for (int64_t b = 0; b < B; b++) {
                const float dl = lo[b * N + i] - wk, dh = hi[b * N + i] - wk;
                const int far_hi = dl + dh >= 0.0f;
                const float df = far_hi ? dh : dl;
                const float dhm = dh < 0.0f ? dh : 0.0f;
                const float dn = dl > dhm ? dl : dhm;
                const float tn = uk * dn, tf = uk * df;
                float yn = tn * (tn * c) - rs.zl[b * IJB + k];
                float yf = tf * (tf * c) - rs.zh[b * IJB + k];
                if (rs.clamp[b]) {
                    yn = sclamp_y(yn);
                    yf = sclamp_y(yf);
                }
                const float qn = sexp2(yn) * (tn * rs.gl[b * IJB + k]);
                const float qf = sexp2(yf) * (tf * rs.gh[b * IJB + k]);
                if (DX) {
                    dhib[b * N + i] += (far_hi ? qf : qn) * uk;
                    dlob[b * N + i] += (far_hi ? qn : qf) * uk;
                }
                qs += qn + qf;
                ds += qn * dn + qf * df;
            }
            if (P) {
                dw[(j0 + k) * N + i] = -uk * qs;
                du[(j0 + k) * N + i] = ds;
            }
        }
    }
}

/* Fill the per-row scalars of units j0 .. j0+nj (slots 0 .. nj-1). */
static void irow_fill(irow_t rs, const float *z_lo, const float *z_hi, const float *g_lo,
                      const float *g_hi, int64_t B, int64_t M, int64_t j0, int nj, float c) {
    for (int64_t b = 0; b < B; b++) {
        int clamp = 0;
        for (int k = 0; k < nj; k++) {
            const int64_t o = b * M + j0 + k;
            rs.zl[b * IJB + k] = c * z_lo[o];
            rs.zh[b * IJB + k] = c * z_hi[o];
            rs.gl[b * IJB + k] = 2.0f * g_lo[o];
            rs.gh[b * IJB + k] = 2.0f * g_hi[o];
            /* y >= -c z, so the polynomial's lower limit is safe when c z <= 125 */
            clamp |= !(rs.zl[b * IJB + k] <= -Y_MIN && rs.zh[b * IJB + k] <= -Y_MIN);
        }
        rs.clamp[b] = clamp;
    }
}

static void ibwd_block(const float *lo, const float *hi, const float *w, const float *u,
                       const float *z_lo, const float *z_hi, const float *g_lo,
                       const float *g_hi, int64_t B, int64_t M, int64_t N, int64_t j0, int nj,
                       float c, irow_t rs, float *dlob, float *dhib, float *dw, float *du) {
    const int DX = dlob != NULL, P = dw != NULL;
#define IUNITS(JJ, NJ_, DX_, P_) \
    ibwd_units(lo, hi, w, u, N, B, JJ, rs, c, dlob, dhib, dw, du, NJ_, DX_, P_)
    if (nj == IJB) {
        irow_fill(rs, z_lo, z_hi, g_lo, g_hi, B, M, j0, nj, c);
        if (DX && P)
            IUNITS(j0, IJB, 1, 1);
        else if (P)
            IUNITS(j0, IJB, 0, 1);
        else
            IUNITS(j0, IJB, 1, 0);
        return;
    }
    for (int k = 0; k < nj; k++) { /* a last, partial block: one unit at a time */
        const int64_t jk = j0 + k;
        irow_fill(rs, z_lo, z_hi, g_lo, g_hi, B, M, jk, 1, c);
        if (DX && P)
            IUNITS(jk, 1, 1, 1);
        else if (P)
            IUNITS(jk, 1, 0, 1);
        else
            IUNITS(jk, 1, 1, 0);
    }
#undef IUNITS
}

/*
 * Interval pseudogradient backward. dlo, dhi (B, N) and dw, du (M, N) are outputs; dlo and dhi
 * may be NULL together, dw and du may be NULL together. Threads and reproducibility as in
 * rbfi_backward_pseudo: unit blocks in fixed chunks taken dynamically, each chunk accumulating
 * its share of dlo and dhi in its own buffers (chunk 0 in dlo, dhi themselves), the buffers
 * added in chunk order at the end; dw, du rows each written by one thread. No atomics, so
 * results are bitwise reproducible for a given thread count (and up to DX_CHUNKS threads
 * independent of it).
 */
int rbfi_interval_backward_pseudo(const float *lo, const float *hi, const float *w,
                                  const float *u, const float *z_lo, const float *z_hi,
                                  const float *g_lo, const float *g_hi, int64_t B, int64_t M,
                                  int64_t N, float beta, float *dlo, float *dhi, float *dw,
                                  float *du, int nthreads) {
    if (N < 1 || B < 0 || M < 0 || !(beta >= 0.0f)) return 1;
    if ((dw == NULL) != (du == NULL) || (dlo == NULL) != (dhi == NULL)) return 2;
    nthreads = clamp_threads(nthreads);
    const int want_dx = dlo != NULL;
    if (want_dx) {
        memset(dlo, 0, sizeof(float) * (size_t)(B * N));
        memset(dhi, 0, sizeof(float) * (size_t)(B * N));
    }
    if (dw && (B == 0 || M == 0)) {
        memset(dw, 0, sizeof(float) * (size_t)(M * N));
        memset(du, 0, sizeof(float) * (size_t)(M * N));
    }
    if (M == 0 || B == 0) return 0;

    const float c = beta * 1.4426950408889634f; /* log2(e) */
    const int64_t nblocks = (M + IJB - 1) / IJB;
    int64_t nchunks = nblocks; /* without dlo/dhi, every block is its own chunk */
    const size_t bn = (size_t)(B * N);
    if (want_dx) {
        nchunks = nthreads > DX_CHUNKS ? nthreads : DX_CHUNKS;
        const int64_t fit = 1 + DX_PARTIAL_BYTES / (int64_t)(2 * sizeof(float) * bn + 1);
        if (nchunks > fit) nchunks = fit > nthreads ? fit : nthreads;
        if (nchunks > nblocks) nchunks = nblocks;
    }
    float *partial = NULL; /* chunk ch >= 1: dlo share at (ch - 1) 2 B N, dhi share after it */
    if (want_dx && nchunks > 1) {
        partial = (float *)calloc((size_t)(nchunks - 1) * 2 * bn, sizeof(float));
        if (!partial) return 3;
    }
    int failed = 0;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int tid, nt;
        thread_slot(&tid, &nt);
        const size_t rows = (size_t)B;
        irow_t rs;
        rs.zl = (float *)malloc(sizeof(float) * rows * IJB * 4);
        rs.clamp = (int *)malloc(sizeof(int) * rows);
        const int ok = rs.zl && rs.clamp;
        if (ok) {
            rs.zh = rs.zl + rows * IJB;
            rs.gl = rs.zh + rows * IJB;
            rs.gh = rs.gl + rows * IJB;
        } else {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < nchunks; ch++) {
            if (!ok) continue;
            float *dlc = NULL, *dhc = NULL;
            if (want_dx) {
                dlc = ch == 0 ? dlo : partial + (size_t)(ch - 1) * 2 * bn;
                dhc = ch == 0 ? dhi : dlc + bn;
            }
            for (int64_t blk = nblocks * ch / nchunks; blk < nblocks * (ch + 1) / nchunks; blk++) {
                const int64_t j0 = blk * IJB;
                const int nj = M - j0 < IJB ? (int)(M - j0) : IJB;
                ibwd_block(lo, hi, w, u, z_lo, z_hi, g_lo, g_hi, B, M, N, j0, nj, c, rs, dlc,
                           dhc, dw, du);
            }
        }
        free(rs.zl);
        free(rs.clamp);
        /* (implicit barrier above) add the chunk buffers in chunk order, rows split by thread */
        if (want_dx && nchunks > 1) {
            const int64_t r_lo = B * tid / nt, r_hi = B * (tid + 1) / nt;
            for (int64_t ch = 1; ch < nchunks; ch++) {
                const float *src = partial + (size_t)(ch - 1) * 2 * bn;
                for (int64_t k = r_lo * N; k < r_hi * N; k++) {
                    dlo[k] += src[k];
                    dhi[k] += src[bn + k];
                }
            }
        }
    }
    free(partial);
    return failed ? 3 : 0;
}

/*
 * Interval true-gradient backward (eq. 10 for both maxes): O(B M) work. For each (b, j) and each
 * max, at i = idx[b,j] only, with dl = lo - w, dh = hi - w at (b, j, i):
 *   near: d = max(dl, 0) + min(dh, 0), the gradient goes to hi where d < 0, else to lo;
 *   far:  far_hi = dl + dh >= 0, d = far_hi ? dh : dl, the gradient goes to hi where far_hi;
 *   q = 2 g u d:  dlo or dhi[b,i] += q u,  dw[j,i] += -q u,  du[j,i] += q d
 * (the arithmetic of rbfi.ops.chunked.interval_argmax_backward, term by term).
 *
 * Two passes, each walking memory in order: pass 1 goes unit by unit (w, u, dw, du rows in L1,
 * the gathers from lo, hi within B rows), sums dw, du and parks q u of every term in qlo or qhi
 * (the other gets 0); pass 2 goes row by row and adds the parked terms into dlo, dhi. dw, du are
 * summed per unit over b, dlo, dhi per row over j, near terms before far ones: no atomics,
 * bitwise reproducible whatever the thread count. dlo, dhi may be NULL together, dw, du too.
 */
INLINE float iarg_offset(float lo, float hi, float w, int far, int *to_hi) {
    const float dl = lo - w, dh = hi - w;
    if (far) {
        *to_hi = dl + dh >= 0.0f;
        return *to_hi ? dh : dl;
    }
    const float d = (dl > 0.0f ? dl : 0.0f) + (dh < 0.0f ? dh : 0.0f);
    *to_hi = d < 0.0f;
    return d;
}

int rbfi_interval_backward_argmax(const float *lo, const float *hi, const float *w,
                                  const float *u, const int32_t *idx_lo, const int32_t *idx_hi,
                                  const float *g_lo, const float *g_hi, int64_t B, int64_t M,
                                  int64_t N, float *dlo, float *dhi, float *dw, float *du,
                                  int nthreads) {
    if (N < 1 || B < 0 || M < 0) return 1;
    if ((dw == NULL) != (du == NULL) || (dlo == NULL) != (dhi == NULL)) return 2;
    nthreads = clamp_threads(nthreads);
    if (dlo) {
        memset(dlo, 0, sizeof(float) * (size_t)(B * N));
        memset(dhi, 0, sizeof(float) * (size_t)(B * N));
    }
    if (dw && B == 0) {
        memset(dw, 0, sizeof(float) * (size_t)(M * N));
        memset(du, 0, sizeof(float) * (size_t)(M * N));
    }
    if (B == 0 || M == 0) return 0;
    const size_t bm = (size_t)(B * M);
    float *parked = NULL; /* [near, far] x [to lo, to hi] x (B, M) */
    if (dlo) {
        parked = (float *)malloc(sizeof(float) * 4 * bm);
        if (!parked) return 3;
    }
    const int32_t *idxs[2] = {idx_lo, idx_hi};
    const float *gs[2] = {g_lo, g_hi};
    /* Per unit the terms are summed over b in order, near terms before far ones, whatever the
     * loop order below, so the bits do not depend on it. When the units' dw, du rows fit in
     * L2 (conv layers: few units, short windows, B = batch x patches rows) the rows go outer
     * and every array is walked in order; otherwise (an MLP's 512 x 784) units go outer over
     * blocks of rows whose lo, hi fit in L2. */
    const int rows_outer = dw == NULL || M * N <= 16384;
    const int64_t rows_per_block = N >= 32768 ? 1 : 32768 / N;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && B * M >= 4096)
    {
        int tid, nt;
        thread_slot(&tid, &nt);
        const int64_t j_lo = M * tid / nt, j_hi = M * (tid + 1) / nt; /* this thread's units */
        for (int64_t j = j_lo; j < j_hi && dw; j++) { /* zeroed by the thread that sums them */
            memset(dw + j * N, 0, sizeof(float) * (size_t)N);
            memset(du + j * N, 0, sizeof(float) * (size_t)N);
        }
        for (int far = 0; far < 2; far++) {
            const int32_t *idx = idxs[far];
            const float *g = gs[far];
            float *pl = parked ? parked + (size_t)(2 * far) * bm : NULL;
            float *ph = parked ? pl + bm : NULL;
#define IARG_TERM(b, j)                                                                      \
    do {                                                                                     \
        const int64_t o = (b) * M + (j), i = idx[o];                                         \
        const float uu = u[(j) * N + i];                                                     \
        int to_hi;                                                                           \
        const float d = iarg_offset(lo[(b) * N + i], hi[(b) * N + i], w[(j) * N + i], far,   \
                                    &to_hi);                                                 \
        const float q = 2.0f * g[o] * uu * d;                                                \
        if (dw) {                                                                            \
            dw[(j) * N + i] += -q * uu;                                                      \
            du[(j) * N + i] += q * d;                                                        \
        }                                                                                    \
        if (parked) {                                                                        \
            const float qu = q * uu;                                                         \
            pl[o] = to_hi ? 0.0f : qu;                                                       \
            ph[o] = to_hi ? qu : 0.0f;                                                       \
        }                                                                                    \
    } while (0)
            if (rows_outer) {
                for (int64_t b = 0; b < B; b++)
                    for (int64_t j = j_lo; j < j_hi; j++) IARG_TERM(b, j);
            } else {
                for (int64_t b0 = 0; b0 < B; b0 += rows_per_block) {
                    const int64_t b1 = b0 + rows_per_block < B ? b0 + rows_per_block : B;
                    for (int64_t j = j_lo; j < j_hi; j++)
                        for (int64_t b = b0; b < b1; b++) IARG_TERM(b, j);
                }
            }
#undef IARG_TERM
        }
        if (parked) {
#pragma omp barrier
#pragma omp for schedule(static)
            for (int64_t b = 0; b < B; b++) {
                float *dlr = dlo + b * N, *dhr = dhi + b * N;
                for (int far = 0; far < 2; far++) {
                    const int32_t *idx = idxs[far] + b * M;
                    const float *pl = parked + (size_t)(2 * far) * bm + b * M, *ph = pl + bm;
                    for (int64_t j = 0; j < M; j++) {
                        dlr[idx[j]] += pl[j];
                        dhr[idx[j]] += ph[j];
                    }
                }
            }
        }
    }
    free(parked);
    return 0;
}

INLINE float fabsf_(float v) { return v < 0.0f ? -v : v; }

/* ------------------------------------------------- l_p distance, 1 <= p < inf (issue 26) */

/*
 * The l_p-relaxation of the l_inf-distance neuron (Zhang et al. 2021):
 *
 *   y[b,j] = ||x[b] - w[j]||_p = m (sum_i r_i^p)^(1/p),   d_i = x[b,i] - w[j,i],
 *   m = max_i |d_i|,   r_i = |d_i| / m in [0, 1].
 *
 * Scaling by the row maximum keeps the sum in [1, N] for every p, so nothing overflows or
 * underflows however large p is (y = 0 when m = 0). Backward, with upstream g[b,j]:
 *
 *   dy/dx_i = sign(d_i) (|d_i| / y)^(p-1)     (0 where d_i = 0 or y = 0),   dy/dw_ji = -dy/dx_i,
 *
 * again a power of a number in [0, 1] (|d_i| <= m <= y). r^p is computed by binary powering when
 * p is an integer <= 64 (p = 8 at the start of the papers' schedule), else as 2^(p log2 r);
 * terms below 2^-125 (smaller than 1e-30 of the largest term, which is 1) are flushed to 0, so
 * no denormal is ever formed. Nothing of size B x M x N is held.
 */

#define LP_FLT_MIN 1.17549435e-38f
#define LP_MAX_INT_POWER 64

/* log2(a) for normal a > 0: exponent e plus log2(m) of the mantissa m in [sqrt(1/2), sqrt(2)),
 * log2(m) = f P(f) with f = m - 1 and P a degree-8 polynomial fitted for this project (iteratively
 * reweighted least squares on the relative error over [sqrt(1/2) - 1, sqrt(2) - 1]); evaluated in
 * float32 its absolute error is below 7e-8 there (measured by tests through rbfi_lp_math). */
#define L0 1.4426950216293335f
#define L1 -0.7213473320007324f
#define L2 0.48091062903404236f
#define L3 -0.3607036769390106f
#define L4 0.28791624307632446f
#define L5 -0.23894479870796204f
#define L6 0.21571563184261322f
#define L7 -0.20726995170116425f
#define L8 0.12583722174167633f

INLINE vf vlog2(vf a) {
    const vu bits = (vu)a;
    vi e = (vi)(bits >> 23) - 127;
    vf m = (vf)((bits & 0x007fffffu) | 0x3f800000u);
    const vi big = m > 1.41421356f;
    m = vsel(big, m * 0.5f, m);
    e -= big; /* big lanes are -1 */
    const vf f = m - 1.0f;
    vf s = f * L8 + L7;
    s = s * f + L6;
    s = s * f + L5;
    s = s * f + L4;
    s = s * f + L3;
    s = s * f + L2;
    s = s * f + L1;
    s = s * f + L0;
    return __builtin_convertvector(e, vf) + f * s;
}

INLINE float slog2(float a) {
    uint32_t bits;
    memcpy(&bits, &a, 4);
    int32_t e = (int32_t)(bits >> 23) - 127;
    const uint32_t mb = (bits & 0x007fffffu) | 0x3f800000u;
    float m;
    memcpy(&m, &mb, 4);
    if (m > 1.41421356f) {
        m *= 0.5f;
        e += 1;
    }
    const float f = m - 1.0f;
    float s = f * L8 + L7;
    s = s * f + L6;
    s = s * f + L5;
    s = s * f + L4;
    s = s * f + L3;
    s = s * f + L2;
    s = s * f + L1;
    s = s * f + L0;
    return (float)e + f * s;
}

/* How r^q is computed for r in [0, 1]: n >= 0 means q is the integer n (binary powering);
 * r below r_min gives r^q < 2^-125 and is flushed to 0 before any arithmetic. */
typedef struct {
    float q;
    int n;
    float r_min;
} lp_power;

static lp_power lp_power_of(float q) {
    lp_power pw;
    pw.q = q;
    pw.n = (q == (float)(int)q && q <= LP_MAX_INT_POWER) ? (int)q : -1;
    /* r^q >= 2^-125 iff r >= 2^(-125/q) (q > 0); r^0 = 1 keeps every r */
    pw.r_min = q > 0.0f ? sexp2(q >= 1.0f ? -125.0f / q : -125.0f) : 0.0f;
    return pw;
}

INLINE vf vpow01(vf r, lp_power pw) {
    const vi keep = r >= pw.r_min;
    r = (vf)((vi)r & keep);
    vf out;
    if (pw.n >= 0) {
        vf acc = vset(1.0f), base = r;
        for (int n = pw.n; n;) { /* no squaring after the last bit: no needless denormal */
            if (n & 1) acc *= base;
            n >>= 1;
            if (n) base *= base;
        }
        out = acc;
    } else {
        out = vexp2(vmax(pw.q * vlog2(vmax(r, vset(LP_FLT_MIN))), vset(Y_MIN)));
    }
    return (vf)((vi)out & keep);
}

INLINE float spow01(float r, lp_power pw) {
    if (!(r >= pw.r_min)) return 0.0f;
    if (pw.n >= 0) {
        float acc = 1.0f, base = r;
        for (int n = pw.n; n;) {
            if (n & 1) acc *= base;
            n >>= 1;
            if (n) base *= base;
        }
        return acc;
    }
    float y = pw.q * slog2(r > LP_FLT_MIN ? r : LP_FLT_MIN);
    return sexp2(y > Y_MIN ? y : Y_MIN);
}

/* m s^(1/p) = m 2^v, v = log2(s) / p >= 0. For v < 1/2 (large p: the gradient's powers
 * (|d| / y)^(p - 1) magnify y's relative error p times) as m + m (2^v - 1), with 2^v - 1 =
 * e^a - 1 (a = v ln 2) by its series to a^8 (error < 3e-10 of the result), so y is rounded
 * once; else m 2^v. 0 when m = 0. */
INLINE float lp_root(float m, float s, float inv_p) {
    if (!(m > 0.0f)) return 0.0f;
    const float v = slog2(s) * inv_p;
    if (v >= 0.5f) return m * sexp2(v);
    const float a = v * 0.6931471805599453f;
    float c = a * (1.0f / 40320.0f) + (1.0f / 5040.0f);
    c = c * a + (1.0f / 720.0f);
    c = c * a + (1.0f / 120.0f);
    c = c * a + (1.0f / 24.0f);
    c = c * a + (1.0f / 6.0f);
    c = c * a + 0.5f;
    c = c * a + 1.0f;
    return m + m * (a * c);
}

/* y for rows b0 .. b0+NB and units j0 .. j0+NJ: a max pass, then a sum pass. */
INLINE void lp_fwd_tile(const float *x, const float *w, int64_t M, int64_t N, int64_t b0,
                        int64_t j0, lp_power pw, float inv_p, float *y, const int NB,
                        const int NJ) {
    float mx[FB][FJ];
    vf acc[FB][FJ];
    for (int bb = 0; bb < NB; bb++)
        for (int jj = 0; jj < NJ; jj++) acc[bb][jj] = vset(0.0f);
    int64_t i = 0;
    for (; i + VL <= N; i += VL) {
        vf xv[FB];
        for (int bb = 0; bb < NB; bb++) xv[bb] = vload(x + (b0 + bb) * N + i);
        for (int jj = 0; jj < NJ; jj++) {
            const vf wv = vload(w + (j0 + jj) * N + i);
            for (int bb = 0; bb < NB; bb++) acc[bb][jj] = vmax(acc[bb][jj], vabs(xv[bb] - wv));
        }
    }
    for (int bb = 0; bb < NB; bb++)
        for (int jj = 0; jj < NJ; jj++) {
            float m = hmax(acc[bb][jj]);
            const float *xr = x + (b0 + bb) * N, *wr = w + (j0 + jj) * N;
            for (int64_t k = i; k < N; k++) {
                const float a = fabsf_(xr[k] - wr[k]);
                if (a > m) m = a;
            }
            mx[bb][jj] = m;
            acc[bb][jj] = vset(0.0f);
        }
    for (i = 0; i + VL <= N; i += VL) {
        vf xv[FB];
        for (int bb = 0; bb < NB; bb++) xv[bb] = vload(x + (b0 + bb) * N + i);
        for (int jj = 0; jj < NJ; jj++) {
            const vf wv = vload(w + (j0 + jj) * N + i);
            for (int bb = 0; bb < NB; bb++)
                acc[bb][jj] += vpow01(vabs(xv[bb] - wv) * (1.0f / mx[bb][jj]), pw);
        }
    }
    for (int bb = 0; bb < NB; bb++)
        for (int jj = 0; jj < NJ; jj++) {
            const vf a = acc[bb][jj];
            float s = 0.0f;
            for (int k = 0; k < VL; k++) s += a[k];
            const float *xr = x + (b0 + bb) * N, *wr = w + (j0 + jj) * N;
            for (int64_t k = i; k < N; k++)
                s += spow01(fabsf_(xr[k] - wr[k]) / mx[bb][jj], pw);
            /* s >= 1 (the arg-max term) when m > 0; y = m s^(1/p) */
            y[(b0 + bb) * M + j0 + jj] = lp_root(mx[bb][jj], s, inv_p);
        }
}

/* y[b,j] = ||x[b] - w[j]||_p for 1 <= p < inf. */
int rbfi_lp_forward(const float *x, const float *w, int64_t B, int64_t M, int64_t N, float p,
                    float *y, int nthreads) {
    if (N < 1 || B < 0 || M < 0) return 1;
    if (!(p >= 1.0f) || !(p < 1e30f)) return 2;
    nthreads = clamp_threads(nthreads);
    const lp_power pw = lp_power_of(p);
    const float inv_p = 1.0f / p;
    const int64_t nbb = (B + FB - 1) / FB, njb = (M + FJ - 1) / FJ;
#pragma omp parallel for schedule(dynamic, 8) num_threads(nthreads) if (nthreads > 1)
    for (int64_t tile = 0; tile < nbb * njb; tile++) {
        const int64_t j0 = (tile / nbb) * FJ, b0 = (tile % nbb) * FB;
        if (b0 + FB <= B && j0 + FJ <= M) {
            lp_fwd_tile(x, w, M, N, b0, j0, pw, inv_p, y, FB, FJ);
        } else {
            for (int64_t b = b0; b < B && b < b0 + FB; b++)
                for (int64_t j = j0; j < M && j < j0 + FJ; j++)
                    lp_fwd_tile(x, w, M, N, b, j, pw, inv_p, y, 1, 1);
        }
    }
    return 0;
}

/* q = gy sign(d) (|d| / y)^(p-1), 0 where d = 0: one term's contribution to dx (and -dw).
 * |d| / y as a product with 1/y (one rounding more than a division, about 30% faster here):
 * at p = 1000 the gradients then match float64 to ~1e-4 relative, as a plain float32 path. */
INLINE vf lp_q(vf d, float gy, float y, lp_power pw) {
    const vf e = vpow01(vabs(d) * (1.0f / y), pw) * gy;
    const vi nonzero = d != vset(0.0f);
    return (vf)((((vu)e) ^ ((vu)d & 0x80000000u)) & (vu)nonzero);
}

INLINE float lp_qs(float d, float gy, float y, lp_power pw) {
    if (d == 0.0f) return 0.0f;
    const float e = spow01(fabsf_(d) / y, pw) * gy;
    return d > 0.0f ? e : -e;
}

#define LP_RB 4 /* batch rows per block of the dx pass (their dx rows stay in L1) */

/*
 * Backward of rbfi_lp_forward. y (B, M) is the forward's output, g (B, M) the upstream gradient.
 * dx (B, N) and dw (M, N) are outputs; either may be NULL. Two passes, each summing in a fixed
 * order without atomics (bitwise reproducible for any thread count): dx with threads owning
 * blocks of batch rows (loop over units), dw with threads owning blocks of units (loop over the
 * batch). Each term's power is therefore computed once per pass asked for.
 */
int rbfi_lp_backward(const float *x, const float *w, const float *y, const float *g, int64_t B,
                     int64_t M, int64_t N, float p, float *dx, float *dw, int nthreads) {
    if (N < 1 || B < 0 || M < 0) return 1;
    if (!(p >= 1.0f) || !(p < 1e30f)) return 2;
    nthreads = clamp_threads(nthreads);
    if (dx) memset(dx, 0, sizeof(float) * (size_t)(B * N));
    if (dw) memset(dw, 0, sizeof(float) * (size_t)(M * N));
    if (B == 0 || M == 0) return 0;
    const lp_power pw = lp_power_of(p - 1.0f);
    float *gy = (float *)malloc(sizeof(float) * 2 * (size_t)(B * M));
    if (!gy) return 3;
    float *ys = gy + (size_t)(B * M); /* y, or 1 where y = 0 (and gy = 0) */
    for (int64_t o = 0; o < B * M; o++) {
        const int pos = y[o] > 0.0f;
        gy[o] = pos ? g[o] : 0.0f;
        ys[o] = pos ? y[o] : 1.0f;
    }
    if (dx) {
        const int64_t nrb = (B + LP_RB - 1) / LP_RB;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nthreads > 1)
        for (int64_t rb = 0; rb < nrb; rb++) {
            const int64_t b0 = rb * LP_RB, b1 = b0 + LP_RB < B ? b0 + LP_RB : B;
            for (int64_t j = 0; j < M; j++) {
                const float *wr = w + j * N;
                int64_t i = 0;
                for (; i + VL <= N; i += VL) {
                    const vf wv = vload(wr + i);
                    for (int64_t b = b0; b < b1; b++) {
                        const int64_t o = b * M + j;
                        if (gy[o] == 0.0f) continue;
                        const vf q = lp_q(vload(x + b * N + i) - wv, gy[o], ys[o], pw);
                        vstore(dx + b * N + i, vload(dx + b * N + i) + q);
                    }
                }
                for (; i < N; i++)
                    for (int64_t b = b0; b < b1; b++) {
                        const int64_t o = b * M + j;
                        if (gy[o] != 0.0f)
                            dx[b * N + i] += lp_qs(x[b * N + i] - wr[i], gy[o], ys[o], pw);
                    }
            }
        }
    }
    if (dw) {
        const int64_t njb = (M + JB - 1) / JB;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nthreads > 1)
        for (int64_t jb = 0; jb < njb; jb++) {
            const int64_t j0 = jb * JB;
            const int nj = j0 + JB <= M ? JB : (int)(M - j0);
            int64_t i = 0;
            for (; i + VL <= N; i += VL) {
                vf wv[JB], acc[JB];
                for (int k = 0; k < nj; k++) {
                    wv[k] = vload(w + (j0 + k) * N + i);
                    acc[k] = vset(0.0f);
                }
                for (int64_t b = 0; b < B; b++) {
                    const vf xv = vload(x + b * N + i);
                    for (int k = 0; k < nj; k++) {
                        const int64_t o = b * M + j0 + k;
                        if (gy[o] != 0.0f) acc[k] += lp_q(xv - wv[k], gy[o], ys[o], pw);
                    }
                }
                for (int k = 0; k < nj; k++) vstore(dw + (j0 + k) * N + i, -acc[k]);
            }
            for (; i < N; i++)
                for (int k = 0; k < nj; k++) {
                    float s = 0.0f;
                    const float wk = w[(j0 + k) * N + i];
                    for (int64_t b = 0; b < B; b++) {
                        const int64_t o = b * M + j0 + k;
                        if (gy[o] != 0.0f) s += lp_qs(x[b * N + i] - wk, gy[o], ys[o], pw);
                    }
                    dw[(j0 + k) * N + i] = -s;
                }
        }
    }
    free(gy);
    return 0;
}

/* out[k] = log2(a[k]) and out2[k] = a[k]^q (a in [0, 1]) by the kernels' own routines (vector
 * body, scalar tail), exported so that tests can measure their error directly. */
void rbfi_lp_math(const float *a, float q, float *log2_out, float *pow_out, int64_t n) {
    const lp_power pw = lp_power_of(q);
    int64_t k = 0;
    for (; k + VL <= n; k += VL) {
        const vf v = vload(a + k);
        vstore(log2_out + k, vlog2(vmax(v, vset(LP_FLT_MIN))));
        vstore(pow_out + k, vpow01(v, pw));
    }
    for (; k < n; k++) {
        log2_out[k] = slog2(a[k] > LP_FLT_MIN ? a[k] : LP_FLT_MIN);
        pow_out[k] = spow01(a[k], pw);
    }
}

/* ====================================================== conv patches (im2row, row2im) */

/*
 * The rows a conv layer feeds the kernels: out[(b Ho + oy) Wo + ox][c kh kw + dy kw + dx] =
 * x[b][c][oy sh + dy][ox sw + dx] (x: (B, C, H, W), already padded), columns C kh kw .. width
 * zero. row2im is its adjoint: dx[b][c][y][x] = the sum of the row entries copied from there,
 * added per image in a fixed order (positions, then channel, kernel row, column), so the bits
 * never depend on threads. Images go to threads. A strided torch copy of the same is ~20x
 * slower (docs/conv.md).
 */
int rbfi_im2row(const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t kh,
                int64_t kw, int64_t sh, int64_t sw, int64_t width, float *out, int nthreads) {
    if (B < 0 || C < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || H < kh || W < kw) return 1;
    const int64_t Ho = (H - kh) / sh + 1, Wo = (W - kw) / sw + 1, n = C * kh * kw;
    if (width < n) return 1;
    nthreads = clamp_threads(nthreads);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && B > 1)
    for (int64_t b = 0; b < B; b++) {
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                float *row = out + ((b * Ho + oy) * Wo + ox) * width;
                for (int64_t c = 0; c < C; c++)
                    for (int64_t dy = 0; dy < kh; dy++) {
                        const float *src = x + ((b * C + c) * H + oy * sh + dy) * W + ox * sw;
                        memcpy(row + (c * kh + dy) * kw, src, sizeof(float) * (size_t)kw);
                    }
                if (width > n) memset(row + n, 0, sizeof(float) * (size_t)(width - n));
            }
    }
    return 0;
}

int rbfi_row2im(const float *rows, int64_t B, int64_t C, int64_t H, int64_t W, int64_t kh,
                int64_t kw, int64_t sh, int64_t sw, int64_t width, float *dx, int nthreads) {
    if (B < 0 || C < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || H < kh || W < kw) return 1;
    const int64_t Ho = (H - kh) / sh + 1, Wo = (W - kw) / sw + 1, n = C * kh * kw;
    if (width < n) return 1;
    nthreads = clamp_threads(nthreads);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && B > 1)
    for (int64_t b = 0; b < B; b++) {
        float *img = dx + b * C * H * W;
        memset(img, 0, sizeof(float) * (size_t)(C * H * W));
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                const float *row = rows + ((b * Ho + oy) * Wo + ox) * width;
                for (int64_t c = 0; c < C; c++)
                    for (int64_t dy = 0; dy < kh; dy++) {
                        float *dst = img + (c * H + oy * sh + dy) * W + ox * sw;
                        const float *src = row + (c * kh + dy) * kw;
                        for (int64_t k = 0; k < kw; k++) dst[k] += src[k];
                    }
            }
    }
    (void)n;
    return 0;
}

/* ------------------------------------------------------------------------ introspection */

/* out[k] = 2^y[k] by the kernels' approximation (vector body, scalar tail), y in [-125, 127];
 * exported so that tests can measure its error directly. */
void rbfi_exp2(const float *y, float *out, int64_t n) {
    int64_t k = 0;
    for (; k + VL <= n; k += VL) vstore(out + k, vexp2(vload(y + k)));
    for (; k < n; k++) out[k] = sexp2(y[k]);
}

int rbfi_simd_width(void) { return VL; }

int rbfi_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
