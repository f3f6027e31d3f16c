# cython: language_level=3
"""Native EMG core: causal multichannel filter chain + contraction detector.

Everything here is causal and streaming; state lives in cdef classes and the
results are identical for any split of the input into blocks.  Validation,
defaults and filter design live in ``bridge/emg.py``; this module trusts its
inputs (shapes are still checked where a wrong one would crash).
"""
from libc.stdlib cimport calloc, free
from libc.string cimport memset, memcpy
from libc.math cimport isfinite

include "_emg_chain.pxi"

from bridge.errors import SignalError

# Samples per internal chunk: the envelope scratch buffer and the event
# buffer are sized for one chunk, so a block of any length needs no
# allocation and events never overflow (at most one per channel per sample).
cdef enum:
    CHUNK = 64

cdef enum:
    IDLE = 0
    CANDIDATE = 1
    ACTIVE = 2
    PENDING_OFF = 3

ctypedef struct EventRec:
    int kind            # 1 onset, 2 offset
    int channel
    long long sample    # refined onset sample / offset sample
    long long emitted   # sample being processed when the event was decided
    long long onset     # offsets: onset sample of the contraction
    double peak
    double mean


cdef class _Detector:
    """Filter chain + per-channel hysteresis detector, one call per block."""
    cdef _Chain chain
    cdef Py_ssize_t nc, min_on, min_len, min_gap, win, hist_cap, hist_len, hist_pos, win_n
    cdef Py_ssize_t nev, cap
    cdef long long t0
    cdef int auto, hold
    cdef double k_on, k_off, k_ref, off_frac, min_ratio
    cdef int* state
    cdef long long* last_low
    cdef long long* last_off
    cdef long long* onset
    cdef long long* onset_raw
    cdef Py_ssize_t comp
    cdef long long* cand_off
    cdef long long* above
    cdef double* pre_sum
    cdef double* pre_peak
    cdef double* acc_sum
    cdef double* acc_peak
    cdef double* snap_sum
    cdef double* snap_peak
    cdef double* mu
    cdef double* sd
    cdef double* on_thr
    cdef double* off_thr
    cdef double* ref_thr
    cdef int* have_base
    cdef double* wsum
    cdef double* wsq
    cdef double* hmean
    cdef double* hsd
    cdef double* last_good
    cdef double* sortbuf
    cdef double quiet
    cdef double* xin
    cdef double* env
    cdef EventRec* ev
    cdef public long long nonfinite

    def __cinit__(self):
        self.state = NULL

    def __init__(self, _Chain chain, Py_ssize_t channels, double k_on, double k_off,
                 double k_ref, Py_ssize_t min_on, Py_ssize_t min_len,
                 Py_ssize_t min_gap, Py_ssize_t window, Py_ssize_t history,
                 double quiet, Py_ssize_t delay_comp, double off_fraction,
                 double min_ratio, bint hold_nonfinite):
        if chain.nc != channels or channels < 1:
            raise ValueError("chain/channel mismatch")
        if window < 1 or history < 1 or min_on < 1 or min_len < 1 or min_gap < 0:
            raise ValueError("bad detector timing")
        self.chain = chain
        self.nc = channels
        self.k_on = k_on
        self.k_off = k_off
        self.k_ref = k_ref
        self.min_on = min_on
        self.min_len = min_len
        self.min_gap = min_gap
        self.win = window
        self.hist_cap = history
        self.hold = hold_nonfinite
        self.comp = delay_comp if delay_comp > 0 else 0
        self.off_frac = off_fraction
        self.min_ratio = min_ratio
        self.quiet = quiet if 0.0 < quiet <= 1.0 else 0.25
        self.auto = 1
        self.cap = CHUNK * channels
        n = channels
        self.state = <int*>calloc(n, sizeof(int))
        self.have_base = <int*>calloc(n, sizeof(int))
        self.last_low = <long long*>calloc(n, sizeof(long long))
        self.last_off = <long long*>calloc(n, sizeof(long long))
        self.onset = <long long*>calloc(n, sizeof(long long))
        self.onset_raw = <long long*>calloc(n, sizeof(long long))
        self.cand_off = <long long*>calloc(n, sizeof(long long))
        self.above = <long long*>calloc(n, sizeof(long long))
        self.pre_sum = <double*>calloc(n, sizeof(double))
        self.pre_peak = <double*>calloc(n, sizeof(double))
        self.acc_sum = <double*>calloc(n, sizeof(double))
        self.acc_peak = <double*>calloc(n, sizeof(double))
        self.snap_sum = <double*>calloc(n, sizeof(double))
        self.snap_peak = <double*>calloc(n, sizeof(double))
        self.mu = <double*>calloc(n, sizeof(double))
        self.sd = <double*>calloc(n, sizeof(double))
        self.on_thr = <double*>calloc(n, sizeof(double))
        self.off_thr = <double*>calloc(n, sizeof(double))
        self.ref_thr = <double*>calloc(n, sizeof(double))
        self.wsum = <double*>calloc(n, sizeof(double))
        self.wsq = <double*>calloc(n, sizeof(double))
        self.hmean = <double*>calloc(n * history, sizeof(double))
        self.hsd = <double*>calloc(n * history, sizeof(double))
        self.last_good = <double*>calloc(n, sizeof(double))
        self.sortbuf = <double*>calloc(2 * history, sizeof(double))
        self.xin = <double*>calloc(n * CHUNK, sizeof(double))
        self.env = <double*>calloc(n * CHUNK, sizeof(double))
        self.ev = <EventRec*>calloc(self.cap, sizeof(EventRec))
        if (self.state == NULL or self.have_base == NULL or self.last_low == NULL
                or self.last_off == NULL or self.onset == NULL or self.onset_raw == NULL or self.cand_off == NULL
                or self.above == NULL or self.pre_sum == NULL or self.pre_peak == NULL
                or self.acc_sum == NULL or self.acc_peak == NULL or self.snap_sum == NULL
                or self.snap_peak == NULL or self.mu == NULL or self.sd == NULL
                or self.on_thr == NULL or self.off_thr == NULL or self.ref_thr == NULL
                or self.wsum == NULL or self.wsq == NULL or self.hmean == NULL
                or self.hsd == NULL or self.last_good == NULL or self.sortbuf == NULL or self.xin == NULL
                or self.env == NULL or self.ev == NULL):
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        if self.state == NULL:
            return
        free(self.state); free(self.have_base); free(self.last_low); free(self.last_off)
        free(self.onset); free(self.onset_raw); free(self.cand_off); free(self.above); free(self.pre_sum)
        free(self.pre_peak); free(self.acc_sum); free(self.acc_peak); free(self.snap_sum)
        free(self.snap_peak); free(self.mu); free(self.sd); free(self.on_thr)
        free(self.off_thr); free(self.ref_thr); free(self.wsum); free(self.wsq)
        free(self.hmean); free(self.hsd); free(self.last_good); free(self.sortbuf); free(self.xin)
        free(self.env); free(self.ev)

    def reset(self):
        """Back to sample 0: filters, detector states and the tracked noise
        floor are cleared; a calibrated rest baseline is kept."""
        cdef Py_ssize_t c, n = self.nc
        self.chain.reset()
        self.t0 = 0
        self.nev = 0
        self.nonfinite = 0
        self.win_n = 0
        self.hist_len = 0
        self.hist_pos = 0
        for c in range(n):
            self.state[c] = IDLE
            self.last_low[c] = -1
            self.last_off[c] = 0
            self.onset[c] = 0
            self.onset_raw[c] = 0
            self.cand_off[c] = 0
            self.above[c] = 0
            self.pre_sum[c] = 0.0
            self.pre_peak[c] = 0.0
            self.acc_sum[c] = 0.0
            self.acc_peak[c] = 0.0
            self.wsum[c] = 0.0
            self.wsq[c] = 0.0
            self.last_good[c] = 0.0
            if self.auto:
                self.have_base[c] = 0

    def set_baseline(self, const double[::1] mu, const double[::1] sd):
        """Fix the rest baseline (mean, SD of the envelope) per channel and
        stop automatic noise-floor tracking."""
        cdef Py_ssize_t c
        if mu.shape[0] != self.nc or sd.shape[0] != self.nc:
            raise ValueError("baseline length != channels")
        self.auto = 0
        for c in range(self.nc):
            self._set_base(c, mu[c], sd[c])

    def clear_baseline(self):
        """Return to automatic noise-floor tracking (from the next window)."""
        cdef Py_ssize_t c
        self.auto = 1
        self.win_n = 0
        self.hist_len = 0
        self.hist_pos = 0
        for c in range(self.nc):
            self.have_base[c] = 0
            self.wsum[c] = 0.0
            self.wsq[c] = 0.0

    def baseline(self):
        """(mean, sd, on threshold, off threshold) per channel, NaN if unknown."""
        out = []
        for c in range(self.nc):
            if self.have_base[c]:
                out.append((self.mu[c], self.sd[c], self.on_thr[c], self.off_thr[c]))
            else:
                nan = float("nan")
                out.append((nan, nan, nan, nan))
        return out

    @property
    def sample_count(self):
        return self.t0

    cdef inline void _set_base(self, Py_ssize_t c, double m, double s) noexcept nogil:
        # A perfectly flat input (e.g. a disconnected channel that reads 0)
        # has s == 0; keep the thresholds strictly above the mean anyway.
        if s < 0.02 * m:
            s = 0.02 * m
        self.mu[c] = m
        self.sd[c] = s
        self.on_thr[c] = m + self.k_on * s
        if self.on_thr[c] < self.min_ratio * m:
            self.on_thr[c] = self.min_ratio * m
        self.off_thr[c] = m + self.k_off * s
        self.ref_thr[c] = m + self.k_ref * s
        self.have_base[c] = 1

    cdef void _close_window(self) noexcept nogil:
        """One baseline window ended: push its stats, re-estimate the floor.

        Quiet-fraction statistics over a long history: sort the recent
        windows by mean envelope and pool the quietest ``quiet`` fraction
        (mean of their means; SD from their mean within-window variance).  The quietest windows are rest even when the muscle works
        most of the time, a 10 s hold cannot lift the baseline while the
        history is longer than it, and pooling (rather than the single
        quietest window) avoids the low bias of a minimum.
        """
        cdef Py_ssize_t c, k, j, nc = self.nc, nq
        cdef double m, var, sm, ss, sq
        cdef double* srt = self.sortbuf
        for c in range(nc):
            m = self.wsum[c] / self.win
            var = self.wsq[c] / self.win - m * m
            self.hmean[self.hist_pos * nc + c] = m
            self.hsd[self.hist_pos * nc + c] = var if var > 0.0 else 0.0
            self.wsum[c] = 0.0
            self.wsq[c] = 0.0
        self.hist_pos += 1
        if self.hist_pos == self.hist_cap:
            self.hist_pos = 0
        if self.hist_len < self.hist_cap:
            self.hist_len += 1
        nq = <Py_ssize_t>(self.quiet * self.hist_len + 0.999999)
        if nq < 1:
            nq = 1
        for c in range(nc):
            # insertion sort of (mean, variance) pairs by mean; history is
            # small (tens of windows) and this runs a few times a second.
            for k in range(self.hist_len):
                m = self.hmean[k * nc + c]
                var = self.hsd[k * nc + c]
                j = k
                while j > 0 and srt[2 * (j - 1)] > m:
                    srt[2 * j] = srt[2 * (j - 1)]
                    srt[2 * j + 1] = srt[2 * (j - 1) + 1]
                    j -= 1
                srt[2 * j] = m
                srt[2 * j + 1] = var
            sm = 0.0
            ss = 0.0
            sq = 0.0
            for k in range(nq):
                sm += srt[2 * k]
                sq += srt[2 * k] * srt[2 * k]
                ss += srt[2 * k + 1]
            m = sm / nq
            # Within-window variance only: a between-window term would let
            # one half-active window in a short history inflate the SD.
            var = ss / nq
            self._set_base(c, m, sqrt(var) if var > 0.0 else 0.0)

    cdef inline void _emit(self, int kind, Py_ssize_t c, long long sample,
                           long long emitted, long long onset, double peak,
                           double mean) noexcept nogil:
        cdef EventRec* r = &self.ev[self.nev]
        r.kind = kind
        r.channel = <int>c
        r.sample = sample
        r.emitted = emitted
        r.onset = onset
        r.peak = peak
        r.mean = mean
        self.nev += 1

    cdef void _detect(self, const double* env, Py_ssize_t m) noexcept nogil:
        cdef Py_ssize_t i, c, nc = self.nc
        cdef long long t
        cdef double e, thr
        cdef int st
        for i in range(m):
            t = self.t0 + i
            for c in range(nc):
                e = env[i * nc + c]
                if self.auto:
                    self.wsum[c] += e
                    self.wsq[c] += e * e
                if not self.have_base[c]:
                    self.last_low[c] = t
                    continue
                # Where did the envelope last sit at the baseline?  Tracked
                # forwards so the onset can be refined backwards for free.
                if e <= self.ref_thr[c]:
                    self.last_low[c] = t
                    self.pre_sum[c] = 0.0
                    self.pre_peak[c] = 0.0
                else:
                    self.pre_sum[c] += e
                    if e > self.pre_peak[c]:
                        self.pre_peak[c] = e
                st = self.state[c]
                if st == IDLE:
                    if e > self.on_thr[c]:
                        st = CANDIDATE
                        self.above[c] = 0
                        # Refined onset: where the envelope last sat at the
                        # baseline, moved back by the envelope filter's own
                        # delay (its DC group delay), never before the last
                        # offset.  Amplitudes use the uncompensated span.
                        self.onset_raw[c] = self.last_low[c] + 1
                        if self.onset_raw[c] < self.last_off[c]:
                            self.onset_raw[c] = self.last_off[c]
                        self.onset[c] = self.onset_raw[c] - self.comp
                        if self.onset[c] < self.last_off[c]:
                            self.onset[c] = self.last_off[c]
                        if self.onset[c] < 0:
                            self.onset[c] = 0
                if st == CANDIDATE:
                    if e > self.on_thr[c]:
                        self.above[c] += 1
                    elif e < self.off_thr[c]:
                        st = IDLE
                    if (st == CANDIDATE and self.above[c] >= self.min_on
                            and t - self.onset_raw[c] + 1 >= self.min_len):
                        st = ACTIVE
                        self.acc_sum[c] = self.pre_sum[c]
                        self.acc_peak[c] = self.pre_peak[c]
                        self._emit(1, c, self.onset[c], t, self.onset[c],
                                   self.pre_peak[c], self.pre_sum[c] / (t - self.onset_raw[c] + 1))
                elif st == ACTIVE:
                    # Offset threshold: baseline hysteresis, or a fraction
                    # of the contraction's own mean level if that is higher
                    # (partial relaxation between reps never reaches rest).
                    thr = self.off_frac * self.acc_sum[c] / (t - self.onset_raw[c])
                    if thr < self.off_thr[c]:
                        thr = self.off_thr[c]
                    if e < thr:
                        st = PENDING_OFF
                        self.cand_off[c] = t
                        self.snap_sum[c] = self.acc_sum[c]
                        self.snap_peak[c] = self.acc_peak[c]
                    self.acc_sum[c] += e
                    if e > self.acc_peak[c]:
                        self.acc_peak[c] = e
                elif st == PENDING_OFF:
                    self.acc_sum[c] += e
                    if e > self.acc_peak[c]:
                        self.acc_peak[c] = e
                    if e > self.on_thr[c]:
                        st = ACTIVE          # short gap: merged
                    elif t - self.cand_off[c] >= self.min_gap:
                        thr = self.off_frac * self.snap_sum[c] / (self.cand_off[c] - self.onset_raw[c])
                        if thr < self.off_thr[c]:
                            thr = self.off_thr[c]
                        if e <= thr:
                            st = IDLE
                            self.last_off[c] = self.cand_off[c]
                            self._emit(2, c, self.cand_off[c], t, self.onset[c],
                                       self.snap_peak[c],
                                       self.snap_sum[c] / (self.cand_off[c] - self.onset_raw[c]))
                        else:
                            st = ACTIVE
                self.state[c] = st
            if self.auto:
                self.win_n += 1
                if self.win_n == self.win:
                    self.win_n = 0
                    self._close_window()
        self.t0 += m

    cdef Py_ssize_t _run(self, const double* x, Py_ssize_t n) noexcept nogil:
        """Process up to ``n`` samples; stop after a chunk that produced events."""
        cdef Py_ssize_t pos = 0, m, k, nc = self.nc
        cdef const double* src
        cdef double val
        while pos < n:
            m = n - pos
            if m > CHUNK:
                m = CHUNK
            src = x + pos * nc
            if self.hold:
                # Zero-order hold over non-finite samples: the filters see a
                # flat signal, time stays aligned, and the state stays finite.
                for k in range(m * nc):
                    val = src[k]
                    if isfinite(val):
                        self.last_good[k % nc] = val
                    else:
                        self.nonfinite += 1
                        val = self.last_good[k % nc]
                    self.xin[k] = val
                src = self.xin
            self.chain.run(src, m, self.env, NULL)
            self._detect(self.env, m)
            pos += m
            if self.nev:
                break
        return pos

    cdef list _take_events(self):
        cdef Py_ssize_t k
        cdef EventRec* r
        out = []
        for k in range(self.nev):
            r = &self.ev[k]
            out.append((r.kind, r.channel, r.sample, r.emitted, r.onset, r.peak, r.mean))
        self.nev = 0
        return out

    def process(self, const double[:, ::1] x):
        """Feed raw samples (n, channels); return event tuples
        ``(kind, channel, sample, emitted, onset, peak, mean)``."""
        cdef Py_ssize_t n = x.shape[0], pos = 0, used, k, bad
        cdef list out = None
        if x.shape[1] != self.nc:
            raise ValueError("channel count mismatch")
        if n == 0:
            return []
        if not self.hold:
            bad = -1
            with nogil:
                for k in range(n * self.nc):
                    if not isfinite((&x[0, 0])[k]):
                        bad = k
                        break
            if bad >= 0:
                self.nonfinite += 1
                raise SignalError(
                    f"non-finite sample (NaN/inf) at row {bad // self.nc}, channel "
                    f"{bad % self.nc} of this block; the block was rejected and the "
                    f"detector state is unchanged (use nonfinite='hold' to bridge gaps)")
        while pos < n:
            with nogil:
                used = self._run(&x[pos, 0], n - pos)
            pos += used
            if self.nev:
                if out is None:
                    out = self._take_events()
                else:
                    out.extend(self._take_events())
        return out if out is not None else []

    def finish(self):
        """Close contractions still open at the current sample (end of data).

        Confirmed contractions end at the current sample (or at their pending
        offset); unconfirmed candidates are dropped.  Returns event tuples
        like ``process``; the detector is left idle and can continue.
        """
        cdef Py_ssize_t c
        cdef long long off
        cdef double s, p
        out = []
        for c in range(self.nc):
            st = self.state[c]
            if st == ACTIVE or st == PENDING_OFF:
                if st == ACTIVE:
                    off = self.t0
                    s = self.acc_sum[c]
                    p = self.acc_peak[c]
                else:
                    off = self.cand_off[c]
                    s = self.snap_sum[c]
                    p = self.snap_peak[c]
                if off > self.onset_raw[c]:
                    out.append((2, c, off, self.t0, self.onset[c], p, s / (off - self.onset_raw[c])))
                self.last_off[c] = off
            self.state[c] = IDLE
        return out
