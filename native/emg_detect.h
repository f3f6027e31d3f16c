/* Contraction detector state machine (used by native/emg.pyx).
 *
 * Per channel: a noise floor (tracked automatically or calibrated), an onset
 * threshold that must be exceeded for min_on samples and a contraction that
 * must last min_len samples before the onset is confirmed, a lower offset
 * threshold (hysteresis) that must hold for min_gap samples (shorter dips are
 * merged unless the dip stays below the contraction's own mean), and an
 * onset refined back to where the envelope last sat at the baseline.  A
 * candidate is confirmed only if its mean level reached a fraction of the
 * onset threshold; after a split without rest the channel is re-armed at
 * the previous contraction's level until the envelope is back at rest.
 * Channels are independent, so a chunk is processed channel by channel, with
 * bulk fast paths for a resting channel and for a contraction under way
 * (the per-sample path only runs around state changes); events are then
 * sorted by (emitted sample, channel), which makes the event stream
 * independent of chunking.
 *
 * Left-censored starts (a recording that begins mid-contraction): with the
 * automatic floor the first window learns the contraction itself, so no
 * onset exists.  Until its first onset (and for at most `horizon` samples)
 * a channel keeps its envelope; at every window end whose floor puts the
 * envelope's peak above the onset threshold, the start is re-judged by
 * replaying the live rules over it (emg_judge_start).  A contraction whose
 * envelope never sat at the refine level after the envelope rose from zero
 * gets onset 0 and the censored flag; with a fixed (calibrated) floor the
 * first onset is flagged by the same rule.
 */
#ifndef GLUTEBRIDGE_EMG_DETECT_H
#define GLUTEBRIDGE_EMG_DETECT_H

#include <math.h>
#include <stddef.h>
#include <string.h>

/* The detector is compiled twice like the filter kernels (x86-64-v3: VEX
 * encoding, AVX2 window sums), without FMA contraction in this file so
 * that both clones give the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EMG_DET_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#define EMG_DET_POP 1
#else
#define EMG_DET_CLONES
#endif

/* An empty asm that makes GCC forget what it knows of three doubles (no
 * instruction, the values unchanged).  "x" (an SSE register) exists on
 * x86-64 only: Clang rejects it for AArch64, ARM, i686 (no SSE), RISC-V,
 * POWER and s390x, so elsewhere this is nothing. */
#if defined(__GNUC__) && defined(__x86_64__)
#define EMG_OPAQUE3(a, b, c) __asm__("" : "+x"(a), "+x"(b), "+x"(c))
#else
#define EMG_OPAQUE3(a, b, c) ((void)0)
#endif

enum { EMG_IDLE = 0, EMG_CANDIDATE = 1, EMG_ACTIVE = 2, EMG_PENDING_OFF = 3 };
enum { EMG_F_CENSORED = 1 };   /* event flag: onset before the first sample */

typedef struct {
    int kind;            /* 1 onset, 2 offset */
    int channel;
    long long sample;    /* refined onset / offset sample */
    long long emitted;   /* sample being processed when it was decided */
    long long onset;     /* offsets: onset sample of the contraction */
    double peak, mean;
    int flags;           /* EMG_F_CENSORED */
} emg_event_t;

typedef struct {
    int state, have_base;
    long long last_low, last_off, onset, onset_raw, cand_off, above;
    double pre_sum, pre_peak, acc_sum, acc_peak, snap_sum, snap_peak;
    double on_thr, off_thr, ref_thr;
    double extrap_f;     /* (ref_thr - mu) / (on_thr - ref_thr): onset secant */
    double rearm;        /* onset level after a split without rest (0 = none) */
    double on_eff, low_eff;  /* onset / refine levels in force (re-arm included) */
    long long below;     /* re-armed: samples in a row below the offset threshold */
} emg_chan_t;

/* Per-channel values the sample loop does not need (emg_chan_t holds only
 * what the loop uses, so it stays in a few cache lines). */
typedef struct {
    double mu, sd;       /* baseline */
    double rearm_low;    /* dip level a re-armed onset is refined back to */
    double speak;        /* start watch: envelope peak since settle */
    double zero;         /* start watch: rounding level (1e-12 x |first sample|) */
    int watch;           /* start watch open (no onset yet, start not re-judged) */
    int first;           /* no contraction confirmed since reset */
    int cens;            /* the open contraction's onset is censored */
} emg_cold_t;

typedef struct {
    ptrdiff_t nc, min_on, min_len, min_gap, win, hist_cap, comp;
    ptrdiff_t nsub, sub_keep;   /* sub-windows per window; quietest kept for the SD */
    ptrdiff_t settle;    /* envelope risen from zero (fixed floor: censored first onsets) */
    ptrdiff_t settle_start;  /* pre-filter settled too: replays confirm from here */
    ptrdiff_t horizon;   /* start watch length (samples, whole windows; 0 = off) */
    ptrdiff_t watching;  /* channels with an open start watch */
    ptrdiff_t rearm_hold;  /* samples below the offset threshold that end a re-arm */
    int autob;
    int grp;             /* widest channel group to run (8, 4; 1: none) */
    double k_on, k_off, k_ref, off_frac, min_ratio, quiet, extrap, remerge, confirm;
    emg_chan_t *ch;      /* nc */
    emg_cold_t *cold;    /* nc */
    double *hmean;       /* [nc][hist_cap] window means */
    double *hvar;        /* [nc][hist_cap] window variances */
    int *hord;           /* [nc][hist_cap] history positions sorted by (mean, position) */
    double *subvar;      /* [nc][nsub] sub-window variances of the current window */
    double *wacc;        /* [nc][3] sub-window sum, sum of squares, window sum */
    double *sbuf;        /* [nc][horizon] envelope from sample 0 while watching */
    ptrdiff_t win_n, sub_i, hist_pos, hist_len;   /* shared by all channels */
    long long t0;
    emg_event_t *ev;
    ptrdiff_t nev;
} emg_det_t;

