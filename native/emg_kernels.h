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
    double *zs_alt, *ezs_alt;  /* the other state buffers (see emg_chain_run) */
    int v8;             /* 8 channels and the CPU runs emg_chain_v8 */
    int v4s;            /* every section has b0 = b2 = 1 and the CPU runs
                           emg_chain_v4s (4-wide paths) */
    /* Sections are stored with b0 = 1 (the gains taken out, see _Chain):
       the pre-filter's output is gpre x the cascade's, the envelope is
       gout x what the sections give (both products of the b0s). */
    double gpre, gout;
    const double *cvec;  /* emg_chain_v8: the coefficients as 8-wide vectors
                            (64-byte aligned; [ns + ne][5][8]) */
    /* emg_chain_v8: sections with b0 = b2 = 1 (sym), and those of them
       with b1 = +2 / -2 that take the add form (unit_pos / unit_neg);
       the same for the envelope sections (e...) */
    unsigned sym, unit_pos, unit_neg, esym, eunit_pos, eunit_neg;
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
        const double gpre = ch->gpre, gout = ch->gout;
        if (filt) {
            for (ptrdiff_t c = 0; c < nc; c++)
                filt[i * nc + c] = gpre * v[c];
        }
        if (ch->tkeo) {
            /* causal Teager-Kaiser energy, one sample late:
               psi[n-1] = x[n-1]^2 - x[n] x[n-2]; of the filtered signal
               (gout holds only the envelope's gain here) */
            double *restrict p1 = ch->p1, *restrict p2 = ch->p2;
            for (ptrdiff_t c = 0; c < nc; c++)
                v[c] *= gpre;
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
        for (ptrdiff_t c = 0; c < nc; c++)
            v[c] *= gout;
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
emg_biquads_v(const double *sos, const double *zin, double *zs, ptrdiff_t ns, ptrdiff_t nc,
              emg_v4 *v, const ptrdiff_t nv)
{
    for (ptrdiff_t s = 0; s < ns; s++) {
        const emg_v4 b0 = {sos[6 * s], sos[6 * s], sos[6 * s], sos[6 * s]};
        const emg_v4 b1 = {sos[6 * s + 1], sos[6 * s + 1], sos[6 * s + 1], sos[6 * s + 1]};
        const emg_v4 b2 = {sos[6 * s + 2], sos[6 * s + 2], sos[6 * s + 2], sos[6 * s + 2]};
        const emg_v4 a1 = {sos[6 * s + 4], sos[6 * s + 4], sos[6 * s + 4], sos[6 * s + 4]};
        const emg_v4 a2 = {sos[6 * s + 5], sos[6 * s + 5], sos[6 * s + 5], sos[6 * s + 5]};
        const double *r0 = zin + 2 * s * nc;
        const double *r1 = r0 + nc;
        double *z0 = zs + 2 * s * nc;
        double *z1 = z0 + nc;
        for (ptrdiff_t g = 0; g < nv; g++) {
            emg_v4 w0, w1;
            EMG_LD4(w0, r0 + 4 * g);
            EMG_LD4(w1, r1 + 4 * g);
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

/* One time step of the vector path: the state is read from zin/ezin and
 * written to zs/ezs (the same buffers except at the first sample of a
 * call); fin collects x - x (0 for finite x, NaN for NaN/inf). */
static inline __attribute__((always_inline)) void
emg_vec_step(const emg_chain_t *ch, const double *restrict xi, double *restrict envi,
             double *restrict filti, const double *zin, double *zs, const double *ezin,
             double *ezs, emg_v4 *fin, const ptrdiff_t nv)
{
    const ptrdiff_t nc = 4 * nv;
    const emg_v4i absmask = {0x7fffffffffffffffLL, 0x7fffffffffffffffLL,
                             0x7fffffffffffffffLL, 0x7fffffffffffffffLL};
    emg_v4 v[4];
    for (ptrdiff_t g = 0; g < nv; g++) {
        EMG_LD4(v[g], xi + 4 * g);
        *fin += v[g] - v[g];
    }
    emg_biquads_v(ch->sos, zin, zs, ch->ns, nc, v, nv);
    if (filti) {
        for (ptrdiff_t g = 0; g < nv; g++) {
            const emg_v4 f = ch->gpre * v[g];
            EMG_ST4(filti + 4 * g, f);
        }
    }
    for (ptrdiff_t g = 0; g < nv; g++)
        v[g] = (emg_v4)((emg_v4i)v[g] & absmask);
    if (ch->env_mode == EMG_ENV_LOWPASS)
        emg_biquads_v(ch->esos, ezin, ezs, ch->ne, nc, v, nv);
    for (ptrdiff_t g = 0; g < nv; g++) {
        v[g] *= ch->gout;
        EMG_ST4(envi + 4 * g, v[g]);
    }
}

/* The first sample reads the state from ch->zs/ezs and writes the other
 * buffers; the rest run in place there (emg_chain_run swaps them). */
static inline __attribute__((always_inline)) int
emg_chain_vec(emg_chain_t *ch, const double *restrict x, ptrdiff_t n,
              double *restrict env, double *restrict filt, const ptrdiff_t nv)
{
    const ptrdiff_t nc = 4 * nv;
    double *za = ch->zs_alt, *eza = ch->ezs_alt;
    emg_v4 fin = {0.0, 0.0, 0.0, 0.0};
    emg_vec_step(ch, x, env, filt, ch->zs, za, ch->ezs, eza, &fin, nv);
    for (ptrdiff_t i = 1; i < n; i++)
        emg_vec_step(ch, x + i * nc, env + i * nc, filt ? filt + i * nc : NULL, za, za, eza, eza,
                     &fin, nv);
    return isfinite(fin[0] + fin[1] + fin[2] + fin[3]);
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

/* 8 channels on x86-64-v4 (AVX-512): one 8-wide vector per time step and
 * the filter states in registers for the whole call (32 vector registers
 * hold them; with AVX2's 16 they go through memory every sample): the
 * chain ~20 % faster on Zen 4 (a stand-alone 9-section test: 1.6 vs 2.0-2.4
 * ms per 120000 samples), and sections with b0 = b2 = 1 (every section of
 * the default chain once _Chain has taken the gains out) take 2-3
 * operations on the FMA pipes instead of 5 (emg_biquad_v8_sym / _unit:
 * the default chain 31 -> 23 per time step, ~22 % less time).
 * The lane arithmetic and GCC's FMA contractions are those of the 4-wide
 * x86-64-v3 path, so the results are bit-identical to it
 * (tests/test_emg_filters.py checks).  Specialised on the section count
 * (unrolled, so the states can live in registers); other counts, other
 * channel counts and CPUs without AVX-512 take the 4-wide path. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EMG_HAVE_V8 1
#define EMG_V8_MAX_NS 10
typedef double emg_v8 __attribute__((vector_size(64)));
typedef long long emg_v8i __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) void
emg_biquad_v8(const emg_v8 *c, emg_v8 *z0, emg_v8 *z1, emg_v8 *v)
{
    const emg_v8 b0 = c[0], b1 = c[1], b2 = c[2], a1 = c[3], a2 = c[4];
    const emg_v8 x = *v;
    const emg_v8 y = b0 * x + *z0;
    *z0 = (b1 * x + *z1) - a1 * y;
    *z1 = b2 * x - a2 * y;
    *v = y;
}

/* The same section for b0 = b2 = 1 (the gains are taken out of the
 * sections, see _Chain): b0*x + z0 -> x + z0 and b2*x - (a2*y) ->
 * x - (a2*y) (GCC contracts the general form as b2*x - (a2*y): a2*y
 * rounded on its own) are exact, so the bits are those of the general
 * section; 3 operations on the FMA pipes instead of 5, the other 2 on the
 * separate FADD pipes (Zen).  Mains notches have such numerators. */
static inline __attribute__((always_inline)) void
emg_biquad_v8_sym(const emg_v8 *c, emg_v8 *z0, emg_v8 *z1, emg_v8 *v)
{
    const emg_v8 b1 = c[1], a1 = c[3], a2 = c[4];
    const emg_v8 x = *v;
    const emg_v8 y = x + *z0;
    emg_v8 m = a2 * y;
    __asm__("" : "+v"(m));      /* rounded on its own, as in b2*x - (a2*y) */
    *z0 = (b1 * x + *z1) - a1 * y;
    *z1 = x - m;
    *v = y;
}

/* b = (1, s*2, 1) in the add form: 2x = x + x is exact, so z1 +- (x + x)
 * gives the bits of the FMA b1*x + z1: 2 operations on the FMA pipes and
 * 4 on the FADD pipes, against 3 and 2 in emg_biquad_v8_sym.  Butterworth
 * band-pass and low-pass designs have such sections once their gain is
 * taken out; _Chain gives this form to as many of them as balances the
 * two kinds of pipes. */
static inline __attribute__((always_inline)) void
emg_biquad_v8_unit(const emg_v8 *c, emg_v8 *z0, emg_v8 *z1, emg_v8 *v, const int neg)
{
    const emg_v8 a1 = c[3], a2 = c[4];
    const emg_v8 x = *v;
    const emg_v8 y = x + *z0;
    const emg_v8 x2 = x + x;
    emg_v8 m = a2 * y;
    __asm__("" : "+v"(m));      /* rounded on its own, as in b2*x - (a2*y) */
    *z0 = (neg ? *z1 - x2 : *z1 + x2) - a1 * y;
    *z1 = x - m;
    *v = y;
}

/* One section of emg_chain_v8_body in the form its shape allows. */
static inline __attribute__((always_inline)) void
emg_biquad_v8_any(const emg_v8 *c, emg_v8 *z0, emg_v8 *z1, emg_v8 *v, const int s,
                  const unsigned sym, const unsigned upos, const unsigned uneg)
{
    if (upos >> s & 1)
        emg_biquad_v8_unit(c, z0, z1, v, 0);
    else if (uneg >> s & 1)
        emg_biquad_v8_unit(c, z0, z1, v, 1);
    else if (sym >> s & 1)
        emg_biquad_v8_sym(c, z0, z1, v);
    else
        emg_biquad_v8(c, z0, z1, v);
}

static inline __attribute__((always_inline)) int
emg_chain_v8_body(emg_chain_t *ch, const double *restrict x, ptrdiff_t n,
                  double *restrict env, double *restrict filt, const int ns, const int ne)
{
    const emg_v8i absmask = (emg_v8i){0} + 0x7fffffffffffffffLL;
    emg_v8 z0[EMG_V8_MAX_NS], z1[EMG_V8_MAX_NS], e0[1], e1[1];
#pragma GCC unroll 16
    for (int s = 0; s < ns; s++) {
        memcpy(&z0[s], ch->zs + 16 * s, 64);
        memcpy(&z1[s], ch->zs + 16 * s + 8, 64);
    }
#pragma GCC unroll 2
    for (int s = 0; s < ne; s++) {
        memcpy(&e0[s], ch->ezs + 16 * s, 64);
        memcpy(&e1[s], ch->ezs + 16 * s + 8, 64);
    }
    const emg_v8 (*cf)[5] = (const emg_v8 (*)[5])__builtin_assume_aligned(ch->cvec, 64);
    const emg_v8 (*ecf)[5] = cf + ns;
    const unsigned sym = ch->sym, upos = ch->unit_pos, uneg = ch->unit_neg;
    const unsigned esym = ch->esym, eupos = ch->eunit_pos, euneg = ch->eunit_neg;
    const emg_v8 gpre = (emg_v8){0} + ch->gpre, gout = (emg_v8){0} + ch->gout;
    emg_v8 fin = {0};
    for (ptrdiff_t i = 0; i < n; i++) {
        emg_v8 v;
        memcpy(&v, x + 8 * i, 64);
        fin += v - v;
#pragma GCC unroll 16
        for (int s = 0; s < ns; s++)
            emg_biquad_v8_any(cf[s], &z0[s], &z1[s], &v, s, sym, upos, uneg);
        if (filt) {
            const emg_v8 f = gpre * v;
            memcpy(filt + 8 * i, &f, 64);
        }
        v = (emg_v8)((emg_v8i)v & absmask);
#pragma GCC unroll 2
        for (int s = 0; s < ne; s++)
            emg_biquad_v8_any(ecf[s], &e0[s], &e1[s], &v, s, esym, eupos, euneg);
        v *= gout;
        memcpy(env + 8 * i, &v, 64);
    }
    /* the new state goes to the other buffers (see emg_chain_run) */
#pragma GCC unroll 16
    for (int s = 0; s < ns; s++) {
        memcpy(ch->zs_alt + 16 * s, &z0[s], 64);
        memcpy(ch->zs_alt + 16 * s + 8, &z1[s], 64);
    }
#pragma GCC unroll 2
    for (int s = 0; s < ne; s++) {
        memcpy(ch->ezs_alt + 16 * s, &e0[s], 64);
        memcpy(ch->ezs_alt + 16 * s + 8, &e1[s], 64);
    }
    const emg_v8 f2 = fin;
    double acc = 0.0;
    for (int l = 0; l < 8; l++)
        acc += f2[l];
    return isfinite(acc);
}

/* -1: not handled here (section counts without a specialisation). */
__attribute__((target("arch=x86-64-v4"))) static int
emg_chain_v8(emg_chain_t *ch, const double *x, ptrdiff_t n, double *env, double *filt)
{
    const int ne = ch->env_mode == EMG_ENV_LOWPASS ? (int)ch->ne : 0;
    if (ne > 1)
        return -1;
#define EMG_V8_CASE(k)                                                          \
    case k:                                                                     \
        return ne ? emg_chain_v8_body(ch, x, n, env, filt, k, 1)               \
                  : emg_chain_v8_body(ch, x, n, env, filt, k, 0);
    switch (ch->ns) {
    EMG_V8_CASE(1) EMG_V8_CASE(2) EMG_V8_CASE(3) EMG_V8_CASE(4) EMG_V8_CASE(5)
    EMG_V8_CASE(6) EMG_V8_CASE(7) EMG_V8_CASE(8) EMG_V8_CASE(9) EMG_V8_CASE(10)
    default: return -1;
    }
#undef EMG_V8_CASE
}

/* 1 if this CPU runs emg_chain_v8 (checked once per chain). */
static int emg_cpu_v8(void)
{
    __builtin_cpu_init();
    /* the features of x86-64-v4 one by one (GCC 11 has no level names here) */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
           && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
           && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
           && __builtin_cpu_supports("bmi2");
}

/* 4/8/12/16 channels on x86-64-v3 (AVX2 + FMA) when every section has
 * b0 = b2 = 1 (the default chain once _Chain has taken the gains out):
 * each section as in emg_biquad_v8_sym, 3 operations on the FMA pipes
 * instead of 5, the states through memory as in emg_chain_vec.  For CPUs
 * without AVX-512 (and other channel counts).  Written with intrinsics and
 * without FMA contraction, so each rounding is the one GCC's contraction
 * of the general section gives (b0*x + z0 -> x + z0, (b1*x + z1) - a1*y
 * as two FMAs, b2*x - (a2*y) -> x - (a2*y)): bit-identical to
 * emg_chain_vec (tests/test_emg_filters.py checks). */
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

static inline __attribute__((always_inline, target("arch=x86-64-v3"))) void
emg_biquads_v4s(const double *sos, const double *zin, double *zs, ptrdiff_t ns, ptrdiff_t nc,
                __m256d *v, const ptrdiff_t nv)
{
    for (ptrdiff_t s = 0; s < ns; s++) {
        const __m256d b1 = _mm256_set1_pd(sos[6 * s + 1]);
        const __m256d a1 = _mm256_set1_pd(sos[6 * s + 4]);
        const __m256d a2 = _mm256_set1_pd(sos[6 * s + 5]);
        const double *r0 = zin + 2 * s * nc;
        const double *r1 = r0 + nc;
        double *z0 = zs + 2 * s * nc;
        double *z1 = z0 + nc;
        for (ptrdiff_t g = 0; g < nv; g++) {
            const __m256d w0 = _mm256_loadu_pd(r0 + 4 * g);
            const __m256d w1 = _mm256_loadu_pd(r1 + 4 * g);
            const __m256d x = v[g];
            const __m256d y = _mm256_add_pd(x, w0);
            const __m256d m = _mm256_mul_pd(a2, y);
            _mm256_storeu_pd(z0 + 4 * g, _mm256_fnmadd_pd(a1, y, _mm256_fmadd_pd(b1, x, w1)));
            _mm256_storeu_pd(z1 + 4 * g, _mm256_sub_pd(x, m));
            v[g] = y;
        }
    }
}

static inline __attribute__((always_inline, target("arch=x86-64-v3"))) int
emg_chain_v4s_body(emg_chain_t *ch, const double *restrict x, ptrdiff_t n,
                   double *restrict env, double *restrict filt, const ptrdiff_t nv)
{
    const ptrdiff_t nc = 4 * nv;
    const __m256d absmask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    const __m256d gpre = _mm256_set1_pd(ch->gpre), gout = _mm256_set1_pd(ch->gout);
    const int lp = ch->env_mode == EMG_ENV_LOWPASS;
    __m256d fin = _mm256_setzero_pd();
    const double *zin = ch->zs, *ezin = ch->ezs;
    double *za = ch->zs_alt, *eza = ch->ezs_alt;
    for (ptrdiff_t i = 0; i < n; i++) {
        __m256d v[4];
        for (ptrdiff_t g = 0; g < nv; g++) {
            v[g] = _mm256_loadu_pd(x + i * nc + 4 * g);
            fin = _mm256_add_pd(fin, _mm256_sub_pd(v[g], v[g]));
        }
        emg_biquads_v4s(ch->sos, zin, za, ch->ns, nc, v, nv);
        if (filt) {
            for (ptrdiff_t g = 0; g < nv; g++)
                _mm256_storeu_pd(filt + i * nc + 4 * g, _mm256_mul_pd(gpre, v[g]));
        }
        for (ptrdiff_t g = 0; g < nv; g++)
            v[g] = _mm256_and_pd(v[g], absmask);
        if (lp)
            emg_biquads_v4s(ch->esos, ezin, eza, ch->ne, nc, v, nv);
        for (ptrdiff_t g = 0; g < nv; g++)
            _mm256_storeu_pd(env + i * nc + 4 * g, _mm256_mul_pd(v[g], gout));
        /* the first step read the state it started from; the rest run in
           place in the other buffers (see emg_chain_run) */
        zin = za;
        ezin = eza;
    }
    double f[4];
    _mm256_storeu_pd(f, fin);
    return isfinite(f[0] + f[1] + f[2] + f[3]);
}

__attribute__((target("arch=x86-64-v3"))) static int
emg_chain_v4s(emg_chain_t *ch, const double *x, ptrdiff_t n, double *env, double *filt)
{
    switch (ch->nc) {
    case 4: return emg_chain_v4s_body(ch, x, n, env, filt, 1);
    case 8: return emg_chain_v4s_body(ch, x, n, env, filt, 2);
    case 12: return emg_chain_v4s_body(ch, x, n, env, filt, 3);
    default: return emg_chain_v4s_body(ch, x, n, env, filt, 4);
    }
}
#pragma GCC pop_options

/* 1 if this CPU runs emg_chain_v4s: where the loader also picks the
 * x86-64-v3 clones (GCC 12+ names the level; the same test as their
 * resolver), so the v4s bits are the 4-wide v3 clone's.  A CPU (or a VM)
 * with AVX2 and FMA but not every other v3 feature (MOVBE, LZCNT, ...)
 * runs the baseline clone, and the general 4-wide path with it. */
static int emg_cpu_v3(void)
{
    __builtin_cpu_init();
#if __GNUC__ >= 12
    return __builtin_cpu_supports("x86-64-v3");
#else
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
           && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
#endif
}
#else
static int emg_cpu_v8(void) { return 0; }
static int emg_cpu_v3(void) { return 0; }
#endif

/* Runs x (n >= 1 rows) through the chain; returns 1 if every value of x was
 * finite, else 0 (only checked with `check`; the vector paths always check,
 * for free).  The filter states are double-buffered: a run leaves the state
 * it started from untouched in the other buffers, so emg_chain_undo() takes
 * a rejected block back for free (not the TKEO and RMS histories, which are
 * updated in place: callers check the input first in those modes).  Vector
 * paths for 8 channels on AVX-512 and for 4/8/12/16 channels, with |x|
 * rectification and a low-pass (or no) envelope; everything else takes the
 * general scalar loop (which copies the state into the other buffers
 * first). */
EMG_CLONES static int
emg_chain_run(emg_chain_t *ch, const double *x, ptrdiff_t n, double *env, double *filt,
              int check)
{
    int ok;
    double *t;
#ifdef EMG_HAVE_V8
    if (ch->v8 && !ch->tkeo && ch->env_mode != EMG_ENV_RMS) {
        ok = emg_chain_v8(ch, x, n, env, filt);
        if (ok >= 0) {
            t = ch->zs; ch->zs = ch->zs_alt; ch->zs_alt = t;
            t = ch->ezs; ch->ezs = ch->ezs_alt; ch->ezs_alt = t;
            return ok;
        }
    }
#endif
    if (!ch->tkeo && ch->env_mode != EMG_ENV_RMS && (ch->nc & 3) == 0 && ch->nc <= 16) {
#ifdef EMG_HAVE_V8
        if (ch->v4s)
            ok = emg_chain_v4s(ch, x, n, env, filt);
        else
#endif
        switch (ch->nc) {
        case 4: ok = emg_chain_vec(ch, x, n, env, filt, 1); break;
        case 8: ok = emg_chain_vec(ch, x, n, env, filt, 2); break;
        case 12: ok = emg_chain_vec(ch, x, n, env, filt, 3); break;
        default: ok = emg_chain_vec(ch, x, n, env, filt, 4); break;
        }
        t = ch->zs; ch->zs = ch->zs_alt; ch->zs_alt = t;
        t = ch->ezs; ch->ezs = ch->ezs_alt; ch->ezs_alt = t;
        return ok;
    }
    ok = check ? emg_find_nonfinite(x, n * ch->nc) < 0 : 1;
    memcpy(ch->zs_alt, ch->zs, (size_t)(2 * ch->ns * ch->nc) * sizeof(double));
    memcpy(ch->ezs_alt, ch->ezs, (size_t)(2 * ch->ne * ch->nc) * sizeof(double));
    t = ch->zs; ch->zs = ch->zs_alt; ch->zs_alt = t;
    t = ch->ezs; ch->ezs = ch->ezs_alt; ch->ezs_alt = t;
    switch (ch->nc) {
    case 1: emg_chain_body(ch, x, n, env, filt, 1); break;
    case 2: emg_chain_body(ch, x, n, env, filt, 2); break;
    default: emg_chain_body(ch, x, n, env, filt, ch->nc); break;
    }
    return ok;
}

/* Back to the filter state before the last emg_chain_run. */
static inline void
emg_chain_undo(emg_chain_t *ch)
{
    double *t;
    t = ch->zs; ch->zs = ch->zs_alt; ch->zs_alt = t;
    t = ch->ezs; ch->ezs = ch->ezs_alt; ch->ezs_alt = t;
}

#endif
