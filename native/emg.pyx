# cython: language_level=3
"""Native EMG core: causal multichannel filter chain + contraction detector.

Everything here is causal and streaming; state lives in cdef classes (the
per-sample loops in native/emg_kernels.h and native/emg_detect.h) and the
results are identical for any split of the input into blocks.  Validation,
defaults and filter design live in ``bridge/emg.py``; this module trusts its
inputs except where a wrong one would crash.
"""
from libc.stdlib cimport calloc, free
from libc.string cimport memset
from libc.math cimport isfinite
cimport numpy as cnp

include "_emg_chain.pxi"

from bridge.errors import SignalError

cnp.import_array()

cdef extern from "emg_detect.h" nogil:
    ctypedef struct emg_event_t:
        int kind
        int channel
        long long sample
        long long emitted
        long long onset
        double peak
        double mean
        int flags
    ctypedef struct emg_chan_t:
        int state, have_base
        long long last_low, last_off, onset, onset_raw, cand_off, above
        double pre_sum, pre_peak, acc_sum, acc_peak, snap_sum, snap_peak
        double on_thr, off_thr, ref_thr, extrap_f
        double rearm, on_eff, low_eff
    ctypedef struct emg_cold_t:
        double mu, sd, rearm_low, speak, zero
        int watch, first, cens
    ctypedef struct emg_det_t:
        Py_ssize_t nc, min_on, min_len, min_gap, win, hist_cap, comp
        Py_ssize_t nsub, sub_keep, settle, settle_start, horizon, watching
        int autob
        double k_on, k_off, k_ref, off_frac, min_ratio, quiet, extrap, remerge, confirm
        emg_chan_t* ch
        emg_cold_t* cold
        double* hmean
        double* hvar
        int* hord
        double* subvar
        double* wacc
        double* sbuf
        Py_ssize_t win_n, sub_i, hist_pos, hist_len
        long long t0
        emg_event_t* ev
        Py_ssize_t nev
    int EMG_IDLE, EMG_ACTIVE, EMG_PENDING_OFF
    void emg_set_base(const emg_det_t* d, Py_ssize_t c, double m, double sd)
    void emg_detect(emg_det_t* d, const double* env, Py_ssize_t m)

# Samples per internal chunk: the envelope scratch buffer and the event
# buffer are sized for one chunk, so a block of any length needs no
# allocation and events never overflow (at most one per channel per sample,
# plus two per channel when the start of the recording is re-judged).
cdef enum:
    CHUNK = 64
    # blocks of at least this many values (n x channels) run without the GIL
    RELEASE_GIL_VALUES = 16384


