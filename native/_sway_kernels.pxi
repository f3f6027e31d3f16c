# Small nogil kernels of the balance core: tilt (gravity direction) filter,
# causal biquad cascade, first-order low-pass.  State lives in C structs owned
# by the cdef classes in sway.pyx; every kernel handles one sample so that the
# result never depends on how the stream was cut into blocks.
from libc.math cimport sqrt, fabs

cdef enum:
    MAX_SECTIONS = 4

ctypedef struct TiltState:
    double m[9]        # body = m @ sensor (mounting: rows = forward, left, up)
    double u[3]        # world "up" unit vector expressed in the body frame
    double dt_rad      # 1/rate * pi/180: deg/s -> rad per sample
    double gain        # accelerometer blend weight per sample (complementary filter)
    double gate_lo     # use the accelerometer only when |a| is within [lo, hi] g
    double gate_hi
    int ready          # 0 until the first sample initialised u
    long long n        # samples seen (start-up gain schedule)
    long long n_start  # length of the start-up (running-mean) phase, samples
    double bias[3]     # gyro bias, body frame, rad per sample (set from a quiet baseline)


ctypedef struct TiltOut:
    double a_ap        # horizontal acceleration along the heading (forward), g
    double a_ml        # horizontal acceleration to the left, g
    double a_up        # vertical acceleration (gravity removed), g
    double norm        # |a|, g
    double sin_ap      # sin(forward lean)
    double sin_ml      # sin(left lean)
    double gx          # body-frame angular rate about forward axis, deg/s
    double b[6]        # body-frame acc (g) and raw gyro (rad per sample, bias not removed)


cdef inline double tilt_update(TiltState* s, const double* row, double* a, double* b) noexcept nogil:
    # The recursive half of the tilt filter: body-frame acceleration into
    # a[0:3], body acc and raw gyro into b[0:6], s.u updated; returns |a|.
    # Split from tilt_project so that a caller can run the (latency-bound)
    # recursion over a chunk first and the per-sample projections after it.
    cdef double* m = s.m
    cdef double ax = m[0] * row[0] + m[1] * row[1] + m[2] * row[2]
    cdef double ay = m[3] * row[0] + m[4] * row[1] + m[5] * row[2]
    cdef double az = m[6] * row[0] + m[7] * row[1] + m[8] * row[2]
    cdef double wx = (m[0] * row[3] + m[1] * row[4] + m[2] * row[5]) * s.dt_rad
    cdef double wy = (m[3] * row[3] + m[4] * row[4] + m[5] * row[5]) * s.dt_rad
    cdef double wz = (m[6] * row[3] + m[7] * row[4] + m[8] * row[5]) * s.dt_rad
    cdef double na = sqrt(ax * ax + ay * ay + az * az)
    a[0] = ax
    a[1] = ay
    a[2] = az
    b[0] = ax
    b[1] = ay
    b[2] = az
    b[3] = wx
    b[4] = wy
    b[5] = wz
    wx -= s.bias[0]
    wy -= s.bias[1]
    wz -= s.bias[2]
    cdef double ux, uy, uz, k, g, inv
    if not s.ready:
        if na > 0.0:
            s.u[0] = ax / na
            s.u[1] = ay / na
            s.u[2] = az / na
        else:
            s.u[0] = 0.0
            s.u[1] = 0.0
            s.u[2] = 1.0
        s.ready = 1
        s.n = 0
    s.n += 1
    ux = s.u[0]
    uy = s.u[1]
    uz = s.u[2]
    # The world-up vector is fixed in the world, so in the body frame it
    # turns against the body rotation: du/dt = u x w (first-order step).
    ux, uy, uz = ux + (uy * wz - uz * wy), uy + (uz * wx - ux * wz), uz + (ux * wy - uy * wx)
    # Complementary correction toward the measured specific force direction
    # when |a| is close to 1 g (quiet-ish stance, no impact).
    if na > s.gate_lo and na < s.gate_hi:
        # Start-up (first second): weight 1/n, a running mean of the gravity
        # direction, so a bad first sample does not linger for several time
        # constants; then the steady complementary gain.
        g = s.gain
        if s.n <= s.n_start and s.n * g < 1.0:
            g = 1.0 / s.n
        k = g / na
        ux += k * ax - g * ux
        uy += k * ay - g * uy
        uz += k * az - g * uz
    inv = 1.0 / sqrt(ux * ux + uy * uy + uz * uz)
    ux *= inv
    uy *= inv
    uz *= inv
    s.u[0] = ux
    s.u[1] = uy
    s.u[2] = uz
    return na


