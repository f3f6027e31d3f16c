# Filter-chain kernels for the EMG core (included by native/emg.pyx).
#
# Layout: samples are (n, channels) C-contiguous, so one time step of every
# channel is contiguous.  The kernels loop over channels innermost, which lets
# the compiler vectorise a biquad across channels (channels are independent;
# within one channel every sample depends on the previous one).

from libc.math cimport sqrt, fabs


cdef inline void sos_step(const double* sos, double* zs, Py_ssize_t ns,
                          Py_ssize_t nc, double* v) noexcept nogil:
    """Filter one time step ``v[0:nc]`` in place through ``ns`` biquads.

    Transposed direct form II, the same recurrence as scipy.signal.sosfilt,
    with ``a0 == 1`` (the Python side normalises).  ``zs`` is laid out
    ``[section][2][channel]``.
    """
    cdef Py_ssize_t s, c
    cdef double b0, b1, b2, a1, a2, x, y
    cdef double* z0
    cdef double* z1
    for s in range(ns):
        b0 = sos[6 * s]
        b1 = sos[6 * s + 1]
        b2 = sos[6 * s + 2]
        a1 = sos[6 * s + 4]
        a2 = sos[6 * s + 5]
        z0 = zs + 2 * s * nc
        z1 = z0 + nc
        for c in range(nc):
            x = v[c]
            y = b0 * x + z0[c]
            z0[c] = b1 * x - a1 * y + z1[c]
            z1[c] = b2 * x - a2 * y
            v[c] = y


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
    cdef Py_ssize_t nc, ns, ne, rms_w, rms_pos
    cdef int env_mode, tkeo, prime, primed
    cdef double* sos
    cdef double* zi
    cdef double* zs
    cdef double* esos
    cdef double* ezs
    cdef double* v
    cdef double* p1
    cdef double* p2
    cdef double* ring
    cdef double* sumsq
    cdef public object sos_array
    cdef public object env_sos_array

    def __cinit__(self):
        self.sos = NULL; self.zi = NULL; self.zs = NULL; self.esos = NULL
        self.ezs = NULL; self.v = NULL; self.p1 = NULL; self.p2 = NULL
        self.ring = NULL; self.sumsq = NULL

    def __init__(self, Py_ssize_t channels, const double[:, ::1] sos,
                 const double[:, ::1] zi, int prime, int tkeo, int env_mode,
                 const double[:, ::1] env_sos, Py_ssize_t rms_window):
        cdef Py_ssize_t i, j
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
        self.v = <double*>calloc(self.nc, sizeof(double))
        self.p1 = <double*>calloc(self.nc, sizeof(double))
        self.p2 = <double*>calloc(self.nc, sizeof(double))
        self.ring = <double*>calloc(self.rms_w * self.nc + 1, sizeof(double))
        self.sumsq = <double*>calloc(self.nc, sizeof(double))
        if (self.sos == NULL or self.zi == NULL or self.zs == NULL or self.esos == NULL
                or self.ezs == NULL or self.v == NULL or self.p1 == NULL or self.p2 == NULL
                or self.ring == NULL or self.sumsq == NULL):
            raise MemoryError()
        for i in range(self.ns):
            for j in range(6):
                self.sos[6 * i + j] = sos[i, j]
            self.zi[2 * i] = zi[i, 0]
            self.zi[2 * i + 1] = zi[i, 1]
        for i in range(self.ne):
            for j in range(6):
                self.esos[6 * i + j] = env_sos[i, j]
        self.reset()

    def __dealloc__(self):
        free(self.sos); free(self.zi); free(self.zs); free(self.esos); free(self.ezs)
        free(self.v); free(self.p1); free(self.p2); free(self.ring); free(self.sumsq)

    cpdef reset(self):
        """Forget all history (filters re-prime on the next sample)."""
        memset(self.zs, 0, (2 * self.ns * self.nc + 1) * sizeof(double))
        memset(self.ezs, 0, (2 * self.ne * self.nc + 1) * sizeof(double))
        memset(self.p1, 0, self.nc * sizeof(double))
        memset(self.p2, 0, self.nc * sizeof(double))
        memset(self.ring, 0, (self.rms_w * self.nc + 1) * sizeof(double))
        memset(self.sumsq, 0, self.nc * sizeof(double))
        self.rms_pos = 0
        self.primed = 0

    cdef void run(self, const double* x, Py_ssize_t n, double* env,
                  double* filt) noexcept nogil:
        """Raw ``x`` (n, nc) -> envelope ``env`` (n, nc); ``filt`` may be NULL."""
        cdef Py_ssize_t i, c, k, nc = self.nc
        cdef double* v = self.v
        cdef double t, sq, acc
        cdef double* slot
        for i in range(n):
            for c in range(nc):
                v[c] = x[i * nc + c]
            if not self.primed:
                if self.prime:
                    sos_prime(self.zi, self.zs, self.ns, nc, v)
                self.primed = 1
            sos_step(self.sos, self.zs, self.ns, nc, v)
            if filt != NULL:
                for c in range(nc):
                    filt[i * nc + c] = v[c]
            if self.tkeo:
                # Causal Teager-Kaiser energy, one sample late:
                # psi[n-1] = x[n-1]^2 - x[n] x[n-2]
                for c in range(nc):
                    t = self.p1[c] * self.p1[c] - v[c] * self.p2[c]
                    self.p2[c] = self.p1[c]
                    self.p1[c] = v[c]
                    v[c] = fabs(t)
            else:
                for c in range(nc):
                    v[c] = fabs(v[c])
            if self.env_mode == ENV_LOWPASS:
                sos_step(self.esos, self.ezs, self.ne, nc, v)
            elif self.env_mode == ENV_RMS:
                slot = self.ring + self.rms_pos * nc
                for c in range(nc):
                    sq = v[c] * v[c]
                    self.sumsq[c] += sq - slot[c]
                    slot[c] = sq
                self.rms_pos += 1
                if self.rms_pos == self.rms_w:
                    # Re-sum exactly once per window so rounding cannot drift
                    # (depends only on the sample index: split-invariant).
                    self.rms_pos = 0
                    for c in range(nc):
                        acc = 0.0
                        for k in range(self.rms_w):
                            acc += self.ring[k * nc + c]
                        self.sumsq[c] = acc
                for c in range(nc):
                    sq = self.sumsq[c]
                    v[c] = sqrt(sq / self.rms_w) if sq > 0.0 else 0.0
            for c in range(nc):
                env[i * nc + c] = v[c]

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