/* The largest double below v (v finite or +inf): e < v <=> e <= this. */
static inline double emg_prev_double(double v)
{
    if (v == 0.0)
        return -4.9406564584124654e-324;
    unsigned long long b;
    memcpy(&b, &v, sizeof b);
    b = v > 0.0 ? b - 1 : b + 1;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void emg_set_base(const emg_det_t *d, ptrdiff_t c, double m, double sd)
{
    emg_chan_t *s = &d->ch[c];
    emg_cold_t *k = &d->cold[c];
    /* a perfectly flat input (a disconnected channel reading 0) has sd == 0;
       keep the thresholds strictly above the mean anyway */
    if (sd < 0.02 * m)
        sd = 0.02 * m;
    k->mu = m;
    k->sd = sd;
    s->on_thr = m + d->k_on * sd;
    if (s->on_thr < d->min_ratio * m)
        s->on_thr = d->min_ratio * m;
    s->off_thr = m + d->k_off * sd;
    s->ref_thr = m + d->k_ref * sd;
    s->extrap_f = s->on_thr > s->ref_thr ? (s->ref_thr - m) / (s->on_thr - s->ref_thr) : 0.0;
    s->on_eff = s->on_thr > s->rearm ? s->on_thr : s->rearm;
    s->low_eff = s->rearm != 0.0 && k->rearm_low > s->ref_thr ? k->rearm_low : s->ref_thr;
    s->have_base = 1;
}

/* Noise floor from the quietest `quiet` fraction of the recent windows:
 * mean of their means, SD from their mean within-window variance.  The
 * quietest windows are rest even when the muscle works most of the time; a
 * 10 s hold cannot lift the floor while the history is longer than it;
 * pooling several windows avoids the low bias of a plain minimum; and a
 * between-window term is left out because one half-active window in a short
 * history would inflate it.  The windows are kept sorted by (mean, ring
 * position) as they arrive (emg_hist_insert), so a floor costs O(quiet x
 * history), not a sort. */
static void emg_floor(emg_det_t *d, ptrdiff_t c, ptrdiff_t hist_len)
{
    const double *hm = d->hmean + c * d->hist_cap;
    const double *hv = d->hvar + c * d->hist_cap;
    const int *ord = d->hord + c * d->hist_cap;
    ptrdiff_t nq = (ptrdiff_t)(d->quiet * (double)hist_len + 0.999999);
    if (nq < 1)
        nq = 1;
    if (nq > hist_len)
        nq = hist_len;
    double sm = 0.0, sv = 0.0;
    for (ptrdiff_t k = 0; k < nq; k++) {
        sm += hm[ord[k]];
        sv += hv[ord[k]];
    }
    const double var = sv / (double)nq;
    emg_set_base(d, c, sm / (double)nq, var > 0.0 ? sqrt(var) : 0.0);
}

/* Window `p` of channel c was just (over)written: move it to its place in
 * the sorted order.  `len` is the history length before the write (a full
 * ring overwrites, so the old entry at p leaves first).  Ties in the mean
 * keep ring order, as a stable sort of the ring would. */
static void emg_hist_insert(emg_det_t *d, ptrdiff_t c, int p, ptrdiff_t len)
{
    const double *hm = d->hmean + c * d->hist_cap;
    int *ord = d->hord + c * d->hist_cap;
    ptrdiff_t n = len;
    if (n == d->hist_cap) {
        ptrdiff_t k = 0;
        while (ord[k] != p)
            k++;
        for (; k + 1 < n; k++)
            ord[k] = ord[k + 1];
        n--;
    }
    const double m = hm[p];
    ptrdiff_t j = n;
    while (j > 0 && (hm[ord[j - 1]] > m || (hm[ord[j - 1]] == m && ord[j - 1] > p))) {
        ord[j] = ord[j - 1];
        j--;
    }
    ord[j] = p;
}

/* Within-window variance of channel c's finished window: the mean of its
 * sub_keep quietest sub-window variances (each about its own sub-window
 * mean).  A window that straddles the start or end of a burst still has
 * quiet sub-windows, so short rests between fast repetitions no longer
 * inflate the SD. */
static double emg_sub_var(const emg_det_t *d, ptrdiff_t c)
{
    double v[16];
    const double *sv = d->subvar + c * d->nsub;
    const ptrdiff_t n = d->nsub;
    for (ptrdiff_t k = 0; k < n; k++) {   /* insertion sort, n <= 16 */
        ptrdiff_t j = k;
        while (j > 0 && v[j - 1] > sv[k]) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = sv[k];
    }
    double acc = 0.0;
    for (ptrdiff_t k = 0; k < d->sub_keep; k++)
        acc += v[k];
    return acc / (double)d->sub_keep;
}

static inline void emg_emit(emg_det_t *d, int kind, ptrdiff_t c, long long sample,
                            long long emitted, long long onset, double peak, double mean,
                            int flags)
{
    emg_event_t *r = &d->ev[d->nev++];
    r->flags = flags;
    r->kind = kind;
    r->channel = (int)c;
    r->sample = sample;
    r->emitted = emitted;
    r->onset = onset;
    r->peak = peak;
    r->mean = mean;
}

/* Groups of channels side by side in vector lanes (4 with AVX2, 8 with
 * AVX-512): the fast paths of emg_detect_channel below for a resting
 * channel and for a contraction under way, with no branch per channel and
 * sample.  Each lane gets the operations of its scalar fast path in the
 * same order (identical results: adds, compares and maxima only, nothing
 * to contract into an FMA).  A resting lane tracks the last sample at the
 * refine level forwards (one at or below it restarts the sums at +0.0, as
 * the per-sample path does); an active lane adds to its sums and peaks.  A
 * lane stops at the first row where its scalar fast path would stop (or
 * earlier, on NaN: a stop only hands the lane back).  start[l] becomes the
 * row from which the caller runs channel c0 + l one by one: i1 if the group
 * took it to the end, the row where it stopped, or i0 if neither fast path
 * applies.  x86-64 Linux only (as the CPU checks of emg_kernels.h): the
 * CPU check reads __cpu_model from the compiler runtime (libgcc, or
 * compiler-rt on Linux); Apple's toolchain has none, so a macOS build would
 * fail to load ("symbol not found: ___cpu_model").  Elsewhere the channels
 * run one by one. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define EMG_HAVE_GROUPS 1
#include <immintrin.h>

/* Lane values of a group: the parameters a lane's fast path does not use
 * are set so that they never stop it (a resting lane: off_frac -inf, so
 * e * tn < fr * acc never holds while acc >= 0; an active lane: onset level
 * +inf, refine level -inf).  For a resting lane tn counts rows, so that
 * `last` can take it. */
typedef struct {
    double on[8], ref[8], lim[8], fr[8], tn[8], ps[8], pp[8], acc[8], ap[8], last[8];
    int live, act;
} emg_grp_t;

static inline __attribute__((always_inline)) void
emg_grp_load(const emg_det_t *d, ptrdiff_t c0, int nl, ptrdiff_t i0, emg_grp_t *g,
             ptrdiff_t *start)
{
    g->live = 0;
    g->act = 0;
    for (int l = 0; l < nl; l++) {
        const emg_chan_t *s = &d->ch[c0 + l];
        g->on[l] = HUGE_VAL;
        g->ref[l] = -HUGE_VAL;
        g->lim[l] = -HUGE_VAL;
        g->fr[l] = -HUGE_VAL;
        g->tn[l] = (double)i0;
        g->acc[l] = 0.0;
        g->ap[l] = -HUGE_VAL;
        g->ps[l] = s->pre_sum;
        g->pp[l] = s->pre_peak;
        g->last[l] = -1.0;
        start[l] = i0;
        if (!s->have_base)
            continue;
        if (s->state == EMG_IDLE && s->rearm == 0.0) {
            g->live |= 1 << l;
            g->on[l] = s->on_thr;
            g->ref[l] = s->ref_thr;
        } else if (s->state == EMG_ACTIVE) {
            g->live |= 1 << l;
            g->act |= 1 << l;
            /* e <= low_eff || e < off_thr, as one compare: e <= lim */
            g->lim[l] = s->low_eff >= s->off_thr ? s->low_eff : emg_prev_double(s->off_thr);
            g->fr[l] = d->off_frac;
            /* t - onset_raw, counted in a double (exact below 2^53) */
            g->tn[l] = (double)(d->t0 + i0 - s->onset_raw);
            g->acc[l] = s->acc_sum;
            g->ap[l] = s->acc_peak;
        }
    }
}

/* The lanes in `stop` leave the group at row i (the others go on). */
static inline __attribute__((always_inline)) void
emg_grp_store(emg_det_t *d, ptrdiff_t c0, int nl, int stop, ptrdiff_t i, const emg_grp_t *g,
              ptrdiff_t *start)
{
    for (int l = 0; l < nl; l++) {
        if (!((stop >> l) & 1))
            continue;
        emg_chan_t *s = &d->ch[c0 + l];
        if (g->last[l] >= 0.0)    /* active lanes never set it */
            s->last_low = d->t0 + (long long)g->last[l];
        s->pre_sum = g->ps[l];
        s->pre_peak = g->pp[l];
        if ((g->act >> l) & 1) {
            s->acc_sum = g->acc[l];
            s->acc_peak = g->ap[l];
        }
        start[l] = i;
    }
}

/* Channels c0..c0+3 (AVX2). */
static __attribute__((target("avx2"), noinline)) void
emg_group4(emg_det_t *d, const double *env, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t c0,
           ptrdiff_t *start)
{
    const ptrdiff_t nc = d->nc;
    emg_grp_t g;
    emg_grp_load(d, c0, 4, i0, &g, start);
    const __m256d on = _mm256_loadu_pd(g.on), ref = _mm256_loadu_pd(g.ref);
    const __m256d lim = _mm256_loadu_pd(g.lim), fr = _mm256_loadu_pd(g.fr);
    const __m256d one = _mm256_set1_pd(1.0);
    __m256d tn = _mm256_loadu_pd(g.tn), ps = _mm256_loadu_pd(g.ps), pp = _mm256_loadu_pd(g.pp);
    __m256d acc = _mm256_loadu_pd(g.acc), ap = _mm256_loadu_pd(g.ap);
    __m256d last = _mm256_loadu_pd(g.last);
    ptrdiff_t i = i0;
    const double *p = env + i0 * nc + c0;
    while (g.live) {
        int stop = 0;
        for (; i < i1; i++, p += nc) {
            const __m256d e = _mm256_loadu_pd(p);
            /* stays: e <= on (not NaN), e > lim, !(e * tn < fr * acc) */
            const __m256d go = _mm256_and_pd(
                _mm256_and_pd(_mm256_cmp_pd(e, on, _CMP_LE_OQ), _mm256_cmp_pd(e, lim, _CMP_GT_OQ)),
                _mm256_cmp_pd(_mm256_mul_pd(e, tn), _mm256_mul_pd(fr, acc), _CMP_NLT_UQ));
            stop = ~_mm256_movemask_pd(go) & g.live;
            if (stop)
                break;
            const __m256d hi = _mm256_cmp_pd(e, ref, _CMP_GT_OQ);
            last = _mm256_blendv_pd(tn, last, hi);
            /* at the refine level both restart at +0.0 (all bits clear);
               max_pd(e, x) is e > x ? e : x, the scalar path's test */
            ps = _mm256_and_pd(_mm256_add_pd(ps, e), hi);
            pp = _mm256_and_pd(_mm256_max_pd(e, pp), hi);
            acc = _mm256_add_pd(acc, e);
            ap = _mm256_max_pd(e, ap);
            tn = _mm256_add_pd(tn, one);
        }
        if (i == i1)
            stop = g.live;
        _mm256_storeu_pd(g.ps, ps);
        _mm256_storeu_pd(g.pp, pp);
        _mm256_storeu_pd(g.acc, acc);
        _mm256_storeu_pd(g.ap, ap);
        _mm256_storeu_pd(g.last, last);
        emg_grp_store(d, c0, 4, stop, i, &g, start);
        g.live &= ~stop;
    }
}

/* Channels c0..c0+7 (AVX-512: the compares give lane masks, and a masked
 * add or max restarts a sum at +0.0 in one operation).  Compiled for, and
 * run only with, AVX-512 F + VL + DQ (every AVX-512 CPU but Xeon Phi): for
 * "avx512f" alone GCC 12 still picked DQ/VL instructions here
 * (vextractf64x2), an illegal instruction on a CPU with F only.  Not BW:
 * with it GCC did the per-row stop test in mask registers (two extra
 * mask-register moves per row, 2-3 % slower in blocks). */
static __attribute__((target("avx512f,avx512vl,avx512dq"), noinline)) void
emg_group8(emg_det_t *d, const double *env, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t c0,
           ptrdiff_t *start)
{
    const ptrdiff_t nc = d->nc;
    emg_grp_t g;
    emg_grp_load(d, c0, 8, i0, &g, start);
    const __m512d on = _mm512_loadu_pd(g.on), ref = _mm512_loadu_pd(g.ref);
    const __m512d lim = _mm512_loadu_pd(g.lim), fr = _mm512_loadu_pd(g.fr);
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d tn = _mm512_loadu_pd(g.tn), ps = _mm512_loadu_pd(g.ps), pp = _mm512_loadu_pd(g.pp);
    __m512d acc = _mm512_loadu_pd(g.acc), ap = _mm512_loadu_pd(g.ap);
    __m512d last = _mm512_loadu_pd(g.last);
    ptrdiff_t i = i0;
    const double *p = env + i0 * nc + c0;
    while (g.live) {
        int stop = 0;
        for (; i < i1; i++, p += nc) {
            const __m512d e = _mm512_loadu_pd(p);
            __mmask8 go = _mm512_cmp_pd_mask(e, on, _CMP_LE_OQ);
            go = _mm512_mask_cmp_pd_mask(go, e, lim, _CMP_GT_OQ);
            go = _mm512_mask_cmp_pd_mask(go, _mm512_mul_pd(e, tn), _mm512_mul_pd(fr, acc),
                                         _CMP_NLT_UQ);
            stop = ~(int)go & g.live;
            if (stop)
                break;
            const __mmask8 hi = _mm512_cmp_pd_mask(e, ref, _CMP_GT_OQ);
            last = _mm512_mask_mov_pd(last, (__mmask8)~hi, tn);
            ps = _mm512_maskz_add_pd(hi, ps, e);
            pp = _mm512_maskz_max_pd(hi, e, pp);
            acc = _mm512_add_pd(acc, e);
            ap = _mm512_max_pd(e, ap);
            tn = _mm512_add_pd(tn, one);
        }
        if (i == i1)
            stop = g.live;
        _mm512_storeu_pd(g.ps, ps);
        _mm512_storeu_pd(g.pp, pp);
        _mm512_storeu_pd(g.acc, acc);
        _mm512_storeu_pd(g.ap, ap);
        _mm512_storeu_pd(g.last, last);
        emg_grp_store(d, c0, 8, stop, i, &g, start);
        g.live &= ~stop;
    }
}

/* Widest group this CPU runs: 8 (AVX-512 F/VL/DQ, emg_group8's target),
 * 4 (AVX2) or 1 (none). */
static int emg_cpu_group(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512dq"))
        return 8;
    return __builtin_cpu_supports("avx2") ? 4 : 1;
}
#else
static int emg_cpu_group(void) { return 1; }
#endif

/* State machine for channel c over rows [i0, i1) of env; the noise floor
 * is constant over the range (callers split at window boundaries). */
static inline __attribute__((always_inline)) void emg_detect_channel(emg_det_t *d, ptrdiff_t c, const double *env,
                                      ptrdiff_t i0, ptrdiff_t i1)
{
    const ptrdiff_t nc = d->nc;
    /* in place: the fast paths below keep what they touch in locals, and
       copying the struct in and out per call cost more than it saved */
    emg_chan_t *const s = &d->ch[c];
    const double *e_c = env + c;
    ptrdiff_t i = i0;
    while (i < i1) {
        if (s->have_base && s->state == EMG_IDLE && s->rearm == 0.0) {
            /* Fast path (almost all samples): resting channel.  Find the next
               onset-threshold crossing, then apply the per-sample bookkeeping
               in bulk, in the same order as the per-sample path (identical
               results). */
            const double on = s->on_thr, ref = s->ref_thr;
            ptrdiff_t j = i;
            /* four rows per test: one branch instead of four */
            for (; j + 4 <= i1; j += 4) {
                const double *p = e_c + j * nc;
                if (!((p[0] <= on) & (p[nc] <= on) & (p[2 * nc] <= on) & (p[3 * nc] <= on)))
                    break;
            }
            while (j < i1 && e_c[j * nc] <= on)
                j++;
            ptrdiff_t k = j - 1;
            while (k >= i && e_c[k * nc] > ref)
                k--;
            ptrdiff_t q = i;
            double ps = s->pre_sum, pp = s->pre_peak;
            if (k >= i) {
                s->last_low = d->t0 + k;
                ps = 0.0;
                pp = 0.0;
                q = k + 1;
            }
            /* in registers, the peak without a branch (GCC stored both
               fields on every sample and branched on each new peak) */
            for (; q < j; q++) {
                const double e = e_c[q * nc];
                ps += e;
                pp = e > pp ? e : pp;
            }
            s->pre_sum = ps;
            s->pre_peak = pp;
            i = j;
            if (j == i1)
                break;
        }
        if (s->state == EMG_ACTIVE && s->have_base) {
            /* Fast path (during a contraction): while the envelope stays
               above the refine level and both offset levels nothing changes
               state; the same sums and peaks as the per-sample path, in the
               same order (identical results). */
            const double fr = d->off_frac;
            /* e <= low_eff || e < off_thr, as one compare: e <= lim */
            const double lim = s->low_eff >= s->off_thr ? s->low_eff : emg_prev_double(s->off_thr);
            double acc = s->acc_sum, ps = s->pre_sum, pk = -HUGE_VAL;
            /* t - onset_raw, counted in a double (exact below 2^53) */
            double tn = (double)(d->t0 + i - s->onset_raw);
            ptrdiff_t j = i;
            for (; j < i1; j++, tn += 1.0) {
                const double e = e_c[j * nc];
                if (e <= lim || e * tn < fr * acc)
                    break;
                ps += e;
                acc += e;
                pk = e > pk ? e : pk;   /* both peaks take the same samples */
            }
            /* opaque to GCC's SLP vectoriser, which would otherwise pack
               the sums into vector registers for the paired stores below
               and shuffle them on the add chains inside the loop */
            EMG_OPAQUE3(acc, ps, pk);
            s->acc_sum = acc;
            s->pre_sum = ps;
            if (pk > s->acc_peak)
                s->acc_peak = pk;
            if (pk > s->pre_peak)
                s->pre_peak = pk;
            i = j;
            if (j == i1)
                break;
        }
        if (s->state == EMG_CANDIDATE && s->have_base && s->rearm == 0.0) {
            /* Fast path (a candidate onset, ~min_length): until a sample
               would end it (below the offset threshold, or at the refine
               level: rest again) or confirm it, only the sums, the peak and
               the count above the onset level move; the same operations in
               the same order as the per-sample path, which then takes the
               sample that changes state (identical results). */
            const double on = s->on_eff, off = s->off_thr, low = s->low_eff;
            const double cth = d->confirm * on;
            const long long raw = s->onset_raw, len_at = raw + d->min_len - 1;
            double ps = s->pre_sum, pp = s->pre_peak;
            long long above = s->above;
            ptrdiff_t j = i;
            for (; j < i1; j++) {
                const double e = e_c[j * nc];
                const int up = e > on;
                if (e <= low || (!up && e < off))
                    break;
                const long long t = d->t0 + j;
                const double nps = ps + e;
                const long long nab = above + up;
                if (nab >= d->min_on && t >= len_at && nps >= cth * (double)(t - raw + 1))
                    break;
                ps = nps;
                pp = e > pp ? e : pp;
                above = nab;
            }
            s->pre_sum = ps;
            s->pre_peak = pp;
            s->above = above;
            i = j;
            if (j == i1)
                break;
        } else if (s->state == EMG_PENDING_OFF && s->have_base) {
            /* Fast path (a pending offset, ~min_gap): until the gap is
               decided or the envelope comes back (merge), only the sums and
               peaks move; as the per-sample path, which takes the deciding
               sample (identical results). */
            const double low = s->low_eff, on = s->on_thr;
            const double rth = d->remerge * s->snap_sum;
            const double span = (double)(s->cand_off - s->onset_raw);
            const long long gap_at = s->cand_off + d->min_gap;
            double ps = s->pre_sum, pp = s->pre_peak, acc = s->acc_sum, ap = s->acc_peak;
            long long last_low = s->last_low;
            ptrdiff_t j = i;
            for (; j < i1; j++) {
                const long long t = d->t0 + j;
                const double e = e_c[j * nc];
                if (t >= gap_at || (e > on && e * span > rth))
                    break;
                if (e <= low) {
                    last_low = t;
                    ps = 0.0;
                    pp = 0.0;
                } else {
                    ps += e;
                    pp = e > pp ? e : pp;
                }
                acc += e;
                ap = e > ap ? e : ap;
            }
            s->pre_sum = ps;
            s->pre_peak = pp;
            s->acc_sum = acc;
            s->acc_peak = ap;
            s->last_low = last_low;
            i = j;
            if (j == i1)
                break;
        }
        /* General per-sample path. */
        const double e = e_c[i * nc];
        const long long t = d->t0 + i;
        if (s->have_base) {
            /* where did the envelope last sit at the baseline?  tracked
               forwards so the onset can be refined backwards for free */
            if (e <= s->low_eff) {
                s->last_low = t;
                s->pre_sum = 0.0;
                s->pre_peak = 0.0;
            } else {
                s->pre_sum += e;
                if (e > s->pre_peak)
                    s->pre_peak = e;
            }
            int st = s->state;
            /* after a split without rest, a new contraction must rise to
               the re-arm level; back at rest (below the offset threshold)
               the ordinary onset threshold applies again */
            if (s->rearm != 0.0 && st != EMG_ACTIVE && st != EMG_PENDING_OFF) {
                if (e >= s->off_thr) {
                    s->below = 0;
                } else if (++s->below >= d->rearm_hold) {
                    s->rearm = 0.0;
                    s->on_eff = s->on_thr;
                    s->low_eff = s->ref_thr;
                }
            }
            const double on_eff = s->on_eff;
            if (st == EMG_IDLE && e > on_eff) {
                st = EMG_CANDIDATE;
                s->above = 0;
                /* refined onset: last baseline sample + 1, moved back by
                   the envelope smoother's delay, never before the last
                   offset; amplitudes use the uncompensated span */
                s->onset_raw = s->last_low + 1;
                if (s->onset_raw < s->last_off)
                    s->onset_raw = s->last_off;
                s->onset = s->onset_raw - d->comp;
                if (d->extrap > 0.0 && s->on_thr > s->ref_thr) {
                    /* extend the secant from (last baseline sample, refine
                       level) to (this crossing, onset level) back down to
                       the baseline mean: a slow rise leaves the refine
                       level late by that much */
                    s->onset -= (long long)(d->extrap * s->extrap_f * (double)(t - s->last_low) + 0.5);
                }
                if (s->onset < s->last_off)
                    s->onset = s->last_off;
                if (s->onset < 0)
                    s->onset = 0;
            }
            if (st == EMG_CANDIDATE) {
                if (e > on_eff)
                    s->above++;
                else if (e < s->off_thr)
                    st = EMG_IDLE;
                /* confirmed once it was above the onset level long enough,
                   lasted min_len, and (confirm > 0) its mean since the
                   refined onset reached confirm x the onset level: low
                   tone that only flickers across the threshold is not a
                   contraction */
                if (st == EMG_CANDIDATE && s->above >= d->min_on
                        && t - s->onset_raw + 1 >= d->min_len
                        && s->pre_sum >= d->confirm * on_eff * (double)(t - s->onset_raw + 1)) {
                    st = EMG_ACTIVE;
                    s->rearm = 0.0;
                    s->on_eff = s->on_thr;
                    s->low_eff = s->ref_thr;
                    s->acc_sum = s->pre_sum;
                    s->acc_peak = s->pre_peak;
                    emg_cold_t *k = &d->cold[c];
                    int fl = 0;
                    if (k->first) {
                        /* the channel's first contraction: the start watch
                           ends; if the envelope never sat at the refine
                           level after the start-up (a fixed floor from
                           sample 0), it was under way at the first sample */
                        k->first = 0;
                        if (k->watch) {
                            k->watch = 0;
                            d->watching--;
                        }
                        if (s->onset_raw <= d->settle) {
                            fl = EMG_F_CENSORED;
                            s->onset = 0;
                        }
                    }
                    k->cens = fl;
                    emg_emit(d, 1, c, s->onset, t, s->onset, s->pre_peak,
                             s->pre_sum / (double)(t - s->onset_raw + 1), fl);
                }
            } else if (st == EMG_ACTIVE) {
                /* offset threshold: baseline hysteresis, or a fraction of
                   the contraction's own mean if higher (muscles rarely
                   relax fully between fast reps) */
                /* e < max(off_thr, off_frac * acc_sum / n), without the
                   per-sample division (n > 0 in this state) */
                if (e < s->off_thr
                        || e * (double)(t - s->onset_raw) < d->off_frac * s->acc_sum) {
                    st = EMG_PENDING_OFF;
                    s->cand_off = t;
                    s->snap_sum = s->acc_sum;
                    s->snap_peak = s->acc_peak;
                }
                s->acc_sum += e;
                if (e > s->acc_peak)
                    s->acc_peak = e;
            } else if (st == EMG_PENDING_OFF) {
                s->acc_sum += e;
                if (e > s->acc_peak)
                    s->acc_peak = e;
                /* a short gap is merged when the envelope comes back above
                   the onset threshold and (remerge > 0) above that fraction
                   of the contraction's mean: a dip that stays well below
                   the contraction's own level splits two repetitions even
                   when the muscle does not relax to rest between them */
                if (e > s->on_thr && e * (double)(s->cand_off - s->onset_raw)
                        > d->remerge * s->snap_sum) {
                    st = EMG_ACTIVE;            /* short gap: merged */
                } else if (t - s->cand_off >= d->min_gap) {
                    double thr = d->off_frac * s->snap_sum / (double)(s->cand_off - s->onset_raw);
                    if (thr < s->off_thr)
                        thr = s->off_thr;
                    if (e <= thr) {
                        st = EMG_IDLE;
                        s->last_off = s->cand_off;
                        if (d->remerge > 0.0 && e > s->off_thr) {
                            /* split without rest: refine the next onset
                               back to the dip (below the level that ended
                               this one), not to the baseline */
                            s->rearm = d->remerge * s->snap_sum
                                      / (double)(s->cand_off - s->onset_raw);
                            s->below = 0;
                            d->cold[c].rearm_low = thr;
                            s->on_eff = s->on_thr > s->rearm ? s->on_thr : s->rearm;
                            s->low_eff = thr > s->ref_thr ? thr : s->ref_thr;
                        }
                        emg_emit(d, 2, c, s->cand_off, t, s->onset, s->snap_peak,
                                 s->snap_sum / (double)(s->cand_off - s->onset_raw),
                                 d->cold[c].cens);
                        d->cold[c].cens = 0;
                    } else {
                        st = EMG_ACTIVE;
                    }
                }
            }
            s->state = st;
        } else {
            s->last_low = t;
        }
        i++;
    }
}

/* Start watch: re-judge the start of channel c under the floor in force at
 * sample `now` (a window end).  The live rules are replayed over the kept
 * envelope from the sample where the envelope has risen from zero
 * (`settle`), as if it had sat at the baseline just before, except that
 * nothing is confirmed before the pre-filter has settled (`settle_start`;
 * earlier excursions may be its start-up, e.g. the notch ringing down on
 * mains hum).  The replay ends at the first sample where it is idle at the
 * baseline after both the pre-filter's start-up and the first baseline
 * window (until then the live machine had no floor; later it is live
 * business).  A
 * confirmed contraction whose refined onset is still the first settled
 * sample (the envelope never came down to the refine level) was under way
 * at the first sample: onset 0, flagged censored; otherwise it started in
 * the warm-up and gets its ordinary refined onset.  Either way it is
 * reported now (latency honest): onset + offset if it already ended, else
 * the onset and the live machine carries the contraction on. */
static void emg_judge_start(emg_det_t *d, ptrdiff_t c, long long now)
{
    emg_chan_t *s = &d->ch[c];
    emg_cold_t *k = &d->cold[c];
    const long long S0 = d->settle, S1 = d->settle_start;
    const long long S2 = S1 > d->win ? S1 : d->win;
    int done = now + 1 >= d->horizon;
    /* a floor at the rounding level of the first sample (the residue of
       priming the pre-filter on a DC offset, ringing down with no noise to
       hide under) cannot say the start was a contraction */
    if (k->speak > s->on_thr && s->on_thr > k->zero && now >= S1) {
        const double *buf = d->sbuf + c * d->horizon;
        const double on = s->on_thr, off = s->off_thr, ref = s->ref_thr;
        int st = EMG_IDLE, ended = 0;
        long long last_low = S0 - 1, raw = S0, onset = 0, above = 0, cand = 0;
        long long n_conf = 1, t_dec = 0, t;
        double sum = 0.0, pk = 0.0, acc = 0.0, accp = 0.0, snap = 0.0, snapp = 0.0;
        double csum = 0.0, cpk = 0.0, e_dec = 0.0, thr_dec = 0.0;
        for (t = S0; t <= now; t++) {
            const double e = buf[t];
            if (st == EMG_IDLE || st == EMG_CANDIDATE) {
                if (e <= ref) {
                    if (st == EMG_IDLE && t >= S2)
                        break;                  /* at rest after the start */
                    last_low = t;
                    sum = 0.0;
                    pk = 0.0;
                } else {
                    sum += e;
                    if (e > pk)
                        pk = e;
                }
                if (st == EMG_IDLE && e > on) {
                    st = EMG_CANDIDATE;
                    above = 0;
                    raw = last_low + 1;
                    onset = raw - d->comp;
                    if (d->extrap > 0.0 && s->on_thr > s->ref_thr)
                        onset -= (long long)(d->extrap * s->extrap_f * (double)(t - last_low) + 0.5);
                    if (onset < 0)
                        onset = 0;
                }
            }
            if (st == EMG_CANDIDATE) {
                if (e > on)
                    above++;
                else if (e < off)
                    st = EMG_IDLE;
                if (st == EMG_CANDIDATE && t >= S1 && above >= d->min_on
                        && t - raw + 1 >= d->min_len
                        && sum >= d->confirm * on * (double)(t - raw + 1)) {
                    st = EMG_ACTIVE;
                    acc = csum = sum;
                    accp = cpk = pk;
                    n_conf = t - raw + 1;
                }
            } else if (st == EMG_ACTIVE) {
                if (e < off || e * (double)(t - raw) < d->off_frac * acc) {
                    st = EMG_PENDING_OFF;
                    cand = t;
                    snap = acc;
                    snapp = accp;
                }
                acc += e;
                if (e > accp)
                    accp = e;
            } else if (st == EMG_PENDING_OFF) {
                acc += e;
                if (e > accp)
                    accp = e;
                if (e > on && e * (double)(cand - raw) > d->remerge * snap) {
                    st = EMG_ACTIVE;
                } else if (t - cand >= d->min_gap) {
                    double thr = d->off_frac * snap / (double)(cand - raw);
                    if (thr < off)
                        thr = off;
                    if (e <= thr) {
                        ended = 1;
                        t_dec = t;
                        e_dec = e;
                        thr_dec = thr;
                        break;
                    }
                    st = EMG_ACTIVE;
                }
            }
        }
        if (st == EMG_ACTIVE || st == EMG_PENDING_OFF) {
            const int fl = raw <= S0 ? EMG_F_CENSORED : 0;
            if (fl)
                onset = 0;
            emg_emit(d, 1, c, onset, now, onset, cpk, csum / (double)n_conf, fl);
            k->first = 0;
            done = 1;
            if (ended) {
                emg_emit(d, 2, c, cand, now, onset, snapp, snap / (double)(cand - raw), fl);
                k->cens = 0;
                s->last_off = cand;
                if (s->state == EMG_CANDIDATE)
                    s->state = EMG_IDLE;        /* it started inside the replayed one */
                /* re-armed as the live rules would have been at the offset
                   decision, unless the envelope has been back at rest since */
                int rearm = d->remerge > 0.0 && e_dec > off;
                long long below = 0;
                for (t = t_dec + 1; rearm && t <= now; t++) {
                    if (buf[t] >= off)
                        below = 0;
                    else if (++below >= d->rearm_hold)
                        rearm = 0;
                }
                if (rearm) {
                    s->below = below;
                    s->rearm = d->remerge * snap / (double)(cand - raw);
                    k->rearm_low = thr_dec;
                    s->on_eff = s->on_thr > s->rearm ? s->on_thr : s->rearm;
                    s->low_eff = thr_dec > s->ref_thr ? thr_dec : s->ref_thr;
                }
            } else {
                /* still open: the live machine carries on with it */
                s->state = st;
                s->onset = onset;
                s->onset_raw = raw;
                s->acc_sum = acc;
                s->acc_peak = accp;
                s->cand_off = cand;
                s->snap_sum = snap;
                s->snap_peak = snapp;
                s->rearm = 0.0;
                s->on_eff = s->on_thr;
                s->low_eff = s->ref_thr;
                k->cens = fl;
            }
        }
    }
    if (done) {
        k->watch = 0;
        d->watching--;
    }
}

/* Sub-window sums of channels [c0, c0 + g) over rows [a, b), sample-major:
 * independent accumulators per channel vectorise; per channel the order is
 * still sample order. */
static inline __attribute__((always_inline)) void
emg_wsums(emg_det_t *d, const double *env, ptrdiff_t a, ptrdiff_t b, ptrdiff_t c0,
          const ptrdiff_t g)
{
    const ptrdiff_t nc = d->nc;
    double ws[16], wq[16];
    for (ptrdiff_t c = 0; c < g; c++) {
        ws[c] = d->wacc[3 * (c0 + c)];
        wq[c] = d->wacc[3 * (c0 + c) + 1];
    }
    for (ptrdiff_t i = a; i < b; i++) {
        const double *row = env + i * nc + c0;
        for (ptrdiff_t c = 0; c < g; c++) {
            ws[c] += row[c];
            wq[c] += row[c] * row[c];
        }
    }
    for (ptrdiff_t c = 0; c < g; c++) {
        d->wacc[3 * (c0 + c)] = ws[c];
        d->wacc[3 * (c0 + c) + 1] = wq[c];
    }
}

/* The same sums for g = 4 * nv channels with explicit 4-wide vectors (the
 * generic loop above does not vectorise with a run-time width); the lane
 * arithmetic is the scalar arithmetic, so both give identical sums. */
typedef double emg_d4 __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) void
emg_wsums_v4_body(emg_det_t *d, const double *env, ptrdiff_t a, ptrdiff_t b, ptrdiff_t c0,
                  const ptrdiff_t nv)
{
    const ptrdiff_t nc = d->nc;
    emg_d4 ws[4], wq[4];
    for (ptrdiff_t g = 0; g < nv; g++)
        for (int l = 0; l < 4; l++) {
            ws[g][l] = d->wacc[3 * (c0 + 4 * g + l)];
            wq[g][l] = d->wacc[3 * (c0 + 4 * g + l) + 1];
        }
    for (ptrdiff_t i = a; i < b; i++) {
        const double *row = env + i * nc + c0;
        for (ptrdiff_t g = 0; g < nv; g++) {
            emg_d4 r;
            memcpy(&r, row + 4 * g, sizeof r);
            ws[g] += r;
            wq[g] += r * r;
        }
    }
    for (ptrdiff_t g = 0; g < nv; g++)
        for (int l = 0; l < 4; l++) {
            d->wacc[3 * (c0 + 4 * g + l)] = ws[g][l];
            d->wacc[3 * (c0 + 4 * g + l) + 1] = wq[g][l];
        }
}