cdef inline void tilt_project(const double* u, const double* a, TiltOut* o) noexcept nogil:
    # Heading frame: forward = body x projected on the horizontal plane, so
    # yaw drift never matters; left = up x forward.  Fills a_ap, a_ml, a_up,
    # sin_ap, sin_ml (not norm, gx, b).
    cdef double ux = u[0], uy = u[1], uz = u[2], ax = a[0], ay = a[1], az = a[2]
    cdef double fx, fy, fz, lx, ly, lz, inv
    fx = 1.0 - ux * ux
    fy = -ux * uy
    fz = -ux * uz
    inv = 1.0 / sqrt(fx)  # |f|^2 = 1 - ux^2 (> 0 unless the body x points straight up)
    fx *= inv
    fy *= inv
    fz *= inv
    lx = uy * fz - uz * fy
    ly = uz * fx - ux * fz
    lz = ux * fy - uy * fx
    o.a_ap = ax * fx + ay * fy + az * fz
    o.a_ml = ax * lx + ay * ly + az * lz
    o.a_up = ax * ux + ay * uy + az * uz - 1.0
    o.sin_ap = -ux
    o.sin_ml = -uy


cdef inline void tilt_step(TiltState* s, const double* row, TiltOut* o) noexcept nogil:
    cdef double a[3]
    o.norm = tilt_update(s, row, a, o.b)
    tilt_project(s.u, a, o)
    o.gx = (o.b[3] - s.bias[0]) / s.dt_rad


ctypedef struct SosState:
    int nsec
    double c[MAX_SECTIONS][6]        # b0 b1 b2 a0(=1) a1 a2 per section
    double zi[MAX_SECTIONS][2]       # steady-state state for a unit step
    double z[2][MAX_SECTIONS][2]     # two channels, transposed direct form II
    int ready[2]


cdef inline double sos_step(SosState* s, int ch, double x) noexcept nogil:
    cdef int j
    cdef double y
    cdef double* c
    cdef double* z
    if not s.ready[ch]:
        # Start as if the signal had always been x (no start-up transient),
        # like scipy's sosfilt_zi * x0.
        for j in range(s.nsec):
            s.z[ch][j][0] = s.zi[j][0] * x
            s.z[ch][j][1] = s.zi[j][1] * x
        s.ready[ch] = 1
    for j in range(s.nsec):
        c = s.c[j]
        z = s.z[ch][j]
        y = c[0] * x + z[0]
        z[0] = c[1] * x - c[4] * y + z[1]
        z[1] = c[2] * x - c[5] * y
        x = y
    return x


cdef inline double lp1_step(double* state, double alpha, double x) noexcept nogil:
    state[0] += alpha * (x - state[0])
    return state[0]


# Weight-shift fit: the pelvis moves over the stance foot in a smooth
# point-to-point movement; its horizontal acceleration toward the stance leg
# is biphasic (push, then brake), modelled by the minimum-jerk profile
# a(t) = D / T^2 * g((t - t0) / T), g(x) = 60 x (1 - x) (1 - 2 x) on [0, 1].
# The weight is over the stance foot (the other foot off) where the braking
# ends: t0 + T.  Least squares with a free offset, onset t0, duration T and
# amplitude D; the amplitude must push toward the stance leg (D > 0).
ctypedef struct ShiftFit:
    long long t0        # onset, samples from the start of the window
    long long tn        # duration, samples
    double score        # explained sum of squares (num^2 / den)
    double coef         # amplitude of g (input units); D = coef * T^2
    double ss           # total sum of squares about the window mean


cdef inline double _mj_acc(double x) noexcept nogil:
    return 60.0 * x * (1.0 - x) * (1.0 - 2.0 * x)


