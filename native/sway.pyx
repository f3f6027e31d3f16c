# cython: language_level=3
"""Native balance core: tilt filter, causal low-pass, sliding sway window and
the single-leg stance state machine.

Everything is causal and streaming; state lives in cdef classes and results
are identical for any split of the input into blocks (each kernel works one
sample at a time and all decisions depend on the global sample index only).
Validation, defaults and filter design live in ``bridge/balance/``; this
module trusts its inputs apart from checks that would otherwise crash.
"""
cimport cython
from libc.stdlib cimport calloc, free, realloc
cimport numpy as cnp
from libc.math cimport sqrt, fabs, fmax, isfinite, pow, NAN

include "_sway_kernels.pxi"

cnp.import_array()

cdef double G = 9.80665


cdef void _load_tilt(TiltState* t, mounting, double rate, double gain,
                     double gate_lo, double gate_hi):
    cdef int i
    for i in range(9):
        t.m[i] = float(mounting[i])
    t.dt_rad = (1.0 / rate) * 3.141592653589793 / 180.0
    t.gain = gain
    t.gate_lo = gate_lo
    t.gate_hi = gate_hi
    t.ready = 0
    t.n = 0
    t.n_start = <long long> rate
    t.bias[0] = 0.0
    t.bias[1] = 0.0
    t.bias[2] = 0.0
    t.u[0] = 0.0
    t.u[1] = 0.0
    t.u[2] = 1.0


cdef void _load_sos(SosState* s, sos, zi):
    cdef int j, k
    s.nsec = len(sos)
    for j in range(s.nsec):
        for k in range(6):
            s.c[j][k] = float(sos[j][k])
        s.zi[j][0] = float(zi[j][0])
        s.zi[j][1] = float(zi[j][1])
    s.ready[0] = 0
    s.ready[1] = 0


cdef Py_ssize_t _first_nonfinite(const double[:, ::1] x, Py_ssize_t ncols) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(x.shape[0]):
        for j in range(ncols):
            if not isfinite(x[i, j]):
                return i
    return -1


cdef Py_ssize_t _first_nonfinite_p(const double* x, Py_ssize_t n, Py_ssize_t stride,
                                   Py_ssize_t ncols) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(ncols):
            if not isfinite(x[i * stride + j]):
                return i
    return -1


def first_nonfinite(const double[:, ::1] x, Py_ssize_t ncols):
    """Row index of the first NaN/inf in the first ``ncols`` columns, or -1."""
    cdef Py_ssize_t r
    if ncols > x.shape[1]:
        ncols = x.shape[1]
    with nogil:
        r = _first_nonfinite(x, ncols)
    return r


cdef class TiltFilter:
    """Gravity direction from gyro + accelerometer; AP/ML/up accelerations.

    process(imu (n, >=6) acc g + gyro deg/s, out (n, 7)): columns a_ap, a_ml,
    a_up [g], |a| [g], sin(forward lean), sin(left lean), forward-axis rate.
    """
    cdef TiltState st
    cdef object _args

    def __init__(self, mounting, double rate, double gain, double gate_lo, double gate_hi):
        self._args = (tuple(mounting), rate, gain, gate_lo, gate_hi)
        _load_tilt(&self.st, mounting, rate, gain, gate_lo, gate_hi)

    def reset(self):
        m, rate, g, lo, hi = self._args
        _load_tilt(&self.st, m, rate, g, lo, hi)

    @property
    def up(self):
        return (self.st.u[0], self.st.u[1], self.st.u[2])

    def process(self, const double[:, ::1] imu, double[:, ::1] out):
        cdef Py_ssize_t i, n = imu.shape[0]
        cdef TiltOut o
        if imu.shape[1] < 6 or out.shape[0] < n or out.shape[1] < 7:
            raise ValueError("imu must be (n, >=6) and out (n, 7)")
        with nogil:
            for i in range(n):
                tilt_step(&self.st, &imu[i, 0], &o)
                out[i, 0] = o.a_ap
                out[i, 1] = o.a_ml
                out[i, 2] = o.a_up
                out[i, 3] = o.norm
                out[i, 4] = o.sin_ap
                out[i, 5] = o.sin_ml
                out[i, 6] = o.gx


cdef class SosFilter2:
    """Causal biquad cascade over two channels (e.g. AP and ML), in place safe."""
    cdef SosState st
    cdef object _args

    def __init__(self, sos, zi):
        if len(sos) > MAX_SECTIONS:
            raise ValueError(f"at most {MAX_SECTIONS} sections")
        self._args = (sos, zi)
        _load_sos(&self.st, sos, zi)

    def reset(self):
        sos, zi = self._args
        _load_sos(&self.st, sos, zi)

    def process(self, const double[:, ::1] x, double[:, ::1] out):
        cdef Py_ssize_t i, n = x.shape[0]
        if x.shape[1] != 2 or out.shape[0] < n or out.shape[1] != 2:
            raise ValueError("x and out must be (n, 2)")
        with nogil:
            for i in range(n):
                out[i, 0] = sos_step(&self.st, 0, x[i, 0])
                out[i, 1] = sos_step(&self.st, 1, x[i, 1])


