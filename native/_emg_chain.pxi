# Filter-chain state for the EMG core (included by native/emg.pyx).
#
# The per-sample loops live in native/emg_kernels.h (plain C so they can be
# vectorised across channels and compiled for AVX2 with a baseline fallback);
# this class owns the state arrays and the priming logic.

from libc.math cimport sqrt, fabs, isfinite

cdef extern from "emg_kernels.h" nogil:
    ctypedef struct emg_chain_t:
        Py_ssize_t nc, ns, ne, rms_w, rms_pos
        int env_mode, tkeo
        const double* sos
        double* zs
        const double* esos
        double* ezs
        double* zs_alt
        double* ezs_alt
        int v8, v4s
        double gpre, gout
        const double* cvec
        unsigned sym, unit_pos, unit_neg, esym, eunit_pos, eunit_neg
        double* p1
        double* p2
        double* ring
        double* sumsq
    int emg_chain_run(emg_chain_t* ch, const double* x, Py_ssize_t n,
                      double* env, double* filt, int check)
    void emg_chain_undo(emg_chain_t* ch)
    int emg_cpu_v8()
    int emg_cpu_v3()
    Py_ssize_t emg_find_nonfinite(const double* x, Py_ssize_t n)


cdef inline void sos_prime(const double* zi, double* zs, Py_ssize_t ns,
                           Py_ssize_t nc, const double* v) noexcept nogil:
    """Set the state to the steady state for a constant input ``v``.

    ``zi`` is scipy.signal.sosfilt_zi (unit step), shape (ns, 2).  Priming
    with the first sample is causal and stops the DC offset of raw ADC data
    from ringing through the high-pass as a fake burst.
    """
    cdef Py_ssize_t s, c
    for s in range(ns):
        for c in range(nc):
            zs[2 * s * nc + c] = zi[2 * s] * v[c]
            zs[(2 * s + 1) * nc + c] = zi[2 * s + 1] * v[c]


cdef double _take_gains(double* sos, Py_ssize_t ns, double* zi_out,
                        const double* zi_in) noexcept:
    """Divide each section's b by its b0 and return the product of the b0s
    taken out.  A section keeps its gain unless its numerator so divided
    stays within 4 (|b1|, |b2| <= 4 |b0|: zeros on or near the unit circle,
    as in every Butterworth section and notch designed here) and the
    product stays a normal double.  Then the signal between sections keeps
    the scale of the input (a section with b0 = 1 starts its impulse
    response with 1).  Without that bound it was sosfilt's divided by the
    product: b = (1e-160, 1, 0) twice gave 1e320 x, inf on a unit input;
    a subnormal product is a gain with a few bits.  With
    ``zi_out``: the steady-state vectors ``zi_in`` (scipy.signal.sosfilt_zi,
    (ns, 2)) for the new sections: each divided by the gain taken out up to
    and including its section.  A numerator symmetric to within 4 ulp
    (b2 / b0 = 1 up to rounding: the mains notches) is made exactly
    symmetric, and b1 within 4 ulp of +-2 then exactly +-2 (the forms
    emg_chain_v8 computes with fewer multiplies)."""
    cdef Py_ssize_t i
    cdef double g = 1.0, b0, b1, b2, eps = 4 * 2.220446049250313e-16
    for i in range(ns):
        b0 = sos[6 * i]
        if b0 != 0.0:
            b1 = sos[6 * i + 1] / b0
            b2 = sos[6 * i + 2] / b0
            if (fabs(b1) <= 4.0 and fabs(b2) <= 4.0 and isfinite(g * b0)
                    and fabs(g * b0) >= 2.2250738585072014e-308):
                if fabs(b2 - 1.0) <= eps:
                    b2 = 1.0
                    if fabs(b1 - 2.0) <= 2 * eps:
                        b1 = 2.0
                    elif fabs(b1 + 2.0) <= 2 * eps:
                        b1 = -2.0
                sos[6 * i] = 1.0
                sos[6 * i + 1] = b1
                sos[6 * i + 2] = b2
                g *= b0
        if zi_out != NULL:
            zi_out[2 * i] = zi_in[2 * i] / g
            zi_out[2 * i + 1] = zi_in[2 * i + 1] / g
    return g


cdef unsigned _shape_mask(const double* sos, Py_ssize_t ns, double b1):
    """Bit i set: section i has b = (1, b1, 1) (b1 = 0: any b1)."""
    cdef unsigned m = 0
    cdef Py_ssize_t i
    for i in range(min(ns, 32)):
        if sos[6 * i] == 1.0 and sos[6 * i + 2] == 1.0 and (b1 == 0.0 or sos[6 * i + 1] == b1):
            m |= 1u << i
    return m


