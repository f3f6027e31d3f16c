# cython: language_level=3
"""Native EMG core: causal multichannel filter chain + contraction detector.

Everything here is causal and streaming; state lives in cdef classes (the
per-sample loops in native/emg_kernels.h and native/emg_detect.h) and the
results are identical for any split of the input into blocks.  Validation,
defaults and filter design live in ``bridge/emg.py``; this module trusts its
inputs except where a wrong one would crash.
"""
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset, memcpy
from libc.math cimport isfinite
cimport numpy as cnp
from cpython.object cimport PyObject_GenericSetAttr

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
        long long below
    ctypedef struct emg_cold_t:
        double mu, sd, rearm_low, speak, zero
        int watch, first, cens
    ctypedef struct emg_det_t:
        Py_ssize_t nc, min_on, min_len, min_gap, win, hist_cap, comp
        Py_ssize_t nsub, sub_keep, settle, settle_start, horizon, watching, rearm_hold
        int autob, grp
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
    int emg_cpu_group()
    void emg_detect(emg_det_t* d, const double* env, Py_ssize_t m)

# Samples per internal chunk: the envelope scratch buffer and the event
# buffer are sized for one chunk, so a block of any length needs no
# allocation and events never overflow (at most one per channel per sample,
# plus two per channel when the start of the recording is re-judged).
cdef enum:
    CHUNK = 64
    # blocks of at least this many values (n x channels) run without the GIL
    RELEASE_GIL_VALUES = 16384


cdef object _object_new = object.__new__


cdef inline object _frozen(object cls, tuple names, tuple values):
    """An instance of the frozen, slotted dataclass ``cls`` with the fields
    ``names`` set to ``values`` (all of them, in order), without its
    generated ``__init__``, which sets each field through
    ``object.__setattr__`` from Python (~2 us per event object)."""
    cdef Py_ssize_t k
    obj = _object_new(cls)
    for k in range(len(names)):
        PyObject_GenericSetAttr(obj, names[k], values[k])
    return obj


cdef object _event_obj(int kind, int ch, long long sample, long long emitted,
                       long long onset, double peak, double mean, int flags,
                       double rate, object mvc, bint truncated, tuple types):
    """One Onset (kind 1) or Offset object from an event record."""
    cdef bint cens = flags & 1
    if kind == 1:
        return _frozen(<object>types[0], <tuple>types[1], (
            ch, sample, sample / rate, (emitted - sample) / rate, emitted, peak, mean,
            "onset", cens))
    pct = None if mvc is None else 100.0 * mean / mvc[ch]
    c = _frozen(<object>types[4], <tuple>types[5], (
        ch, onset / rate, sample / rate, peak, mean, pct, onset, sample, truncated, cens))
    return _frozen(<object>types[2], <tuple>types[3], (
        ch, sample, sample / rate, (emitted - sample if emitted > sample else 0) / rate,
        emitted, c, "offset"))


cdef _check_types(tuple types):
    """``types`` as ``make_events`` takes it: ``_frozen`` reads the class and
    field names without checks, so a wrong one (a subclass with a field
    more, say) would read past a tuple's end."""
    cdef Py_ssize_t k
    if len(types) != 6:
        raise TypeError("types: (Onset, names, Offset, names, Contraction, names)")
    for k, n in ((0, 9), (2, 7), (4, 10)):
        if not isinstance(types[k], type) or type(types[k + 1]) is not tuple or len(types[k + 1]) != n:
            raise TypeError(f"types[{k}]: a class and a tuple of its {n} field names expected")