cdef class _Detector:
    """Filter chain + per-channel hysteresis detector, one call per block."""
    cdef _Chain chain
    cdef emg_det_t d
    cdef Py_ssize_t nc
    cdef int hold
    cdef double* last_good
    cdef double* xin
    cdef double* env
    cdef public long long nonfinite

    def __cinit__(self):
        self.d.ch = NULL
        self.d.cold = NULL
        self.d.hmean = NULL
        self.d.hvar = NULL
        self.d.hord = NULL
        self.d.subvar = NULL
        self.d.wacc = NULL
        self.d.sbuf = NULL
        self.d.ev = NULL
        self.last_good = NULL
        self.xin = NULL
        self.env = NULL

    def __init__(self, _Chain chain, Py_ssize_t channels, double k_on, double k_off,
                 double k_ref, Py_ssize_t min_on, Py_ssize_t min_len,
                 Py_ssize_t min_gap, Py_ssize_t window, Py_ssize_t history,
                 double quiet, Py_ssize_t delay_comp, double off_fraction,
                 double min_ratio, double extrapolate, bint hold_nonfinite,
                 Py_ssize_t nsub=1, Py_ssize_t sub_keep=1, double remerge=0.0,
                 double confirm=0.0, Py_ssize_t settle=0, Py_ssize_t settle_start=0,
                 Py_ssize_t horizon=0):
        if chain.nc != channels or channels < 1:
            raise ValueError("chain/channel mismatch")
        if window < 1 or history < 1 or min_on < 1 or min_len < 1 or min_gap < 0:
            raise ValueError("bad detector timing")
        if nsub < 1 or nsub > 16 or nsub > window or sub_keep < 1 or sub_keep > nsub:
            raise ValueError("bad sub-window split")
        if settle < 0 or settle_start < settle or horizon < 0:
            raise ValueError("bad start watch")
        self.chain = chain
        self.nc = channels
        self.hold = hold_nonfinite
        self.d.nc = channels
        self.d.k_on = k_on
        self.d.k_off = k_off
        self.d.k_ref = k_ref
        self.d.min_on = min_on
        self.d.min_len = min_len
        self.d.min_gap = min_gap
        self.d.win = window
        self.d.hist_cap = history
        self.d.nsub = nsub
        self.d.sub_keep = sub_keep
        self.d.quiet = quiet if 0.0 < quiet <= 1.0 else 0.25
        self.d.comp = delay_comp if delay_comp > 0 else 0
        self.d.off_frac = off_fraction
        self.d.min_ratio = min_ratio
        self.d.extrap = extrapolate
        self.d.remerge = remerge if remerge > 0.0 else 0.0
        self.d.confirm = confirm if confirm > 0.0 else 0.0
        self.d.settle = settle
        self.d.settle_start = settle_start
        # whole baseline windows: the start is re-judged at window ends
        self.d.horizon = ((horizon + window - 1) // window) * window
        self.d.watching = 0
        self.d.autob = 1
        self.d.ch = <emg_chan_t*>calloc(channels, sizeof(emg_chan_t))
        self.d.cold = <emg_cold_t*>calloc(channels, sizeof(emg_cold_t))
        self.d.hmean = <double*>calloc(channels * history, sizeof(double))
        self.d.hvar = <double*>calloc(channels * history, sizeof(double))
        self.d.hord = <int*>calloc(channels * history, sizeof(int))
        self.d.subvar = <double*>calloc(channels * nsub, sizeof(double))
        self.d.wacc = <double*>calloc(channels * 3, sizeof(double))
        self.d.sbuf = <double*>calloc(channels * self.d.horizon + 1, sizeof(double))
        self.d.ev = <emg_event_t*>calloc((CHUNK + 2) * channels, sizeof(emg_event_t))
        self.last_good = <double*>calloc(channels, sizeof(double))
        self.xin = <double*>calloc(channels * CHUNK, sizeof(double))
        self.env = <double*>calloc(channels * CHUNK, sizeof(double))
        if (self.d.ch == NULL or self.d.cold == NULL or self.d.hmean == NULL or self.d.hvar == NULL
                or self.d.hord == NULL or self.d.subvar == NULL or self.d.wacc == NULL or self.d.sbuf == NULL or self.d.ev == NULL or self.last_good == NULL
                or self.xin == NULL or self.env == NULL):
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        free(self.d.ch)
        free(self.d.cold)
        free(self.d.hmean)
        free(self.d.hvar)
        free(self.d.hord)
        free(self.d.subvar)
        free(self.d.wacc)
        free(self.d.sbuf)
        free(self.d.ev)
        free(self.last_good)
        free(self.xin)
        free(self.env)

    def reset(self):
        """Back to sample 0: filters, detector states and the tracked noise
        floor are cleared; a calibrated rest baseline is kept.  With the
        automatic floor the start watch (censored starts) opens again."""
        cdef Py_ssize_t c
        cdef emg_chan_t* s
        self.chain.reset()
        self.d.t0 = 0
        self.d.nev = 0
        self.d.win_n = 0
        self.d.sub_i = 0
        self.d.hist_len = 0
        self.d.hist_pos = 0
        self.nonfinite = 0
        for c in range(self.nc):
            s = &self.d.ch[c]
            s.state = EMG_IDLE
            s.last_low = -1
            s.last_off = 0
            s.onset = 0
            s.onset_raw = 0
            s.cand_off = 0
            s.above = 0
            s.pre_sum = 0.0
            s.pre_peak = 0.0
            s.acc_sum = 0.0
            s.acc_peak = 0.0
            s.snap_sum = 0.0
            s.snap_peak = 0.0
            self.d.wacc[3 * c] = 0.0
            self.d.wacc[3 * c + 1] = 0.0
            self.d.wacc[3 * c + 2] = 0.0
            s.rearm = 0.0
            self.d.cold[c].rearm_low = 0.0
            self.d.cold[c].first = 1
            self.d.cold[c].cens = 0
            s.on_eff = s.on_thr
            s.low_eff = s.ref_thr
            self.last_good[c] = 0.0
            if self.d.autob:
                s.have_base = 0
        self._open_watch(self.d.autob and self.d.horizon > 0)

    cdef void _open_watch(self, bint on):
        """Open (or close) the start watch of every channel."""
        cdef Py_ssize_t c
        self.d.watching = 0
        for c in range(self.nc):
            self.d.cold[c].watch = 1 if on else 0
            self.d.cold[c].speak = 0.0
            self.d.cold[c].zero = 0.0
            if on:
                self.d.watching += 1

    def set_baseline(self, const double[::1] mu, const double[::1] sd):
        """Fix the rest baseline (mean, SD of the envelope) per channel and
        stop automatic noise-floor tracking."""
        cdef Py_ssize_t c
        if mu.shape[0] != self.nc or sd.shape[0] != self.nc:
            raise ValueError("baseline length != channels")
        self.d.autob = 0
        # a fixed floor: a first onset before the envelope settled is flagged
        # censored directly, no re-judgement of the start
        self._open_watch(False)
        for c in range(self.nc):
            emg_set_base(&self.d, c, mu[c], sd[c])

    def clear_baseline(self):
        """Return to automatic noise-floor tracking (from the next window).

        Before the first sample this also opens the start watch; later the
        start is not re-judged (its envelope was not kept)."""
        cdef Py_ssize_t c
        self.d.autob = 1
        self._open_watch(self.d.t0 == 0 and self.d.horizon > 0)
        self.d.win_n = 0
        self.d.sub_i = 0
        self.d.hist_len = 0
        self.d.hist_pos = 0
        for c in range(self.nc):
            self.d.ch[c].have_base = 0
            self.d.wacc[3 * c] = 0.0
            self.d.wacc[3 * c + 1] = 0.0
            self.d.wacc[3 * c + 2] = 0.0

    def baseline(self):
        """(mean, sd, on threshold, off threshold) per channel, NaN if unknown."""
        out = []
        nan = float("nan")
        for c in range(self.nc):
            s = &self.d.ch[c]
            if s.have_base:
                out.append((self.d.cold[c].mu, self.d.cold[c].sd, s.on_thr, s.off_thr))
            else:
                out.append((nan, nan, nan, nan))
        return out

    @property
    def sample_count(self):
        return self.d.t0

    @property
    def tracking(self):
        """True while the noise floor is tracked automatically (no fixed rest baseline)."""
        return bool(self.d.autob)

    cdef Py_ssize_t _run(self, const double* x, Py_ssize_t n) noexcept nogil:
        """Process up to ``n`` samples; stop after a chunk that produced events."""
        cdef Py_ssize_t pos = 0, m, k, c, nc = self.nc
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
            if self.d.t0 == 0:
                # rounding level of what the pre-filter is primed with
                for c in range(nc):
                    self.d.cold[c].zero = 1e-12 * fabs(src[c])
            self.chain.run(src, m, self.env, NULL)
            emg_detect(&self.d, self.env, m)
            pos += m
            if self.d.nev:
                break
        return pos

    cdef list _take_events(self):
        cdef Py_ssize_t k
        cdef emg_event_t* r
        out = []
        for k in range(self.d.nev):
            r = &self.d.ev[k]
            out.append((r.kind, r.channel, r.sample, r.emitted, r.onset, r.peak, r.mean,
                        r.flags))
        self.d.nev = 0
        return out

    cdef object _process_ptr(self, const double* x, Py_ssize_t n):
        cdef Py_ssize_t pos = 0, used, bad
        cdef list out = None
        # Releasing and re-taking the GIL costs about as much as a 32-sample
        # block of work; only long blocks let other threads run meanwhile.
        cdef bint release = n * self.nc >= RELEASE_GIL_VALUES
        if n == 0:
            return ()
        if not self.hold:
            if release:
                with nogil:
                    bad = emg_find_nonfinite(x, n * self.nc)
            else:
                bad = emg_find_nonfinite(x, n * self.nc)
            if bad >= 0:
                self.nonfinite += 1
                raise SignalError(
                    f"non-finite sample (NaN/inf) at row {bad // self.nc}, channel "
                    f"{bad % self.nc} of this block; the block was rejected and the "
                    f"detector state is unchanged (use nonfinite='hold' to bridge gaps)")
        while pos < n:
            if release:
                with nogil:
                    used = self._run(x + pos * self.nc, n - pos)
            else:
                used = self._run(x + pos * self.nc, n - pos)
            pos += used
            if self.d.nev:
                if out is None:
                    out = self._take_events()
                else:
                    out.extend(self._take_events())
        return out if out is not None else ()

    def process_fast(self, object block):
        """Fast path for exact float64 C-contiguous (n, channels) ndarrays.

        Returns a tuple/list of event tuples ``(kind, channel, sample,
        emitted, onset, peak, mean, flags)`` (empty tuple if none; flags bit
        0: the onset is left-censored), or None when
        ``block`` is not eligible (the caller converts and calls ``process``).
        """
        cdef cnp.ndarray arr
        if not cnp.PyArray_CheckExact(block):
            return None
        arr = <cnp.ndarray>block
        if (cnp.PyArray_NDIM(arr) != 2 or cnp.PyArray_TYPE(arr) != cnp.NPY_DOUBLE
                or not cnp.PyArray_IS_C_CONTIGUOUS(arr)
                or cnp.PyArray_DIMS(arr)[1] != self.nc):
            return None
        return self._process_ptr(<const double*>cnp.PyArray_DATA(arr), cnp.PyArray_DIMS(arr)[0])

    def process(self, const double[:, ::1] x):
        """Feed raw samples (n, channels); return event tuples
        ``(kind, channel, sample, emitted, onset, peak, mean, flags)``."""
        if x.shape[1] != self.nc:
            raise ValueError("channel count mismatch")
        if x.shape[0] == 0:
            return ()
        return self._process_ptr(&x[0, 0], x.shape[0])

    def finish(self):
        """Close contractions still open at the current sample (end of data).

        Confirmed contractions end at the current sample (or at their pending
        offset); unconfirmed candidates are dropped.  Returns event tuples
        like ``process``; the detector is left idle and can continue.
        """
        cdef Py_ssize_t c
        cdef long long off
        cdef double s_sum, p
        cdef emg_chan_t* s
        out = []
        for c in range(self.nc):
            s = &self.d.ch[c]
            if s.state == EMG_ACTIVE or s.state == EMG_PENDING_OFF:
                if s.state == EMG_ACTIVE:
                    off = self.d.t0
                    s_sum = s.acc_sum
                    p = s.acc_peak
                else:
                    off = s.cand_off
                    s_sum = s.snap_sum
                    p = s.snap_peak
                if off > s.onset_raw:
                    out.append((2, c, off, self.d.t0, s.onset, p, s_sum / (off - s.onset_raw),
                                self.d.cold[c].cens))
                s.last_off = off
            self.d.cold[c].cens = 0
            s.state = EMG_IDLE
        return out