cdef inline double ellipse_k(double n) noexcept nogil:
    # 95 % prediction-ellipse scale 2 (n-1)(n+1) / (n (n-2)) * F_0.95(2, n-2);
    # the F(2, m) quantile has a closed form: m/2 ((1-p)^(-2/m) - 1).
    cdef double m = n - 2.0
    return 0.5 * m * (pow(0.05, -2.0 / m) - 1.0) * 2.0 * (n - 1.0) * (n + 1.0) / (n * m)


cdef class SwayWindow:
    """Sway metrics over the last ``window`` samples, or (window 0) over
    everything since reset, updated every sample.

    process(x (n, 2) ap/ml, out (n, 5)): rms_ap, rms_ml (mean removed),
    mean_velocity (path / (N/rate)), ellipse_area_95 (prediction ellipse),
    jerk_per_s (1/2 sum (dx*rate)^2 / rate / T); NaN for the first 2 samples.
    Sliding mode recomputes its running sums exactly every ``window`` samples
    (at fixed sample indices, so chunking never changes the result) to stop
    drift; cumulative mode accumulates about the first sample (shifted sums)
    to limit cancellation.
    """
    cdef double* buf      # ap, ml, path inc, jerk inc per slot
    cdef Py_ssize_t w
    cdef int cumulative
    cdef long long count
    cdef double rate, k_full
    cdef double sa, sm, saa, smm, sam, sp, sj
    cdef double pa, pm, ka, km

    def __cinit__(self, Py_ssize_t window, double rate):
        if window != 0 and window < 3:
            raise ValueError("window must hold at least 3 samples (or 0 = whole trial)")
        self.cumulative = window == 0
        self.w = window if window else 1
        self.buf = <double*> calloc(4 * self.w, sizeof(double))
        if self.buf == NULL:
            raise MemoryError()
        self.rate = rate
        self.k_full = ellipse_k(<double> window) if window else 0.0
        self.reset()

    def __dealloc__(self):
        free(self.buf)

    def reset(self):
        cdef Py_ssize_t i
        for i in range(4 * self.w):
            self.buf[i] = 0.0
        self.count = 0
        self.sa = self.sm = self.saa = self.smm = self.sam = self.sp = self.sj = 0.0
        self.pa = self.pm = self.ka = self.km = 0.0

    cdef void _recompute(self) noexcept nogil:
        cdef Py_ssize_t k, w = self.w
        cdef long long c = self.count if self.count < w else w
        cdef long long first = self.count - c
        cdef Py_ssize_t pos
        self.sa = self.sm = self.saa = self.smm = self.sam = self.sp = self.sj = 0.0
        for k in range(c):
            pos = (first + k) % w
            self.sa += self.buf[4 * pos]
            self.sm += self.buf[4 * pos + 1]
            self.saa += self.buf[4 * pos] * self.buf[4 * pos]
            self.smm += self.buf[4 * pos + 1] * self.buf[4 * pos + 1]
            self.sam += self.buf[4 * pos] * self.buf[4 * pos + 1]
            if k > 0:  # increments of the oldest sample point outside the window
                self.sp += self.buf[4 * pos + 2]
                self.sj += self.buf[4 * pos + 3]

    cdef void _step(self, double a, double m, double* o) noexcept nogil:
        cdef Py_ssize_t w = self.w
        cdef Py_ssize_t pos = 0
        cdef double* old
        cdef double da, dm, inc_p, inc_j, c, ma, mm, vaa, vmm, vam, det, x, y
        if self.count > 0:
            da = a - self.pa
            dm = m - self.pm
            inc_j = da * da + dm * dm
            inc_p = sqrt(inc_j)
        else:
            inc_p = 0.0
            inc_j = 0.0
            self.ka = a
            self.km = m
        if self.cumulative:
            x = a - self.ka
            y = m - self.km
        else:
            x = a
            y = m
            pos = self.count % w
            if self.count >= w:  # drop the sample leaving the window
                old = &self.buf[4 * pos]
                self.sa -= old[0]
                self.sm -= old[1]
                self.saa -= old[0] * old[0]
                self.smm -= old[1] * old[1]
                self.sam -= old[0] * old[1]
                # the increment of the new oldest sample leaves the path too
                old = &self.buf[4 * ((self.count + 1) % w)]
                self.sp -= old[2]
                self.sj -= old[3]
            self.buf[4 * pos] = a
            self.buf[4 * pos + 1] = m
            self.buf[4 * pos + 2] = inc_p
            self.buf[4 * pos + 3] = inc_j
        self.pa = a
        self.pm = m
        self.sa += x
        self.sm += y
        self.saa += x * x
        self.smm += y * y
        self.sam += x * y
        if self.count > 0:
            self.sp += inc_p
            self.sj += inc_j
        self.count += 1
        if not self.cumulative and self.count % w == 0:
            self._recompute()
        c = <double> (self.count if (self.cumulative or self.count < w) else w)
        if c < 3:
            o[0] = NAN
            o[1] = NAN
            o[2] = NAN
            o[3] = NAN
            o[4] = NAN
            return
        ma = self.sa / c
        mm = self.sm / c
        vaa = self.saa / c - ma * ma
        vmm = self.smm / c - mm * mm
        vam = self.sam / c - ma * mm
        o[0] = sqrt(vaa) if vaa > 0.0 else 0.0
        o[1] = sqrt(vmm) if vmm > 0.0 else 0.0
        o[2] = self.sp * self.rate / c
        det = (vaa * vmm - vam * vam) * (c / (c - 1.0)) * (c / (c - 1.0))
        o[3] = 3.141592653589793 * sqrt(det if det > 0.0 else 0.0) * (
            self.k_full if (not self.cumulative and self.count >= w) else ellipse_k(c))
        o[4] = 0.5 * self.sj * self.rate / (c / self.rate)

    def process(self, const double[:, ::1] x, double[:, ::1] out):
        cdef Py_ssize_t i, n = x.shape[0]
        if x.shape[1] != 2 or out.shape[0] < n or out.shape[1] != 5:
            raise ValueError("x must be (n, 2) and out (n, 5)")
        with nogil:
            for i in range(n):
                self._step(x[i, 0], x[i, 1], &out[i, 0])