# Envelope modes
cdef enum:
    ENV_NONE = 0
    ENV_LOWPASS = 1
    ENV_RMS = 2


cdef class _Chain:
    """Band-pass + notch cascade, rectifier (|x| or |TKEO|), envelope.

    State lives here; ``run`` processes raw samples into the envelope (and
    optionally the filtered signal) for any block length, so results do not
    depend on how a stream is split.
    """
    cdef Py_ssize_t nc, ns, ne, rms_w
    cdef int env_mode, tkeo, prime, primed
    # run_checked can take a block back (no TKEO/RMS history to restore)
    cdef readonly bint undoable
    cdef double* sos
    cdef double* zi
    cdef double* zs
    cdef double* zs_b
    cdef double* esos
    cdef double* ezs
    cdef double* ezs_b
    cdef double* v
    cdef double* p1
    cdef double* p2
    cdef double* ring
    cdef double* sumsq
    cdef double* cvec
    cdef void* cvec_mem
    cdef emg_chain_t k

    def __cinit__(self):
        self.sos = NULL; self.zi = NULL; self.zs = NULL; self.esos = NULL
        self.ezs = NULL; self.zs_b = NULL; self.ezs_b = NULL; self.v = NULL; self.p1 = NULL; self.p2 = NULL
        self.ring = NULL; self.sumsq = NULL; self.cvec = NULL; self.cvec_mem = NULL

    def __init__(self, Py_ssize_t channels, const double[:, ::1] sos,
                 const double[:, ::1] zi, int prime, int tkeo, int env_mode,
                 const double[:, ::1] env_sos, Py_ssize_t rms_window):
        cdef Py_ssize_t i, j, ln
        if channels < 1 or sos.shape[1] != 6 or zi.shape[0] != sos.shape[0] or zi.shape[1] != 2:
            raise ValueError("bad chain geometry")
        if env_mode == ENV_LOWPASS and env_sos.shape[1] != 6:
            raise ValueError("bad envelope sos")
        if env_mode == ENV_RMS and rms_window < 1:
            raise ValueError("bad rms window")
        self.nc = channels
        self.ns = sos.shape[0]
        self.ne = env_sos.shape[0] if env_mode == ENV_LOWPASS else 0
        self.env_mode = env_mode
        self.tkeo = tkeo
        self.prime = prime
        self.rms_w = rms_window if env_mode == ENV_RMS else 0
        self.sos = <double*>calloc(6 * self.ns + 1, sizeof(double))
        self.zi = <double*>calloc(2 * self.ns + 1, sizeof(double))
        self.zs = <double*>calloc(2 * self.ns * self.nc + 1, sizeof(double))
        self.esos = <double*>calloc(6 * self.ne + 1, sizeof(double))
        self.ezs = <double*>calloc(2 * self.ne * self.nc + 1, sizeof(double))
        self.zs_b = <double*>calloc(2 * self.ns * self.nc + 1, sizeof(double))
        self.ezs_b = <double*>calloc(2 * self.ne * self.nc + 1, sizeof(double))
        self.v = <double*>calloc(self.nc, sizeof(double))
        self.p1 = <double*>calloc(self.nc, sizeof(double))
        self.p2 = <double*>calloc(self.nc, sizeof(double))
        self.ring = <double*>calloc(self.rms_w * self.nc + 1, sizeof(double))
        self.sumsq = <double*>calloc(self.nc, sizeof(double))
        if (self.sos == NULL or self.zi == NULL or self.zs == NULL or self.esos == NULL
                or self.ezs == NULL or self.zs_b == NULL or self.ezs_b == NULL or self.v == NULL or self.p1 == NULL or self.p2 == NULL
                or self.ring == NULL or self.sumsq == NULL):
            raise MemoryError()
        for i in range(self.ns):
            for j in range(6):
                self.sos[6 * i + j] = sos[i, j]
        for i in range(self.ne):
            for j in range(6):
                self.esos[6 * i + j] = env_sos[i, j]
        # The gains come out of the sections (b0 = 1; see _take_gains for
        # the sections that keep theirs) and are applied once, to the output:
        # a section with b0 = b2 = 1 needs no multiply for either (2 fewer
        # operations on the FMA pipes per section and sample).  The same
        # filter to rounding (<= 1e-10 of sosfilt, tested); state and
        # priming scale with the gain taken out up to each section.
        gpre = _take_gains(self.sos, self.ns, self.zi, &zi[0, 0] if self.ns else NULL)
        genv = _take_gains(self.esos, self.ne, NULL, NULL)
        self.k.gpre = gpre
        # TKEO: the filtered signal (x gpre) is squared, so the gain goes in
        # before it; |x| and the RMS commute with a positive factor
        if tkeo:
            self.k.gout = genv if env_mode == ENV_LOWPASS else 1.0
        else:
            self.k.gout = fabs(gpre) * (genv if env_mode == ENV_LOWPASS else 1.0)
        self.k.nc = self.nc
        self.k.ns = self.ns
        self.k.ne = self.ne
        self.k.rms_w = self.rms_w
        self.k.env_mode = env_mode
        self.k.tkeo = tkeo
        self.k.sos = self.sos
        self.k.zs = self.zs
        self.k.zs_alt = self.zs_b
        self.k.ezs_alt = self.ezs_b
        self.undoable = not tkeo and env_mode != ENV_RMS
        self.k.v8 = emg_cpu_v8() if self.nc == 8 else 0
        self._pick_forms()
        # the 8-wide path's coefficient vectors, made once (each call built
        # them on its stack: 5 broadcasts and 5 64-byte stores per section)
        self.cvec_mem = malloc((self.ns + self.ne) * 5 * 64 + 64)
        if self.cvec_mem == NULL:
            raise MemoryError()
        self.cvec = <double*>((<size_t>self.cvec_mem + 63) & ~(<size_t>63))
        for i in range(self.ns + self.ne):
            for j in range(5):
                for ln in range(8):
                    self.cvec[(i * 5 + j) * 8 + ln] = (
                        self.sos[6 * i + (j if j < 3 else j + 1)] if i < self.ns
                        else self.esos[6 * (i - self.ns) + (j if j < 3 else j + 1)])
        self.k.cvec = self.cvec
        self.k.esos = self.esos
        self.k.ezs = self.ezs
        self.k.p1 = self.p1
        self.k.p2 = self.p2
        self.k.ring = self.ring
        self.k.sumsq = self.sumsq
        self.reset()

    cdef void _pick_forms(self):
        """Which sections emg_chain_v8 computes in which form.  Per time
        step (8 channels, one 512-bit vector): a general section takes 5
        operations on the FMA pipes, one with b0 = b2 = 1 3 (and 2 adds),
        one with b = (1, +-2, 1) 3 + 2 or 2 + 4 (the add form); plus the NaN
        check (2 adds) and the output gain (1).  Zen 4 runs one 512-bit
        operation per cycle on each kind of pipe, so the add form goes to
        unit sections while it lowers the larger count."""
        cdef unsigned sym = _shape_mask(self.sos, self.ns, 0.0)
        cdef unsigned esym = _shape_mask(self.esos, self.ne, 0.0)
        cdef unsigned upos = _shape_mask(self.sos, self.ns, 2.0)
        cdef unsigned uneg = _shape_mask(self.sos, self.ns, -2.0)
        cdef unsigned eupos = _shape_mask(self.esos, self.ne, 2.0)
        cdef unsigned euneg = _shape_mask(self.esos, self.ne, -2.0)
        cdef unsigned units = upos | uneg, eunits = eupos | euneg
        cdef unsigned pick = 0, epick = 0
        cdef Py_ssize_t i
        cdef int fma = 1, add = 2, nsym = 0
        for i in range(min(self.ns, 32)):
            nsym += (sym >> i) & 1
        for i in range(min(self.ne, 32)):
            nsym += (esym >> i) & 1
        fma += 3 * nsym + 5 * (self.ns + self.ne - nsym)
        add += 2 * nsym
        for i in range(min(self.ns + self.ne, 64)):
            if max(fma - 1, add + 2) >= max(fma, add):
                break
            if i < self.ns and i < 32 and (units >> i) & 1:
                pick |= 1u << i
            elif i >= self.ns and i - self.ns < 32 and (eunits >> (i - self.ns)) & 1:
                epick |= 1u << (i - self.ns)
            else:
                continue
            fma -= 1
            add += 2
        self.k.sym = sym
        self.k.esym = esym
        self.k.unit_pos = pick & upos
        self.k.unit_neg = pick & uneg
        self.k.eunit_pos = epick & eupos
        self.k.eunit_neg = epick & euneg
        self._sym4(True)

    def __dealloc__(self):
        free(self.sos); free(self.zi); free(self.zs); free(self.esos); free(self.ezs)
        free(self.zs_b); free(self.ezs_b)
        free(self.v); free(self.p1); free(self.p2); free(self.ring); free(self.sumsq); free(self.cvec_mem)

    cpdef reset(self):
        """Forget all history (filters re-prime on the next sample)."""
        memset(self.k.zs, 0, (2 * self.ns * self.nc + 1) * sizeof(double))
        memset(self.k.ezs, 0, (2 * self.ne * self.nc + 1) * sizeof(double))
        memset(self.p1, 0, self.nc * sizeof(double))
        memset(self.p2, 0, self.nc * sizeof(double))
        memset(self.ring, 0, (self.rms_w * self.nc + 1) * sizeof(double))
        memset(self.sumsq, 0, self.nc * sizeof(double))
        self.k.rms_pos = 0
        self.primed = 0

    cdef void run(self, const double* x, Py_ssize_t n, double* env,
                  double* filt) noexcept nogil:
        """Raw ``x`` (n, nc) -> envelope ``env`` (n, nc); ``filt`` may be NULL."""
        if n <= 0:
            return
        if not self.primed:
            if self.prime:
                sos_prime(self.zi, self.k.zs, self.ns, self.nc, x)
            self.primed = 1
        emg_chain_run(&self.k, x, n, env, filt, 0)

    def _wide(self, bint on):
        """Tests: allow (or not) the 8-channel AVX-512 path; returns whether
        it is in use."""
        self.k.v8 = emg_cpu_v8() if on and self.nc == 8 else 0
        return bool(self.k.v8)

    def _sym4(self, bint on):
        """Tests: allow (or not) the 4-wide AVX2 path for chains whose
        sections all have b0 = b2 = 1; returns whether it is in use."""
        cdef bint all_sym = (self.ns < 32 and self.ne < 32
                             and self.k.sym == (1u << self.ns) - 1
                             and self.k.esym == (1u << self.ne) - 1)
        self.k.v4s = emg_cpu_v3() if on and all_sym else 0
        return bool(self.k.v4s)

    cdef Py_ssize_t state_size(self) noexcept nogil:
        """Doubles that ``save`` writes (undoable chains)."""
        return 2 * (self.ns + self.ne) * self.nc + 1

    cdef void save(self, double* buf) noexcept nogil:
        memcpy(buf, self.k.zs, 2 * self.ns * self.nc * sizeof(double))
        memcpy(buf + 2 * self.ns * self.nc, self.k.ezs, 2 * self.ne * self.nc * sizeof(double))
        buf[2 * (self.ns + self.ne) * self.nc] = self.primed

    cdef void restore(self, const double* buf) noexcept nogil:
        memcpy(self.k.zs, buf, 2 * self.ns * self.nc * sizeof(double))
        memcpy(self.k.ezs, buf + 2 * self.ns * self.nc, 2 * self.ne * self.nc * sizeof(double))
        self.primed = <int>buf[2 * (self.ns + self.ne) * self.nc]

    cdef int run_checked(self, const double* x, Py_ssize_t n, double* env) noexcept nogil:
        """Like ``run`` (n >= 1, no filtered output) if every value of ``x``
        is finite and return 1; else leave the state as it was and return 0.
        Only when ``undoable``."""
        cdef int was_primed = self.primed
        if not was_primed:
            if self.prime:
                sos_prime(self.zi, self.k.zs, self.ns, self.nc, x)
            self.primed = 1
        if emg_chain_run(&self.k, x, n, env, NULL, 1):
            return 1
        emg_chain_undo(&self.k)
        if not was_primed:
            memset(self.k.zs, 0, (2 * self.ns * self.nc + 1) * sizeof(double))
            self.primed = 0
        return 0

    def process_into(self, const double[:, ::1] x, double[:, ::1] env,
                     double[:, ::1] filt=None):
        """Run ``x`` (n, channels) into preallocated ``env`` (and ``filt``)."""
        cdef Py_ssize_t n = x.shape[0]
        cdef double* fp = NULL
        if x.shape[1] != self.nc or env.shape[0] != n or env.shape[1] != self.nc:
            raise ValueError("shape mismatch")
        if filt is not None:
            if filt.shape[0] != n or filt.shape[1] != self.nc:
                raise ValueError("shape mismatch")
            if n:
                fp = &filt[0, 0]
        if n == 0:
            return
        with nogil:
            self.run(&x[0, 0], n, &env[0, 0], fp)
