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
 * Channels are independent, so a chunk is processed channel by channel with
 * the state in registers; events are then sorted by (emitted sample,
 * channel), which makes the event stream independent of chunking.
 */
#ifndef GLUTEBRIDGE_EMG_DETECT_H
#define GLUTEBRIDGE_EMG_DETECT_H

#include <math.h>
#include <stddef.h>

enum { EMG_IDLE = 0, EMG_CANDIDATE = 1, EMG_ACTIVE = 2, EMG_PENDING_OFF = 3 };

typedef struct {
    int kind;            /* 1 onset, 2 offset */
    int channel;
    long long sample;    /* refined onset / offset sample */
    long long emitted;   /* sample being processed when it was decided */
    long long onset;     /* offsets: onset sample of the contraction */
    double peak, mean;
} emg_event_t;

typedef struct {
    int state, have_base;
    long long last_low, last_off, onset, onset_raw, cand_off, above;
    double pre_sum, pre_peak, acc_sum, acc_peak, snap_sum, snap_peak;
    double on_thr, off_thr, ref_thr;
    double extrap_f;     /* (ref_thr - mu) / (on_thr - ref_thr): onset secant */
    double rearm;        /* onset level after a split without rest (0 = none) */
    double on_eff, low_eff;  /* onset / refine levels in force (re-arm included) */
} emg_chan_t;

/* Per-channel values the sample loop does not need (emg_chan_t is copied
 * into registers per call, so it holds only what the loop uses). */
typedef struct {
    double mu, sd;       /* baseline */
    double rearm_low;    /* dip level a re-armed onset is refined back to */
} emg_cold_t;

typedef struct {
    ptrdiff_t nc, min_on, min_len, min_gap, win, hist_cap, comp;
    ptrdiff_t nsub, sub_keep;   /* sub-windows per window; quietest kept for the SD */
    int autob;
    double k_on, k_off, k_ref, off_frac, min_ratio, quiet, extrap, remerge, confirm;
    emg_chan_t *ch;      /* nc */
    emg_cold_t *cold;    /* nc */
    double *hmean;       /* [nc][hist_cap] window means */
    double *hvar;        /* [nc][hist_cap] window variances */
    double *sortbuf;     /* 2 * hist_cap */
    double *subvar;      /* [nc][nsub] sub-window variances of the current window */
    double *wacc;        /* [nc][3] sub-window sum, sum of squares, window sum;
                            kept out of emg_chan_t, which is copied per call */
    ptrdiff_t win_n, sub_i, hist_pos, hist_len;   /* shared by all channels */
    long long t0;
    emg_event_t *ev;
    ptrdiff_t nev;
} emg_det_t;

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
 * history would inflate it. */
static void emg_floor(emg_det_t *d, ptrdiff_t c, ptrdiff_t hist_len)
{
    const double *hm = d->hmean + c * d->hist_cap;
    const double *hv = d->hvar + c * d->hist_cap;
    double *srt = d->sortbuf;
    ptrdiff_t nq = (ptrdiff_t)(d->quiet * (double)hist_len + 0.999999);
    if (nq < 1)
        nq = 1;
    if (nq > hist_len)
        nq = hist_len;
    for (ptrdiff_t k = 0; k < hist_len; k++) {   /* insertion sort by mean */
        const double m = hm[k], v = hv[k];
        ptrdiff_t j = k;
        while (j > 0 && srt[2 * (j - 1)] > m) {
            srt[2 * j] = srt[2 * (j - 1)];
            srt[2 * j + 1] = srt[2 * (j - 1) + 1];
            j--;
        }
        srt[2 * j] = m;
        srt[2 * j + 1] = v;
    }
    double sm = 0.0, sv = 0.0;
    for (ptrdiff_t k = 0; k < nq; k++) {
        sm += srt[2 * k];
        sv += srt[2 * k + 1];
    }
    const double var = sv / (double)nq;
    emg_set_base(d, c, sm / (double)nq, var > 0.0 ? sqrt(var) : 0.0);
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
                            long long emitted, long long onset, double peak, double mean)
{
    emg_event_t *r = &d->ev[d->nev++];
    r->kind = kind;
    r->channel = (int)c;
    r->sample = sample;
    r->emitted = emitted;
    r->onset = onset;
    r->peak = peak;
    r->mean = mean;
}

