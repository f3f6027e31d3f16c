/* Hot loops of the EMG filter chain (used by native/emg.pyx).
 *
 * Samples are (n, nc) row-major: one time step of every channel is
 * contiguous, so each biquad is vectorised across channels (channels are
 * independent; within a channel every sample depends on the previous one).
 * The loop runs sample-major over all sections so the out-of-order core can
 * overlap the recurrences of different sections (a section-major variant
 * with the state in registers measured no faster: it is latency-bound).
 *
 * On x86-64 with GCC the kernel is compiled twice (x86-64-v3, i.e. AVX2 +
 * FMA, and baseline) and the loader picks one at run time (target_clones),
 * so the wheel stays portable.  The v3 clone contracts a*b + c into FMAs,
 * which shortens each biquad's recurrence (two FMAs instead of add, mul and
 * sub) and is 15-25 % faster; its results differ from the baseline clone's
 * in the last bits (both stay within 1e-10 of scipy.signal.sosfilt).  On a
 * given machine the output is still bit-identical for any split of the
 * input.
 */
#ifndef GLUTEBRIDGE_EMG_KERNELS_H
#define GLUTEBRIDGE_EMG_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EMG_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define EMG_CLONES
#endif

#define EMG_ENV_NONE 0
#define EMG_ENV_LOWPASS 1
#define EMG_ENV_RMS 2

typedef struct {
    ptrdiff_t nc, ns, ne, rms_w, rms_pos;
    int env_mode, tkeo;
    const double *sos;  /* ns x 6, a0 == 1 */
    double *zs;         /* [ns][2][nc] */
    const double *esos; /* ne x 6 */
    double *ezs;        /* [ne][2][nc] */
    double *p1, *p2;    /* TKEO history */
    double *ring;       /* rms_w x nc squares */
    double *sumsq;      /* nc */
} emg_chain_t;

static inline __attribute__((always_inline)) void
emg_biquads(const double *sos, double *restrict zs, ptrdiff_t ns, ptrdiff_t nc,
            double *restrict v)
{
    for (ptrdiff_t s = 0; s < ns; s++) {
        const double b0 = sos[6 * s], b1 = sos[6 * s + 1], b2 = sos[6 * s + 2];
        const double a1 = sos[6 * s + 4], a2 = sos[6 * s + 5];
        double *restrict z0 = zs + 2 * s * nc;
        double *restrict z1 = z0 + nc;
        for (ptrdiff_t c = 0; c < nc; c++) {
            /* b1*x + z1 does not wait for y: shorter recurrence than
               scipy's (b1*x - a1*y) + z1, same value to rounding */
            const double x = v[c];
            const double y = b0 * x + z0[c];
            z0[c] = (b1 * x + z1[c]) - a1 * y;
            z1[c] = b2 * x - a2 * y;
            v[c] = y;
        }
    }
}

static inline __attribute__((always_inline)) void
emg_chain_body(emg_chain_t *ch, const double *restrict x, ptrdiff_t n,
               double *restrict env, double *restrict filt, const ptrdiff_t nc)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        double *restrict v = env + i * nc;
        const double *restrict xi = x + i * nc;
        for (ptrdiff_t c = 0; c < nc; c++)
            v[c] = xi[c];
        emg_biquads(ch->sos, ch->zs, ch->ns, nc, v);
        if (filt) {
            for (ptrdiff_t c = 0; c < nc; c++)
                filt[i * nc + c] = v[c];
        }
        if (ch->tkeo) {
            /* causal Teager-Kaiser energy, one sample late:
               psi[n-1] = x[n-1]^2 - x[n] x[n-2] */
            double *restrict p1 = ch->p1, *restrict p2 = ch->p2;
            for (ptrdiff_t c = 0; c < nc; c++) {
                const double t = p1[c] * p1[c] - v[c] * p2[c];
                p2[c] = p1[c];
                p1[c] = v[c];
                v[c] = fabs(t);
            }
        } else {
            for (ptrdiff_t c = 0; c < nc; c++)
                v[c] = fabs(v[c]);
        }
        if (ch->env_mode == EMG_ENV_LOWPASS) {
            emg_biquads(ch->esos, ch->ezs, ch->ne, nc, v);
        } else if (ch->env_mode == EMG_ENV_RMS) {
            const ptrdiff_t w = ch->rms_w;
            double *restrict slot = ch->ring + ch->rms_pos * nc;
            double *restrict sumsq = ch->sumsq;
            for (ptrdiff_t c = 0; c < nc; c++) {
                const double sq = v[c] * v[c];
                sumsq[c] += sq - slot[c];
                slot[c] = sq;
            }
            if (++ch->rms_pos == w) {
                /* re-sum exactly once per window so rounding cannot drift;
                   depends only on the sample index, so split-invariant */
                ch->rms_pos = 0;
                for (ptrdiff_t c = 0; c < nc; c++) {
                    double acc = 0.0;
                    for (ptrdiff_t k = 0; k < w; k++)
                        acc += ch->ring[k * nc + c];
                    sumsq[c] = acc;
                }
            }
            for (ptrdiff_t c = 0; c < nc; c++)
                v[c] = sumsq[c] > 0.0 ? sqrt(sumsq[c] / (double)w) : 0.0;
        }
    }
}

/* Explicit 4-wide vectors (GCC/Clang vector extensions) for channel counts
 * that are multiples of 4: the AVX2 clone maps them to ymm registers, the
 * baseline clone to pairs of SSE2 registers.  Lane arithmetic is exactly the
 * scalar arithmetic, so both paths give identical results. */