# The grid search is the costliest thing the core does (once per lift-off,
# ~0.5 M multiply-adds at 200 Hz), so its inner loop is C: for one duration
# the template g is the same for every onset, and the correlations of all
# onsets are accumulated side by side (SWAY_FIT_LANES = 32 independent sums, each
# in the original order k = 1, 1 + stride, ..., so the result is bit-identical
# to a plain loop).  The onsets t0 = base + a*s are strided by s; the window is
# split into s phase arrays so that neighbouring onsets are neighbours in
# memory.  Compiled twice on x86-64 GCC (AVX2 / baseline, picked at load time);
# no FMA is enabled, so both clones give the same bits.
cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define SWAY_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define SWAY_CLONES
    #endif
    #define SWAY_FIT_LANES 32
    /* num[a] = sum_j g[j] * ph[(t % s) * plen + a + t / s], t = j * stride,
       for a = 0 .. na-1 (rounded up to whole lane groups: num needs room). */
    SWAY_CLONES static void sway_fit_corr(const double *g, long long m, const double *ph,
                                          long long plen, long long s, long long stride,
                                          long long na, double *num)
    {
        long long a0, j, l, r, d;
        for (a0 = 0; a0 < na; a0 += SWAY_FIT_LANES) {
            double acc[SWAY_FIT_LANES];
            for (l = 0; l < SWAY_FIT_LANES; l++) acc[l] = 0.0;
            r = 0;
            d = 0;
            for (j = 0; j < m; j++) {
                const double *p = ph + r * plen + a0 + d;
                const double gj = g[j];
                for (l = 0; l < SWAY_FIT_LANES; l++) acc[l] += gj * p[l];
                r += stride;
                while (r >= s) { r -= s; d++; }
            }
            for (l = 0; l < SWAY_FIT_LANES; l++) num[a0 + l] = acc[l];
        }
    }
    """
    enum: SWAY_FIT_LANES
    void sway_fit_corr(const double* g, long long m, const double* ph, long long plen,
                       long long s, long long stride, long long na, double* num) noexcept nogil


cdef inline long long shift_fit_scratch(long long n, long long tn_max, long long t0_step) noexcept nogil:
    """Doubles of scratch shift_fit needs for a window of up to n samples."""
    if t0_step < 1:
        t0_step = 1
    return 2 * n + tn_max + (t0_step + 2) * (SWAY_FIT_LANES + 2) + 64


cdef inline void _shift_fit_pass(const double* yc, long long n, double* scratch,
                                 long long t0_lo, long long t0_hi, long long t0_step,
                                 long long tn_lo, long long tn_hi, long long tn_step,
                                 long long stride, ShiftFit* best) noexcept nogil:
    # Grid search over (t0, tn) on yc = y - mean; sums over the template
    # support every `stride` samples (coarse passes at high rates), exact
    # when stride == 1.  Cells are scored in the order tn, then t0.
    cdef long long t0, tn, k, m, a, na, lim, base, plen, r, q, idx, s = t0_step
    cdef double inv, x, gv, num, sg, sgg, den, sc, nn
    cdef double* ph
    cdef double* g
    cdef double* nums
    if tn_lo < 2:
        tn_lo = 2
    if t0_lo < 0:
        t0_lo = 0
    if tn_lo > tn_hi or t0_lo > t0_hi or t0_lo + tn_lo > n - 1:
        return
    base = t0_lo + 1
    plen = (n - base + s - 1) // s + SWAY_FIT_LANES + 1
    ph = scratch
    for r in range(s):
        for q in range(plen):
            idx = base + r + q * s
            ph[r * plen + q] = yc[idx] if idx < n else 0.0
    g = ph + s * plen
    nums = g + tn_hi + 1
    nn = <double> n / <double> stride
    tn = tn_lo
    while tn <= tn_hi:
        lim = n - 1 - tn
        if lim > t0_hi:
            lim = t0_hi
        if lim < t0_lo:
            break  # longer templates fit even fewer onsets
        na = (lim - t0_lo) // s + 1
        inv = 1.0 / <double> tn
        m = 0
        sg = 0.0
        sgg = 0.0
        k = 1
        while k < tn:
            x = k * inv
            gv = _mj_acc(x)
            g[m] = gv
            sg += gv
            sgg += gv * gv
            m += 1
            k += stride
        den = sgg - sg * sg / nn
        sway_fit_corr(g, m, ph, plen, s, stride, na, nums)
        for a in range(na):
            num = nums[a]
            if num > 0.0 and den > 0.0:
                sc = num * num / den * <double> stride
                if sc > best.score:
                    best.score = sc
                    best.t0 = t0_lo + a * s
                    best.tn = tn
                    best.coef = num / den
        tn += tn_step


cdef inline void shift_fit(double* y, long long n, long long tn_min, long long tn_max,
                           long long t0_step, long long tn_step, long long stride,
                           double* scratch, ShiftFit* best) noexcept nogil:
    """Best minimum-jerk acceleration template in y[0:n] (coarse-to-fine grid).

    y is overwritten with y - mean(y); scratch holds
    shift_fit_scratch(n, tn_max, t0_step) doubles."""
    cdef long long k, s0, s1, st
    cdef double ym = 0.0, d
    best.score = 0.0
    best.t0 = -1
    best.tn = 0
    best.coef = 0.0
    best.ss = 0.0
    if n < 4:
        return
    for k in range(n):
        ym += y[k]
    ym /= <double> n
    for k in range(n):
        d = y[k] - ym
        y[k] = d
        best.ss += d * d
    if t0_step < 1:
        t0_step = 1
    if tn_step < 1:
        tn_step = 1
    if stride < 1:
        stride = 1
    _shift_fit_pass(y, n, scratch, 0, n, t0_step, tn_min, tn_max, tn_step, stride, best)
    # refine around the best cell, shrinking the grid by 4 per pass
    while best.t0 >= 0 and (t0_step > 1 or tn_step > 1 or stride > 1):
        s0 = t0_step
        s1 = tn_step
        t0_step = (t0_step + 3) // 4
        tn_step = (tn_step + 3) // 4
        st = (stride + 3) // 4
        stride = st if st < t0_step else t0_step
        best.score = 0.0  # rescore at this pass's resolution
        k = best.t0
        d = <double> best.tn
        _shift_fit_pass(y, n, scratch, k - s0, k + s0, t0_step,
                        <long long> d - s1 if <long long> d - s1 > tn_min else tn_min,
                        <long long> d + s1 if <long long> d + s1 < tn_max else tn_max,
                        tn_step, stride, best)