/* State machine for channel c over rows [i0, i1) of env; the noise floor
 * is constant over the range (callers split at window boundaries). */
static inline void emg_detect_channel(emg_det_t *d, ptrdiff_t c, const double *env,
                                      ptrdiff_t i0, ptrdiff_t i1)
{
    const ptrdiff_t nc = d->nc;
    emg_chan_t s = d->ch[c];          /* local copy: lives in registers */
    const double *e_c = env + c;
    ptrdiff_t i = i0;
    while (i < i1) {
        if (s.have_base && s.state == EMG_IDLE && s.rearm == 0.0) {
            /* Fast path (almost all samples): resting channel.  Find the next
               onset-threshold crossing, then apply the per-sample bookkeeping
               in bulk, in the same order as the per-sample path (identical
               results). */
            const double on = s.on_thr, ref = s.ref_thr;
            ptrdiff_t j = i;
            while (j < i1 && e_c[j * nc] <= on)
                j++;
            ptrdiff_t k = j - 1;
            while (k >= i && e_c[k * nc] > ref)
                k--;
            ptrdiff_t q = i;
            if (k >= i) {
                s.last_low = d->t0 + k;
                s.pre_sum = 0.0;
                s.pre_peak = 0.0;
                q = k + 1;
            }
            for (; q < j; q++) {
                const double e = e_c[q * nc];
                s.pre_sum += e;
                if (e > s.pre_peak)
                    s.pre_peak = e;
            }
            i = j;
            if (j == i1)
                break;
        }
        /* General per-sample path. */
        const double e = e_c[i * nc];
        const long long t = d->t0 + i;
        if (s.have_base) {
            /* where did the envelope last sit at the baseline?  tracked
               forwards so the onset can be refined backwards for free */
            if (e <= s.low_eff) {
                s.last_low = t;
                s.pre_sum = 0.0;
                s.pre_peak = 0.0;
            } else {
                s.pre_sum += e;
                if (e > s.pre_peak)
                    s.pre_peak = e;
            }
            int st = s.state;
            /* after a split without rest, a new contraction must rise to
               the re-arm level; back at rest (below the offset threshold)
               the ordinary onset threshold applies again */
            if (s.rearm != 0.0 && st != EMG_ACTIVE && st != EMG_PENDING_OFF && e < s.off_thr) {
                s.rearm = 0.0;
                s.on_eff = s.on_thr;
                s.low_eff = s.ref_thr;
            }
            const double on_eff = s.on_eff;
            if (st == EMG_IDLE && e > on_eff) {
                st = EMG_CANDIDATE;
                s.above = 0;
                /* refined onset: last baseline sample + 1, moved back by
                   the envelope smoother's delay, never before the last
                   offset; amplitudes use the uncompensated span */
                s.onset_raw = s.last_low + 1;
                if (s.onset_raw < s.last_off)
                    s.onset_raw = s.last_off;
                s.onset = s.onset_raw - d->comp;
                if (d->extrap > 0.0 && s.on_thr > s.ref_thr) {
                    /* extend the secant from (last baseline sample, refine
                       level) to (this crossing, onset level) back down to
                       the baseline mean: a slow rise leaves the refine
                       level late by that much */
                    s.onset -= (long long)(d->extrap * s.extrap_f * (double)(t - s.last_low) + 0.5);
                }
                if (s.onset < s.last_off)
                    s.onset = s.last_off;
                if (s.onset < 0)
                    s.onset = 0;
            }
            if (st == EMG_CANDIDATE) {
                if (e > on_eff)
                    s.above++;
                else if (e < s.off_thr)
                    st = EMG_IDLE;
                /* confirmed once it was above the onset level long enough,
                   lasted min_len, and (confirm > 0) its mean since the
                   refined onset reached confirm x the onset level: low
                   tone that only flickers across the threshold is not a
                   contraction */
                if (st == EMG_CANDIDATE && s.above >= d->min_on
                        && t - s.onset_raw + 1 >= d->min_len
                        && s.pre_sum >= d->confirm * on_eff * (double)(t - s.onset_raw + 1)) {
                    st = EMG_ACTIVE;
                    s.rearm = 0.0;
                    s.on_eff = s.on_thr;
                    s.low_eff = s.ref_thr;
                    s.acc_sum = s.pre_sum;
                    s.acc_peak = s.pre_peak;
                    emg_emit(d, 1, c, s.onset, t, s.onset, s.pre_peak,
                             s.pre_sum / (double)(t - s.onset_raw + 1));
                }
            } else if (st == EMG_ACTIVE) {
                /* offset threshold: baseline hysteresis, or a fraction of
                   the contraction's own mean if higher (muscles rarely
                   relax fully between fast reps) */
                /* e < max(off_thr, off_frac * acc_sum / n), without the
                   per-sample division (n > 0 in this state) */
                if (e < s.off_thr
                        || e * (double)(t - s.onset_raw) < d->off_frac * s.acc_sum) {
                    st = EMG_PENDING_OFF;
                    s.cand_off = t;
                    s.snap_sum = s.acc_sum;
                    s.snap_peak = s.acc_peak;
                }
                s.acc_sum += e;
                if (e > s.acc_peak)
                    s.acc_peak = e;
            } else if (st == EMG_PENDING_OFF) {
                s.acc_sum += e;
                if (e > s.acc_peak)
                    s.acc_peak = e;
                /* a short gap is merged when the envelope comes back above
                   the onset threshold and (remerge > 0) above that fraction
                   of the contraction's mean: a dip that stays well below
                   the contraction's own level splits two repetitions even
                   when the muscle does not relax to rest between them */
                if (e > s.on_thr && e * (double)(s.cand_off - s.onset_raw)
                        > d->remerge * s.snap_sum) {
                    st = EMG_ACTIVE;            /* short gap: merged */
                } else if (t - s.cand_off >= d->min_gap) {
                    double thr = d->off_frac * s.snap_sum / (double)(s.cand_off - s.onset_raw);
                    if (thr < s.off_thr)
                        thr = s.off_thr;
                    if (e <= thr) {
                        st = EMG_IDLE;
                        s.last_off = s.cand_off;
                        if (d->remerge > 0.0 && e > s.off_thr) {
                            /* split without rest: refine the next onset
                               back to the dip (below the level that ended
                               this one), not to the baseline */
                            s.rearm = d->remerge * s.snap_sum
                                      / (double)(s.cand_off - s.onset_raw);
                            d->cold[c].rearm_low = thr;
                            s.on_eff = s.on_thr > s.rearm ? s.on_thr : s.rearm;
                            s.low_eff = thr > s.ref_thr ? thr : s.ref_thr;
                        }
                        emg_emit(d, 2, c, s.cand_off, t, s.onset, s.snap_peak,
                                 s.snap_sum / (double)(s.cand_off - s.onset_raw));
                    } else {
                        st = EMG_ACTIVE;
                    }
                }
            }
            s.state = st;
        } else {
            s.last_low = t;
        }
        i++;
    }
    d->ch[c] = s;
}

/* env: m x nc envelope rows.  At most one event per channel per sample, so
 * the caller sizes d->ev for m * nc events. */
static void emg_detect(emg_det_t *d, const double *env, ptrdiff_t m)
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
        for (ptrdiff_t c = 0; c < nc; c++)
            emg_detect_channel(d, c, env, i0, i1);
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
                if (++hist_pos == d->hist_cap)
                    hist_pos = 0;
                if (hist_len < d->hist_cap)
                    hist_len++;
                d->hist_pos = hist_pos;
                d->hist_len = hist_len;
                for (ptrdiff_t c = 0; c < nc; c++)
                    emg_floor(d, c, hist_len);
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

#endif