typedef double emg_v4 __attribute__((vector_size(32)));
typedef long long emg_v4i __attribute__((vector_size(32)));

/* unaligned vector load/store (macros, not functions: a vector return value
   would trip GCC's -Wpsabi note in the baseline clone) */
#define EMG_LD4(dst, p) memcpy(&(dst), (p), sizeof(emg_v4))
#define EMG_ST4(p, v) memcpy((p), &(v), sizeof(emg_v4))

static inline __attribute__((always_inline)) void
emg_biquads_v(const double *sos, double *restrict zs, ptrdiff_t ns, ptrdiff_t nc,
              emg_v4 *v, const ptrdiff_t nv)
{
    for (ptrdiff_t s = 0; s < ns; s++) {
        const emg_v4 b0 = {sos[6 * s], sos[6 * s], sos[6 * s], sos[6 * s]};
        const emg_v4 b1 = {sos[6 * s + 1], sos[6 * s + 1], sos[6 * s + 1], sos[6 * s + 1]};
        const emg_v4 b2 = {sos[6 * s + 2], sos[6 * s + 2], sos[6 * s + 2], sos[6 * s + 2]};
        const emg_v4 a1 = {sos[6 * s + 4], sos[6 * s + 4], sos[6 * s + 4], sos[6 * s + 4]};
        const emg_v4 a2 = {sos[6 * s + 5], sos[6 * s + 5], sos[6 * s + 5], sos[6 * s + 5]};
        double *z0 = zs + 2 * s * nc;
        double *z1 = z0 + nc;
        for (ptrdiff_t g = 0; g < nv; g++) {
            emg_v4 w0, w1;
            EMG_LD4(w0, z0 + 4 * g);
            EMG_LD4(w1, z1 + 4 * g);
            const emg_v4 x = v[g];
            const emg_v4 y = b0 * x + w0;
            w0 = (b1 * x + w1) - a1 * y;
            w1 = b2 * x - a2 * y;
            EMG_ST4(z0 + 4 * g, w0);
            EMG_ST4(z1 + 4 * g, w1);
            v[g] = y;
        }
    }
}

static inline __attribute__((always_inline)) void
emg_chain_vec(emg_chain_t *ch, const double *restrict x, ptrdiff_t n,
              double *restrict env, double *restrict filt, const ptrdiff_t nv)
{
    const ptrdiff_t nc = 4 * nv;
    const emg_v4i absmask = {0x7fffffffffffffffLL, 0x7fffffffffffffffLL,
                             0x7fffffffffffffffLL, 0x7fffffffffffffffLL};
    emg_v4 v[4];
    for (ptrdiff_t i = 0; i < n; i++) {
        for (ptrdiff_t g = 0; g < nv; g++)
            EMG_LD4(v[g], x + i * nc + 4 * g);
        emg_biquads_v(ch->sos, ch->zs, ch->ns, nc, v, nv);
        if (filt) {
            for (ptrdiff_t g = 0; g < nv; g++)
                EMG_ST4(filt + i * nc + 4 * g, v[g]);
        }
        for (ptrdiff_t g = 0; g < nv; g++)
            v[g] = (emg_v4)((emg_v4i)v[g] & absmask);
        if (ch->env_mode == EMG_ENV_LOWPASS)
            emg_biquads_v(ch->esos, ch->ezs, ch->ne, nc, v, nv);
        for (ptrdiff_t g = 0; g < nv; g++)
            EMG_ST4(env + i * nc + 4 * g, v[g]);
    }
}

/* Index of the first non-finite value in x[0, n), or -1.  The common case
 * (all finite) is a branch-free vector pass: x * 0 is 0 for finite x and NaN
 * for NaN/inf, and NaN survives the sums. */
static ptrdiff_t
emg_find_nonfinite(const double *x, ptrdiff_t n)
{
    emg_v4 a0 = {0.0, 0.0, 0.0, 0.0}, a1 = a0;
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8) {
        emg_v4 r0, r1;
        EMG_LD4(r0, x + k);
        EMG_LD4(r1, x + k + 4);
        a0 += r0 * 0.0;
        a1 += r1 * 0.0;
    }
    double tail = 0.0;
    for (ptrdiff_t j = k; j < n; j++)
        tail += x[j] * 0.0;
    const emg_v4 a = a0 + a1;
    if (isfinite(a[0] + a[1] + a[2] + a[3] + tail))
        return -1;
    for (k = 0; k < n; k++)
        if (!isfinite(x[k]))
            return k;
    return -1;
}

/* Vector path for 4/8/12/16 channels with |x| rectification and a low-pass
 * (or no) envelope; everything else takes the general scalar loop. */
EMG_CLONES static void
emg_chain_run(emg_chain_t *ch, const double *x, ptrdiff_t n, double *env, double *filt)
{
    if (!ch->tkeo && ch->env_mode != EMG_ENV_RMS) {
        switch (ch->nc) {
        case 4: emg_chain_vec(ch, x, n, env, filt, 1); return;
        case 8: emg_chain_vec(ch, x, n, env, filt, 2); return;
        case 12: emg_chain_vec(ch, x, n, env, filt, 3); return;
        case 16: emg_chain_vec(ch, x, n, env, filt, 4); return;
        default: break;
        }
    }
    switch (ch->nc) {
    case 1: emg_chain_body(ch, x, n, env, filt, 1); break;
    case 2: emg_chain_body(ch, x, n, env, filt, 2); break;
    default: emg_chain_body(ch, x, n, env, filt, ch->nc); break;
    }
}

#endif