def make_events(recs, double rate, mvc, bint truncated, tuple types):
    """Event tuples -> Onset / Offset objects (``ContractionDetector._convert``).

    ``types``: (Onset, its field names, Offset, its field names, Contraction,
    its field names); the values are set in the dataclasses' field order.
    """
    cdef list out = []
    cdef int kind, ch, flags
    cdef long long sample, emitted, onset
    cdef double peak, mean
    _check_types(types)
    for kind, ch, sample, emitted, onset, peak, mean, flags in recs:
        out.append(_event_obj(kind, ch, sample, emitted, onset, peak, mean, flags, rate, mvc,
                              truncated, types))
    return out


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
    cdef emg_det_t snap_d
    cdef char* snap
    cdef bint snap_hist
    cdef object to_block    # callable: array-like -> C-contiguous float64 (n, nc)
    cdef object to_events   # callable: (event tuples, truncated) -> list
    # process_events builds the event objects itself when bound with their
    # types (the default ContractionDetector._convert): no tuples, no frame
    cdef tuple ev_types
    cdef double ev_rate
    cdef object ev_mvc

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
        self.snap = NULL

    def __init__(self, _Chain chain, Py_ssize_t channels, double k_on, double k_off,
                 double k_ref, Py_ssize_t min_on, Py_ssize_t min_len,
                 Py_ssize_t min_gap, Py_ssize_t window, Py_ssize_t history,
                 double quiet, Py_ssize_t delay_comp, double off_fraction,
                 double min_ratio, double extrapolate, bint hold_nonfinite,
                 Py_ssize_t nsub=1, Py_ssize_t sub_keep=1, double remerge=0.0,
                 double confirm=0.0, Py_ssize_t settle=0, Py_ssize_t settle_start=0,
                 Py_ssize_t horizon=0, Py_ssize_t rearm_hold=1):
        if chain.nc != channels or channels < 1:
            raise ValueError("chain/channel mismatch")
        if window < 1 or history < 1 or min_on < 1 or min_len < 1 or min_gap < 0:
            raise ValueError("bad detector timing")
        if nsub < 1 or nsub > 16 or nsub > window or sub_keep < 1 or sub_keep > nsub:
            raise ValueError("bad sub-window split")
        if settle < 0 or settle_start < settle or horizon < 0:
            raise ValueError("bad start watch")
        if rearm_hold < 1:
            raise ValueError("bad re-arm hold")
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
        self.d.rearm_hold = rearm_hold
        self.d.autob = 1
        self.d.grp = emg_cpu_group()
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
        self.snap = <char*>calloc(self._snap_size(), 1)
        if (self.snap == NULL or self.d.ch == NULL or self.d.cold == NULL or self.d.hmean == NULL or self.d.hvar == NULL
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
        free(self.snap)

    cdef size_t _snap_size(self):
        cdef size_t nc = self.nc, h = self.d.hist_cap
        return (self.chain.state_size() * sizeof(double) + nc * sizeof(emg_chan_t)
                + nc * sizeof(emg_cold_t) + 2 * nc * h * sizeof(double) + nc * h * sizeof(int)
                + nc * self.d.nsub * sizeof(double) + 3 * nc * sizeof(double))

    cdef void _save(self, Py_ssize_t n) noexcept nogil:
        """Everything ``process`` changes in a block of ``n`` samples but the
        start-watch envelope (rewritten before it is read again) and the
        event buffer; the noise-floor history (the bulk) only if the block
        reaches the end of a baseline window."""
        cdef char* p = self.snap
        cdef size_t nc = self.nc, h = self.d.hist_cap
        self.snap_d = self.d
        self.chain.save(<double*>p)
        p += self.chain.state_size() * sizeof(double)
        memcpy(p, self.d.ch, nc * sizeof(emg_chan_t)); p += nc * sizeof(emg_chan_t)
        memcpy(p, self.d.cold, nc * sizeof(emg_cold_t)); p += nc * sizeof(emg_cold_t)
        memcpy(p, self.d.subvar, nc * self.d.nsub * sizeof(double)); p += nc * self.d.nsub * sizeof(double)
        memcpy(p, self.d.wacc, 3 * nc * sizeof(double)); p += 3 * nc * sizeof(double)
        self.snap_hist = self.d.autob and n >= self.d.win - self.d.win_n
        if self.snap_hist:
            memcpy(p, self.d.hmean, nc * h * sizeof(double)); p += nc * h * sizeof(double)
            memcpy(p, self.d.hvar, nc * h * sizeof(double)); p += nc * h * sizeof(double)
            memcpy(p, self.d.hord, nc * h * sizeof(int))

    cdef void _restore(self) noexcept nogil:
        cdef char* p = self.snap
        cdef size_t nc = self.nc, h = self.d.hist_cap
        self.d = self.snap_d
        self.d.nev = 0
        self.chain.restore(<double*>p)
        p += self.chain.state_size() * sizeof(double)
        memcpy(self.d.ch, p, nc * sizeof(emg_chan_t)); p += nc * sizeof(emg_chan_t)
        memcpy(self.d.cold, p, nc * sizeof(emg_cold_t)); p += nc * sizeof(emg_cold_t)
        memcpy(self.d.subvar, p, nc * self.d.nsub * sizeof(double)); p += nc * self.d.nsub * sizeof(double)
        memcpy(self.d.wacc, p, 3 * nc * sizeof(double)); p += 3 * nc * sizeof(double)
        if self.snap_hist:
            memcpy(self.d.hmean, p, nc * h * sizeof(double)); p += nc * h * sizeof(double)
            memcpy(self.d.hvar, p, nc * h * sizeof(double)); p += nc * h * sizeof(double)
            memcpy(self.d.hord, p, nc * h * sizeof(int))

    def _group(self, int width):
        """Tests: the widest channel group the detector may run side by side
        (8: AVX-512, 4: AVX2, 1: none); returns the width in use."""
        self.d.grp = min(width, emg_cpu_group())
        return self.d.grp

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
            s.below = 0
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

    cdef Py_ssize_t _run(self, const double* x, Py_ssize_t n, bint checked) noexcept nogil:
        """Process up to ``n`` samples; stop after a chunk that produced events.
        ``checked``: the chain checks each chunk for NaN/inf; -1 if it found
        one (the states are then partly advanced: the caller restores them)."""
        cdef Py_ssize_t pos = 0, m, k, c, nc = self.nc
        cdef const double* src
        cdef double val
        while pos < n:
            m = n - pos
            if m > CHUNK:
                m = CHUNK
            src = x + pos * nc
            if checked:
                if not self._run_checked(src, m):
                    return -1
                pos += m
                if self.d.nev:
                    break
                continue
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

    cdef int _run_checked(self, const double* x, Py_ssize_t n) noexcept nogil:
        """One chunk (1 <= n <= CHUNK): the filter chain checks the input as
        it goes; a block holding NaN/inf leaves every state as it was and
        returns 0 (nothing reaches the detector)."""
        cdef Py_ssize_t c
        if not self.chain.run_checked(x, n, self.env):
            return 0
        if self.d.t0 == 0:
            for c in range(self.nc):
                self.d.cold[c].zero = 1e-12 * fabs(x[c])
        emg_detect(&self.d, self.env, n)
        return 1

    cdef _reject(self, Py_ssize_t bad):
        self.nonfinite += 1
        raise SignalError(
            f"non-finite sample (NaN/inf) at row {bad // self.nc}, channel "
            f"{bad % self.nc} of this block; the block was rejected and the "
            f"detector state is unchanged (use nonfinite='hold' to bridge gaps)")

    cdef list _take_events(self, bint objs):
        """The buffered events as tuples, or (``objs``) as Onset / Offset
        objects (``bind`` with the event types)."""
        cdef Py_ssize_t k, nev = self.d.nev
        cdef emg_event_t* r
        out = []
        # taken before the objects are built: if building one raises, the
        # records must not stay in the buffer (the next chunk would append
        # to them, past its end, and hand them out again)
        self.d.nev = 0
        for k in range(nev):
            r = &self.d.ev[k]
            if objs:
                out.append(_event_obj(r.kind, r.channel, r.sample, r.emitted, r.onset, r.peak,
                                      r.mean, r.flags, self.ev_rate, self.ev_mvc, False,
                                      self.ev_types))
            else:
                out.append((r.kind, r.channel, r.sample, r.emitted, r.onset, r.peak, r.mean,
                            r.flags))
        return out

    cdef object _process_ptr(self, const double* x, Py_ssize_t n, bint objs):
        cdef Py_ssize_t pos = 0, used, bad
        cdef list out = None, taken
        cdef object failed = None
        # Releasing and re-taking the GIL costs about as much as a 32-sample
        # block of work; only long blocks let other threads run meanwhile.
        cdef bint release = n * self.nc >= RELEASE_GIL_VALUES
        # NaN/inf: found by the filter chain as it runs (no separate pass
        # over the block), the block taken back if one turns up: a block of
        # one chunk needs no copy of the state for that, a longer one a copy
        # (small unless the block reaches a baseline window end).  TKEO and
        # RMS envelopes keep histories the chain cannot take back: a pass
        # over the block before.
        cdef bint checked = not self.hold and self.chain.undoable
        if n == 0:
            return ()
        if checked and n <= CHUNK and not release:
            if self._run_checked(x, n):
                return self._take_events(objs) if self.d.nev else ()
            self._reject(emg_find_nonfinite(x, n * self.nc))
        if checked:
            self._save(n)
        elif not self.hold:
            if release:
                with nogil:
                    bad = emg_find_nonfinite(x, n * self.nc)
            else:
                bad = emg_find_nonfinite(x, n * self.nc)
            if bad >= 0:
                self._reject(bad)
        while pos < n:
            if release:
                with nogil:
                    used = self._run(x + pos * self.nc, n - pos, checked)
            else:
                used = self._run(x + pos * self.nc, n - pos, checked)
            if used < 0:
                self._restore()
                self._reject(emg_find_nonfinite(x, n * self.nc))
            pos += used
            if self.d.nev:
                if failed is not None:
                    self.d.nev = 0
                    continue
                try:
                    taken = self._take_events(objs)
                except BaseException as e:
                    # building an event object failed (e.g. Ctrl-C in an
                    # MVC lookup): run the rest of the block all the same,
                    # so the stream stays aligned, and raise at its end -
                    # as process() + _convert, which lose the block's events
                    failed = e
                    continue
                if out is None:
                    out = taken
                else:
                    out.extend(taken)
        if failed is not None:
            raise failed
        return out if out is not None else ()

    cdef object _fast(self, object block, bint objs):
        """Events of an exact float64 C-contiguous (n, channels) ndarray
        (tuples, or objects with ``objs``), or None for any other input."""
        cdef cnp.ndarray arr
        if not cnp.PyArray_CheckExact(block):
            return None
        arr = <cnp.ndarray>block
        if (cnp.PyArray_NDIM(arr) != 2 or cnp.PyArray_TYPE(arr) != cnp.NPY_DOUBLE
                or not cnp.PyArray_IS_C_CONTIGUOUS(arr)
                or cnp.PyArray_DIMS(arr)[1] != self.nc):
            return None
        return self._process_ptr(<const double*>cnp.PyArray_DATA(arr), cnp.PyArray_DIMS(arr)[0],
                                 objs)

    def process_fast(self, object block):
        """Fast path for exact float64 C-contiguous (n, channels) ndarrays.

        Returns a tuple/list of event tuples ``(kind, channel, sample,
        emitted, onset, peak, mean, flags)`` (empty tuple if none; flags bit
        0: the onset is left-censored), or None when
        ``block`` is not eligible (the caller converts and calls ``process``).
        """
        return self._fast(block, False)

    def bind(self, to_block, to_events, tuple types=None, double rate=0.0):
        """Callbacks of ``process_events``: ``to_block(block)`` converts any
        other input, ``to_events(tuples, False)`` makes the event objects.
        With ``types`` (as for ``make_events``) and ``rate`` the fast path
        builds them itself, as ``make_events(tuples, rate, mvc, False,
        types)`` would (``mvc``: see ``set_mvc``)."""
        if types is not None:
            _check_types(types)
        self.to_block = to_block
        self.to_events = to_events
        self.ev_types = types
        self.ev_rate = rate

    def set_mvc(self, mvc):
        """The MVC per channel (indexable, or None) for the events that
        ``process_events`` builds itself."""
        self.ev_mvc = mvc

    def process_events(self, object block):
        """Feed a block (n_samples, channels); return the list of events it
        decided, made by the ``bind`` callbacks: ``ContractionDetector.process``
        in one native call (no Python frame per block)."""
        cdef bint objs = self.ev_types is not None
        recs = self._fast(block, objs)
        if recs is None:
            recs = self.process(self.to_block(block))
            objs = False
        if not recs:
            return []
        return recs if objs else self.to_events(recs, False)

    def process(self, object x):
        """Feed raw samples (n, channels); return event tuples
        ``(kind, channel, sample, emitted, onset, peak, mean, flags)``."""
        recs = self._fast(x, False)
        return recs if recs is not None else self._process_view(x)

    cdef object _process_view(self, const double[:, ::1] x):
        # a typed memoryview costs ~0.18 us per call: only for inputs that
        # are not plain C-contiguous float64 ndarrays
        if x.shape[1] != self.nc:
            raise ValueError("channel count mismatch")
        if x.shape[0] == 0:
            return ()
        return self._process_ptr(&x[0, 0], x.shape[0], False)

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