/* nv as a constant: the accumulators stay in registers (with a run-time
 * count GCC kept some on the stack, a store-to-load round trip on every
 * add of their chains) */
EMG_DET_CLONES static __attribute__((noinline)) void
emg_wsums_v4(emg_det_t *d, const double *env, ptrdiff_t a, ptrdiff_t b, ptrdiff_t c0,
             ptrdiff_t nv)
{
    switch (nv) {
    case 1: emg_wsums_v4_body(d, env, a, b, c0, 1); break;
    case 2: emg_wsums_v4_body(d, env, a, b, c0, 2); break;
    case 3: emg_wsums_v4_body(d, env, a, b, c0, 3); break;
    default: emg_wsums_v4_body(d, env, a, b, c0, 4); break;
    }
}

/* env: m x nc envelope rows.  At most one event per channel per sample,
 * plus two per channel from a start re-judgement, so the caller sizes d->ev
 * for (m + 2) * nc events. */
EMG_DET_CLONES static void emg_detect(emg_det_t *d, const double *env, ptrdiff_t m)
{
    const ptrdiff_t nc = d->nc;
    const ptrdiff_t first_event = d->nev;
    ptrdiff_t i0 = 0;
    while (i0 < m) {
        /* sub-chunk that ends at the next window boundary at the latest (the
           thresholds change there; sub-window ends only feed the sums) */
        ptrdiff_t i1 = m;
        if (d->autob && i0 + (d->win - d->win_n) < i1)
            i1 = i0 + (d->win - d->win_n);
        if (d->watching > 0 && d->t0 + i0 < d->horizon) {
            /* start watch: keep the envelope (and its peak after start-up) */
            ptrdiff_t b = i1;
            if (d->t0 + b > d->horizon)
                b = (ptrdiff_t)(d->horizon - d->t0);
            for (ptrdiff_t c = 0; c < nc; c++) {
                emg_cold_t *k = &d->cold[c];
                if (!k->watch)
                    continue;
                double *buf = d->sbuf + c * d->horizon + d->t0;
                double pk = k->speak;
                for (ptrdiff_t i = i0; i < b; i++) {
                    const double e = env[i * nc + c];
                    buf[i] = e;
                    if (d->t0 + i >= d->settle && e > pk)
                        pk = e;
                }
                k->speak = pk;
            }
        }
        /* resting and active channels in groups (emg_group8/4), the rest
           (and each channel from where it left its group) one by one */
        for (ptrdiff_t c0 = 0; c0 < nc;) {
            ptrdiff_t start[8] = {i0, i0, i0, i0, i0, i0, i0, i0};
            ptrdiff_t w = 1;
#ifdef EMG_HAVE_GROUPS
            if (d->grp >= 8 && c0 + 8 <= nc) {
                w = 8;
                emg_group8(d, env, i0, i1, c0, start);
            } else if (d->grp >= 4 && c0 + 4 <= nc) {
                w = 4;
                emg_group4(d, env, i0, i1, c0, start);
            }
#endif
            for (ptrdiff_t l = 0; l < w; l++)
                if (start[l] < i1)
                    emg_detect_channel(d, c0 + l, env, start[l], i1);
            c0 += w;
        }
        /* the sub-window sums after the channels (neither reads what the
           other writes): their add chains (one add latency per row) then
           overlap the end of this call and the start of the next instead
           of stalling the channel loops behind them */
        if (d->autob) {
            ptrdiff_t a = i0, pos = d->win_n;
            while (a < i1) {
                const ptrdiff_t sub_end = ((d->sub_i + 1) * d->win) / d->nsub;
                const ptrdiff_t b = a + (sub_end - pos) < i1 ? a + (sub_end - pos) : i1;
                /* sub-window sums, sample-major: independent accumulators
                   per channel vectorise; per channel the order is still
                   sample order */
                for (ptrdiff_t c0 = 0; c0 < nc; c0 += 16) {
                    const ptrdiff_t g = nc - c0 < 16 ? nc - c0 : 16;
                    /* constant widths unroll into vector registers */
                    if (g % 4 == 0)
                        emg_wsums_v4(d, env, a, b, c0, g / 4);
                    else
                        emg_wsums(d, env, a, b, c0, g);
                }
                pos += b - a;
                a = b;
                if (pos == sub_end) {
                    /* sub-window done: its own variance, its sum into the window's */
                    const ptrdiff_t n = sub_end - (d->sub_i * d->win) / d->nsub;
                    for (ptrdiff_t c = 0; c < nc; c++) {
                        double *w = d->wacc + 3 * c;
                        const double sm = w[0] / (double)n;
                        const double sv = w[1] / (double)n - sm * sm;
                        d->subvar[c * d->nsub + d->sub_i] = sv > 0.0 ? sv : 0.0;
                        w[2] += w[0];
                        w[0] = 0.0;
                        w[1] = 0.0;
                    }
                    d->sub_i++;
                }
            }
        }
        if (d->autob) {
            d->win_n += i1 - i0;
            if (d->win_n == d->win) {
                d->win_n = 0;
                d->sub_i = 0;
                ptrdiff_t hist_pos = d->hist_pos, hist_len = d->hist_len;
                for (ptrdiff_t c = 0; c < nc; c++) {
                    const double wm = d->wacc[3 * c + 2] / (double)d->win;
                    d->hmean[c * d->hist_cap + hist_pos] = wm;
                    d->hvar[c * d->hist_cap + hist_pos] = emg_sub_var(d, c);
                    d->wacc[3 * c + 2] = 0.0;
                }
                for (ptrdiff_t c = 0; c < nc; c++)
                    emg_hist_insert(d, c, (int)hist_pos, hist_len);
                if (++hist_pos == d->hist_cap)
                    hist_pos = 0;
                if (hist_len < d->hist_cap)
                    hist_len++;
                d->hist_pos = hist_pos;
                d->hist_len = hist_len;
                for (ptrdiff_t c = 0; c < nc; c++)
                    emg_floor(d, c, hist_len);
                if (d->watching > 0) {
                    const long long now = d->t0 + i1 - 1;
                    for (ptrdiff_t c = 0; c < nc; c++)
                        if (d->cold[c].watch)
                            emg_judge_start(d, c, now);
                }
            }
        }
        i0 = i1;
    }
    d->t0 += m;
    /* order this call's events by (emitted, channel): chunk-independent */
    for (ptrdiff_t k = first_event + 1; k < d->nev; k++) {
        emg_event_t r = d->ev[k];
        ptrdiff_t j = k;
        while (j > first_event && (d->ev[j - 1].emitted > r.emitted
                || (d->ev[j - 1].emitted == r.emitted && d->ev[j - 1].channel > r.channel))) {
            d->ev[j] = d->ev[j - 1];
            j--;
        }
        d->ev[j] = r;
    }
}

#ifdef EMG_DET_POP
#pragma GCC pop_options
#endif

#endif