# ---------------------------------------------------------------------------
# Single-leg stance state machine
# ---------------------------------------------------------------------------
cdef enum:
    S_BASELINE = 0     # learning the double-stance lean
    S_ARMED = 1        # double stance, watching for a weight shift
    S_SETTLING = 2     # weight shift confirmed, measuring the stance lean
    S_STANCE = 3       # single-leg stance
    S_DONE = 4         # trial over

cdef enum:
    EV_BASELINE = 1
    EV_STANCE = 2
    EV_TOUCHDOWN = 3
    EV_JOLT = 4
    EV_COMPLETE = 5

cdef enum:
    N_EVF = 5          # fields per event record
    CHUNK = 128        # samples per signal stage (see StanceCore._signals)


@cython.final
cdef class StanceCore:
    """Tilt filter + 4th-order low-pass + stance state machine, per sample.

    process(imu (n, >=6), out (n, 4), events (m, 5)) -> number of events.
    out columns: a_ap, a_ml (low-passed, m/s^2), lean toward the stance leg
    relative to the double-stance baseline (sin units), state code.
    Event records: kind, sample, value1, value2, detected-at sample.
    """
    cdef TiltState tilt
    cdef SosState sos
    cdef object _args
    cdef double* ring           # lean deviation history, for the retro lift-off estimate
    cdef double* ring_r         # high-passed |a| history, to time soft touchdowns
    cdef double* ring_a         # horizontal acceleration toward the stance leg (g), raw
    cdef double* fit_buf        # scratch: the weight-shift window, contiguous
    cdef double* fit_scratch    # scratch of shift_fit (phase arrays, template, sums)
    cdef double* sig_buf        # scratch of _signals: 8 doubles per sample of a chunk
    cdef Py_ssize_t ring_n      # history the decisions may look back on (samples)
    cdef Py_ssize_t ring_len    # allocated: ring_n + CHUNK (the signal stage runs ahead)
    cdef Py_ssize_t pos         # == i % ring_len, kept incrementally (no division per sample)
    cdef double* evp            # event buffer of the running process() call, N_EVF per row
    cdef Py_ssize_t ev_cap
    cdef double* ev_own         # run(): event buffer owned by the core (grown on demand)
    cdef Py_ssize_t ev_own_cap
    # parameters (samples / sin units / g)
    cdef double side, lean_alpha, norm_alpha, base_alpha, pd_alpha, r_alpha
    cdef double soft_imp_min, soft_imp_k
    cdef long long baseline_n, confirm_n, plateau_n, back_n, confirm_td_n, soft_n, duration_n
    cdef double lift_thr, settle_frac, td_frac, soft_frac, imp_thr, acc_clip, gyro_sat
    cdef int end_on_touchdown
    cdef long long fit_back_n, fit_tmin_n, fit_tmax_n
    cdef double rate, fit_min_disp, fit_min_r2
    # last weight-shift fit (diagnostics): shift distance (m), duration (s),
    # fraction of the window's variance explained, 1 if its end was used
    cdef public double fit_disp, fit_dur, fit_r2
    cdef public int fit_used
    cdef public long long fit_end
    # state
    cdef long long i, exc_i, start_i, cand_i, soft_i, trial_end, settle_from, rearm_i
    cdef int state, trigger, lean_cues, started, rearm
    cdef double lean_lp, norm_lp, base, base_sum, plateau_sum, pd, cand_peak, r_ms
    cdef double cal[6]         # sums of body acc and gyro over the baseline
    cdef public long long n_acc_clip, n_gyro_sat

    def __cinit__(self, *args, **kw):
        self.ring = NULL
        self.ring_r = NULL
        self.ring_a = NULL
        self.fit_buf = NULL
        self.fit_scratch = NULL
        self.sig_buf = NULL
        self.ev_own = NULL
        self.ev_own_cap = 0

    def __init__(self, mounting, double rate, double tilt_gain, double gate_lo, double gate_hi,
                 sos, zi, double side, double lean_alpha, double norm_alpha,
                 long long baseline_n, long long confirm_n, long long plateau_n, long long back_n,
                 long long confirm_td_n, long long soft_n, long long duration_n,
                 double lift_thr, double settle_frac, double td_frac, double soft_frac,
                 double imp_thr, double acc_clip, double gyro_sat, bint end_on_touchdown,
                 double base_alpha, double pd_alpha, double r_alpha, double soft_imp_min,
                 double soft_imp_k, long long fit_back_n=0, long long fit_tmin_n=0,
                 long long fit_tmax_n=0, double fit_min_disp=0.0,
                 double fit_min_r2=0.0):
        self._args = (mounting, rate, tilt_gain, gate_lo, gate_hi, sos, zi)
        self.side = side
        self.lean_alpha = lean_alpha
        self.norm_alpha = norm_alpha
        self.baseline_n = baseline_n
        self.confirm_n = confirm_n
        self.plateau_n = plateau_n
        self.back_n = back_n
        self.confirm_td_n = confirm_td_n
        self.soft_n = soft_n
        self.duration_n = duration_n
        self.lift_thr = lift_thr
        self.settle_frac = settle_frac
        self.td_frac = td_frac
        self.soft_frac = soft_frac
        self.imp_thr = imp_thr
        self.acc_clip = acc_clip
        self.gyro_sat = gyro_sat
        self.end_on_touchdown = end_on_touchdown
        self.base_alpha = base_alpha
        self.pd_alpha = pd_alpha
        self.r_alpha = r_alpha
        self.soft_imp_min = soft_imp_min
        self.soft_imp_k = soft_imp_k
        # fit_back_n == 0: no weight-shift fit (start from the lean alone)
        self.rate = rate
        self.fit_back_n = fit_back_n
        self.fit_tmin_n = fit_tmin_n
        self.fit_tmax_n = fit_tmax_n
        self.fit_min_disp = fit_min_disp
        self.fit_min_r2 = fit_min_r2
        self.ring_n = 2 * back_n + confirm_n + plateau_n + soft_n + 8
        if self.ring_n < fit_back_n + confirm_n + plateau_n + 8:
            self.ring_n = fit_back_n + confirm_n + plateau_n + 8
        self.ring_len = self.ring_n + CHUNK
        free(self.ring)
        self.ring = <double*> calloc(self.ring_len, sizeof(double))
        free(self.ring_r)
        self.ring_r = <double*> calloc(self.ring_len, sizeof(double))
        free(self.ring_a)
        self.ring_a = <double*> calloc(self.ring_len, sizeof(double))
        free(self.fit_buf)
        self.fit_buf = <double*> calloc(self.ring_n, sizeof(double))
        free(self.fit_scratch)
        self.fit_scratch = <double*> calloc(
            shift_fit_scratch(self.ring_n, fit_tmax_n, <long long> (0.01 * rate + 0.5)),
            sizeof(double))
        free(self.sig_buf)
        self.sig_buf = <double*> calloc(8 * CHUNK, sizeof(double))
        if (self.ring == NULL or self.ring_r == NULL or self.ring_a == NULL
                or self.fit_buf == NULL or self.fit_scratch == NULL or self.sig_buf == NULL):
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        free(self.ring)
        free(self.ring_r)
        free(self.ring_a)
        free(self.fit_buf)
        free(self.fit_scratch)
        free(self.sig_buf)
        free(self.ev_own)

    def reset(self):
        cdef int j
        m, rate, g, lo, hi, sos, zi = self._args
        _load_tilt(&self.tilt, m, rate, g, lo, hi)
        _load_sos(&self.sos, sos, zi)
        self.i = 0
        self.pos = 0
        self.state = S_BASELINE
        self.trigger = 0
        self.started = 0
        self.lean_cues = 0
        self.rearm = 0
        self.exc_i = -1
        self.start_i = -1
        self.cand_i = -1
        self.soft_i = -1
        self.trial_end = -1
        self.rearm_i = 0
        self.lean_lp = 0.0
        self.norm_lp = 1.0
        self.base = 0.0
        self.base_sum = 0.0
        self.plateau_sum = 0.0
        self.pd = 0.0
        self.cand_peak = 0.0
        self.r_ms = 0.0
        for j in range(6):
            self.cal[j] = 0.0
        self.n_acc_clip = 0
        self.n_gyro_sat = 0
        self.fit_disp = 0.0
        self.fit_dur = 0.0
        self.fit_r2 = 0.0
        self.fit_used = 0
        self.fit_end = -1

    def start(self):
        """Operator trigger: single-leg stance starts at the next sample."""
        if self.state != S_DONE and self.state != S_STANCE and self.state != S_SETTLING:
            self.trigger = 1

    @property
    def state_code(self):
        return self.state

    @property
    def samples_seen(self):
        return self.i

    @property
    def baseline_ready(self):
        return self.state != S_BASELINE or self.started

    cdef inline Py_ssize_t _emit(self, Py_ssize_t ne, int kind,
                                 long long sample, double v1, double v2) noexcept nogil:
        cdef double* e
        if ne < self.ev_cap:
            e = self.evp + N_EVF * ne
            e[0] = kind
            e[1] = sample
            e[2] = v1
            e[3] = v2
            e[4] = self.i
        return ne + 1

    cdef inline long long _window_lo(self, long long lo) noexcept nogil:
        # Clamp a look-back start to what the ring still holds, never reaching
        # back into the previous stance.
        if lo < self.i - self.ring_n + 1:
            lo = self.i - self.ring_n + 1
        if lo < self.rearm_i:
            lo = self.rearm_i
        if lo < 0:
            lo = 0
        return lo

    cdef long long _retro_start(self) noexcept nogil:
        # First sample (from back_n before the excursion) whose lean reached
        # settle_frac of the stance plateau: the weight is over the stance
        # foot, i.e. the lifted foot has left the floor.
        cdef long long k, lo = self.exc_i - self.back_n
        cdef double target = self.settle_frac * self.pd
        lo = self._window_lo(lo)
        for k in range(lo, self.i + 1):
            if self.ring[k % self.ring_len] >= target:
                return k
        return self.exc_i

    cdef long long _fit_start(self, long long k_lean) noexcept nogil:
        # Refine the lift-off from the pelvis acceleration: fit the weight
        # shift (push toward the stance leg, then brake) in the window from
        # fit_back_n before the lean excursion to now; the foot is off where
        # the braking ends.  The lean estimate k_lean stays if the fit is
        # implausible: too small a shift, or a poor fit (the shift should
        # dominate the window: before it the subject stood still on both
        # feet).  The window reaches far back because a small lean in strong
        # sway can be confirmed a second or more after the foot went up.
        cdef ShiftFit f
        cdef long long k, end, lo = self.exc_i - self.fit_back_n
        cdef double T
        self.fit_used = 0
        self.fit_end = -1
        if self.fit_back_n <= 0:
            return k_lean
        lo = self._window_lo(lo)
        for k in range(lo, self.i + 1):
            self.fit_buf[k - lo] = self.ring_a[k % self.ring_len]
        # coarse grid: 10 ms onsets, 40 ms durations, sums at ~200 Hz
        shift_fit(self.fit_buf, self.i + 1 - lo, self.fit_tmin_n, self.fit_tmax_n,
                  <long long> (0.01 * self.rate + 0.5), <long long> (0.04 * self.rate + 0.5),
                  <long long> (self.rate / 200.0), self.fit_scratch, &f)
        if f.t0 < 0:
            self.fit_disp = 0.0
            self.fit_dur = 0.0
            self.fit_r2 = 0.0
            return k_lean
        T = f.tn / self.rate
        self.fit_disp = f.coef * G * T * T
        self.fit_dur = T
        self.fit_r2 = f.score / f.ss if f.ss > 0.0 else 0.0
        end = lo + f.t0 + f.tn
        self.fit_end = end
        if self.fit_disp < self.fit_min_disp or self.fit_r2 < self.fit_min_r2:
            return k_lean
        self.fit_used = 1
        return end

    cdef void _calibrate(self) noexcept nogil:
        # Quiet double stance: the mean gyro is its bias, the mean specific
        # force points up.  Restart the tilt from there so the bias neither
        # tilts the estimate nor makes it drift after the baseline.
        cdef double inv, n = <double> self.baseline_n
        cdef int j
        for j in range(3):
            self.tilt.bias[j] = self.cal[3 + j] / n
        inv = sqrt(self.cal[0] * self.cal[0] + self.cal[1] * self.cal[1] + self.cal[2] * self.cal[2])
        if inv > 0.0:
            for j in range(3):
                self.tilt.u[j] = self.cal[j] / inv
        self.lean_lp = self.side * (-self.tilt.u[1])
        self.base = self.lean_lp
        self.rearm_i = self.i  # earlier lean values were not relative to this baseline

    cdef void _signals(self, const double* row, Py_ssize_t ncol, Py_ssize_t cnt,
                       double* out) noexcept nogil:
        # Stage 1 of a chunk: the signal chain (tilt, low-pass, lean and |a|
        # filters), which no decision feeds back into within a chunk (the one
        # that does, the baseline calibration, is always a chunk's last
        # sample).  State in locals so it stays in registers.  Writes out[0:2]
        # (low-passed AP/ML), out[2] = lean low-pass (made relative by
        # _decide), the |a| and acceleration rings ahead of self.pos.
        cdef TiltState t = self.tilt
        cdef SosState f = self.sos
        cdef TiltOut o
        cdef double b[6]
        cdef double lean = self.lean_lp, nrm = self.norm_lp, side = self.side
        cdef double la = self.lean_alpha, nal = self.norm_alpha
        cdef double aclip = self.acc_clip, gsat = self.gyro_sat
        cdef double* rr = self.ring_r
        cdef double* ra = self.ring_a
        cdef double* sb = self.sig_buf
        cdef long long i0 = self.i, nclip = 0, nsat = 0
        cdef Py_ssize_t k, p = self.pos, L = self.ring_len
        cdef int j, acc_cal = self.state == S_BASELINE and not self.trigger
        # pass 1: the tilt recursion (latency-bound) and clipping counts;
        # sig_buf gets ax ay az |a| ux uy uz per sample
        for k in range(cnt):
            # clipping: any axis at full scale (max of |.| instead of early exits)
            if fmax(fmax(fabs(row[0]), fabs(row[1])), fabs(row[2])) >= aclip:
                nclip += 1
            if fmax(fmax(fabs(row[3]), fabs(row[4])), fabs(row[5])) >= gsat:
                nsat += 1
            sb[3] = tilt_update(&t, row, sb, b)
            sb[4] = t.u[0]
            sb[5] = t.u[1]
            sb[6] = t.u[2]
            if acc_cal:
                for j in range(6):
                    self.cal[j] += b[j]
            row += ncol
            sb += 8
        # pass 2: projections, low-pass, lean and |a| filters, rings
        sb = self.sig_buf
        for k in range(cnt):
            tilt_project(sb + 4, sb, &o)
            o.norm = sb[3]
            out[0] = sos_step(&f, 0, o.a_ap * G)
            out[1] = sos_step(&f, 1, o.a_ml * G)
            if i0 + k == 0:
                lean = side * o.sin_ml
                nrm = o.norm
            lean += la * (side * o.sin_ml - lean)
            nrm += nal * (o.norm - nrm)
            rr[p] = fabs(o.norm - nrm)  # high-passed |a|: impacts
            ra[p] = side * o.a_ml
            out[2] = lean
            p += 1
            if p == L:
                p = 0
            sb += 8
            out += 4
        self.tilt = t
        self.sos = f
        self.lean_lp = lean
        self.norm_lp = nrm
        self.n_acc_clip += nclip
        self.n_gyro_sat += nsat

    cdef Py_ssize_t _decide(self, double* out, Py_ssize_t ne) noexcept nogil:
        # Stage 2, one sample: the state machine on what _signals left in
        # out[2] and the rings at self.pos.
        cdef double lean = out[2]
        cdef double dev = lean - self.base
        cdef double r = self.ring_r[self.pos]
        self.ring[self.pos] = dev

        if self.trigger:
            self.trigger = 0
            if self.state == S_BASELINE:
                # no baseline yet: judge the lean against the present one
                self.base = lean
                dev = 0.0
                self.ring[self.pos] = dev
            self.start_i = self.i
            self.exc_i = self.i
            self.settle_from = self.i
            self.plateau_sum = 0.0
            self.state = S_SETTLING
            if not self.started:
                self.started = 1
                self.trial_end = self.i + self.duration_n
            ne = self._emit(ne, EV_STANCE, self.i, 0.0, 1.0)

        if self.state == S_BASELINE:
            if self.i + 1 >= self.baseline_n:
                self._calibrate()
                dev = 0.0
                self.ring[self.pos] = dev
                self.state = S_ARMED
                self.exc_i = -1
                ne = self._emit(ne, EV_BASELINE, self.i, self.base, 0.0)
        elif self.state == S_ARMED:
            if self.rearm:
                # after a touchdown the lean must come back before a new lift counts
                if dev < 0.4 * self.pd or dev < 0.5 * self.lift_thr:
                    self.rearm = 0
                    self.rearm_i = self.i
            elif dev < 0.5 * self.lift_thr and dev > -0.5 * self.lift_thr:
                # quiet double stance: follow slow drift of the lean baseline
                self.base += self.base_alpha * dev
                self.exc_i = -1
            elif dev > self.lift_thr:
                if self.exc_i < 0:
                    self.exc_i = self.i
                elif self.i - self.exc_i >= self.confirm_n:
                    self.state = S_SETTLING
                    self.start_i = -1
                    self.settle_from = self.i
                    self.plateau_sum = 0.0
            else:
                self.exc_i = -1
        elif self.state == S_SETTLING:
            self.plateau_sum += dev
            if self.start_i < 0 and dev < 0.5 * self.lift_thr:
                self.state = S_ARMED  # the lean went away: not a lift-off
                self.exc_i = -1
            elif self.i - self.settle_from + 1 >= self.plateau_n:
                self.pd = self.plateau_sum / self.plateau_n
                self.lean_cues = self.pd >= self.lift_thr
                if self.start_i < 0:
                    self.start_i = self._fit_start(self._retro_start())
                    if not self.started:
                        self.started = 1
                        self.trial_end = self.start_i + self.duration_n
                    ne = self._emit(ne, EV_STANCE, self.start_i, self.pd, 0.0)
                self.state = S_STANCE
                self.cand_i = -1
                self.soft_i = -1
        elif self.state == S_STANCE:
            if r <= self.imp_thr:
                self.r_ms += self.r_alpha * (r * r - self.r_ms)
            if self.lean_cues and self.cand_i < 0 and self.soft_i < 0:
                # the stance lean drifts: follow it slowly
                self.pd += self.pd_alpha * (dev - self.pd)
            if r > self.imp_thr:
                if self.cand_i < 0:
                    self.cand_i = self.i
                    self.cand_peak = r
                elif r > self.cand_peak and self.i - self.cand_i < self.confirm_td_n:
                    self.cand_peak = r
            if self.cand_i >= 0:
                if not self.lean_cues or dev < self.td_frac * self.pd:
                    ne = self._touchdown(ne, self.cand_i, self.cand_peak, 1.0)
                elif self.i - self.cand_i >= self.confirm_td_n:
                    ne = self._emit(ne, EV_JOLT, self.cand_i, self.cand_peak, 0.0)
                    self.cand_i = -1
            if self.state == S_STANCE and self.lean_cues:
                if dev < self.soft_frac * self.pd:
                    if self.soft_i < 0:
                        self.soft_i = self.i
                    elif self.i - self.soft_i >= self.soft_n and self.cand_i < 0:
                        ne = self._soft_touchdown(ne)
                else:
                    self.soft_i = -1

        if self.started and self.state != S_DONE and self.i >= self.trial_end:
            ne = self._emit(ne, EV_COMPLETE, self.trial_end, 0.0, 0.0)
            self.state = S_DONE
        out[2] = dev
        out[3] = self.state
        self.i += 1
        self.pos += 1
        if self.pos == self.ring_len:
            self.pos = 0
        return ne

    cdef Py_ssize_t _soft_touchdown(self, Py_ssize_t ne) noexcept nogil:
        # The weight came back without a clear impact.  Look for a small
        # transient (well above the stance |a| noise) from 1.5 back_n before
        # the lean dropped until now; if there is one, the foot landed then.
        cdef long long k, kpk = -1, lo = self.soft_i - self.back_n - self.back_n // 2
        cdef double pk = 0.0, v
        if lo < self.i - self.ring_n + 1:
            lo = self.i - self.ring_n + 1
        if lo < 0:
            lo = 0
        for k in range(lo, self.i + 1):
            v = self.ring_r[k % self.ring_len]
            if v > pk:
                pk = v
                kpk = k
        if kpk >= 0 and pk >= self.soft_imp_min and pk * pk >= self.soft_imp_k * self.soft_imp_k * self.r_ms:
            k = kpk
            while k > lo and self.ring_r[(k - 1) % self.ring_len] >= 0.5 * pk:
                k -= 1
            return self._touchdown(ne, k, pk, 2.0)
        # No transient: the foot came down while the weight came back; take the
        # last time the lean was still above half its stance level (the same
        # level that confirms an impact).
        k = self.soft_i
        while k > lo and self.ring[(k - 1) % self.ring_len] < self.td_frac * self.pd:
            k -= 1
        return self._touchdown(ne, k, 0.0, 0.0)

    cdef Py_ssize_t _touchdown(self, Py_ssize_t ne, long long at,
                               double peak, double kind) noexcept nogil:
        ne = self._emit(ne, EV_TOUCHDOWN, at, peak, kind)
        self.cand_i = -1
        self.soft_i = -1
        self.exc_i = -1
        self.rearm = 1
        if self.end_on_touchdown:
            self.trial_end = at if at > self.i else self.i
        self.state = S_ARMED
        return ne

    cdef Py_ssize_t _run(self, const double* imu, Py_ssize_t ncol, Py_ssize_t n,
                         double* out) noexcept nogil:
        cdef Py_ssize_t i = 0, j, c, ne = 0
        while i < n:
            c = n - i
            if c > CHUNK:
                c = CHUNK
            if (self.state == S_BASELINE and self.i < self.baseline_n
                    and self.i + c > self.baseline_n):
                c = self.baseline_n - self.i  # calibration: last sample of the chunk
            self._signals(imu + i * ncol, ncol, c, out + 4 * i)
            for j in range(c):
                ne = self._decide(out + 4 * (i + j), ne)
            i += c
        return ne

    def process(self, const double[:, ::1] imu, double[:, ::1] out, double[:, ::1] events):
        """Run a block; returns the number of events written (may exceed
        events.shape[0] if the buffer was too small: size it n // 8 + 8)."""
        cdef Py_ssize_t n = imu.shape[0], ne = 0
        if imu.shape[1] < 6 or out.shape[0] < n or out.shape[1] != 4 or events.shape[1] != N_EVF:
            raise ValueError("imu must be (n, >=6), out (n, 4), events (m, 5)")
        if n == 0:
            return 0
        self.ev_cap = events.shape[0]
        self.evp = &events[0, 0] if self.ev_cap > 0 else NULL
        with nogil:
            ne = self._run(&imu[0, 0], imu.shape[1], n, &out[0, 0])
        self.evp = NULL
        self.ev_cap = 0
        return ne

    def run(self, cnp.ndarray imu not None):
        """Fast path of the Python wrapper (one call per block, no memoryviews).

        imu: C-contiguous float64 (n, >=6).  Returns ``(out, code)``; if a
        row has NaN/inf in its first 6 columns nothing is processed, out is
        None and code = -(row + 1).  Otherwise out is a fresh (n, 4) array as
        in process() and code = 4 * events + 1 (acc clipped in this block)
        + 2 (gyro saturated); the events are then read with events(count).
        """
        cdef Py_ssize_t n, ncol, k, cap, ne
        cdef const double* p
        cdef cnp.ndarray out
        cdef cnp.npy_intp dims[2]
        cdef long long clip0 = self.n_acc_clip, sat0 = self.n_gyro_sat
        if (cnp.PyArray_NDIM(imu) != 2 or cnp.PyArray_TYPE(imu) != cnp.NPY_DOUBLE
                or not cnp.PyArray_IS_C_CONTIGUOUS(imu) or cnp.PyArray_DIM(imu, 1) < 6):
            raise ValueError("imu must be a C-contiguous float64 (n, >=6) array")
        n = cnp.PyArray_DIM(imu, 0)
        ncol = cnp.PyArray_DIM(imu, 1)
        p = <const double*> cnp.PyArray_DATA(imu)
        with nogil:
            k = _first_nonfinite_p(p, n, ncol, 6)
        if k >= 0:
            return None, -(k + 1)
        dims[0] = n
        dims[1] = 4
        out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_DOUBLE, 0)
        cap = n // 8 + 8  # more events than this per block cannot happen
        if cap > self.ev_own_cap:
            self.evp = <double*> realloc(self.ev_own, cap * N_EVF * sizeof(double))
            if self.evp == NULL:
                raise MemoryError()
            self.ev_own = self.evp
            self.ev_own_cap = cap
        self.evp = self.ev_own
        self.ev_cap = self.ev_own_cap
        with nogil:
            ne = self._run(p, ncol, n, <double*> cnp.PyArray_DATA(out))
        self.evp = NULL
        self.ev_cap = 0
        if ne > self.ev_own_cap:
            raise RuntimeError("event buffer overflow in the stance core")
        return out, 4 * ne + (self.n_acc_clip > clip0) + 2 * (self.n_gyro_sat > sat0)

    def events(self, Py_ssize_t count):
        """The first ``count`` event records of the last run(), (count, 5)."""
        cdef cnp.npy_intp dims[2]
        cdef cnp.ndarray ev
        cdef Py_ssize_t k
        cdef double* d
        if count < 0 or count > self.ev_own_cap:
            raise ValueError("count exceeds the event buffer")
        dims[0] = count
        dims[1] = N_EVF
        ev = cnp.PyArray_EMPTY(2, dims, cnp.NPY_DOUBLE, 0)
        d = <double*> cnp.PyArray_DATA(ev)
        for k in range(count * N_EVF):
            d[k] = self.ev_own[k]
        return ev


def shift_fit_window(const double[::1] y, long long tn_min, long long tn_max, long long t0_step,
                     long long tn_step, long long stride):
    """The weight-shift grid search on one window (for tests): returns
    (t0, tn, score, coef, ss) as StanceCore's lift-off fit computes them."""
    cdef long long n = y.shape[0]
    cdef ShiftFit f
    cdef double* buf = <double*> calloc(n + 1, sizeof(double))
    cdef double* scratch = <double*> calloc(
        shift_fit_scratch(n + 1, tn_max + 1, t0_step), sizeof(double))
    cdef long long k
    if buf == NULL or scratch == NULL:
        free(buf)
        free(scratch)
        raise MemoryError()
    if tn_max >= n:
        tn_max = n - 1
    for k in range(n):
        buf[k] = y[k]
    with nogil:
        shift_fit(buf, n, tn_min, tn_max, t0_step, tn_step, stride, scratch, &f)
    free(buf)
    free(scratch)
    return f.t0, f.tn, f.score, f.coef, f.ss
