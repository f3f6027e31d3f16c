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


cdef inline void tilt_step(TiltState* s, const double* row, TiltOut* o) noexcept nogil:
    cdef double* m = s.m
    cdef double ax = m[0] * row[0] + m[1] * row[1] + m[2] * row[2]
    cdef double ay = m[3] * row[0] + m[4] * row[1] + m[5] * row[2]
    cdef double az = m[6] * row[0] + m[7] * row[1] + m[8] * row[2]
    cdef double wx = (m[0] * row[3] + m[1] * row[4] + m[2] * row[5]) * s.dt_rad
    cdef double wy = (m[3] * row[3] + m[4] * row[4] + m[5] * row[5]) * s.dt_rad
    cdef double wz = (m[6] * row[3] + m[7] * row[4] + m[8] * row[5]) * s.dt_rad
    cdef double na = sqrt(ax * ax + ay * ay + az * az)
    o.b[0] = ax
    o.b[1] = ay
    o.b[2] = az
    o.b[3] = wx
    o.b[4] = wy
    o.b[5] = wz
    wx -= s.bias[0]
    wy -= s.bias[1]
    wz -= s.bias[2]
    cdef double ux, uy, uz, k, g, inv, fx, fy, fz, lx, ly, lz
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
    # Heading frame: forward = body x projected on the horizontal plane, so
    # yaw drift never matters; left = up x forward.
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
    o.norm = na
    o.sin_ap = -ux
    o.sin_ml = -uy
    o.gx = wx / s.dt_rad


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


cdef inline void _shift_fit_pass(const double* y, long long n, double ym,
                                 long long t0_lo, long long t0_hi, long long t0_step,
                                 long long tn_lo, long long tn_hi, long long tn_step,
                                 long long stride, ShiftFit* best) noexcept nogil:
    # Grid search over (t0, tn); sums over the template support every
    # `stride` samples (coarse passes at high rates), exact when stride == 1.
    cdef long long t0, tn, k
    cdef double inv, x, g, num, sg, sgg, den, sc, nn
    if tn_lo < 2:
        tn_lo = 2
    if t0_lo < 0:
        t0_lo = 0
    tn = tn_lo
    while tn <= tn_hi:
        inv = 1.0 / <double> tn
        t0 = t0_lo
        while t0 <= t0_hi and t0 + tn <= n - 1:
            num = 0.0
            sg = 0.0
            sgg = 0.0
            k = 1
            while k < tn:
                x = k * inv
                g = _mj_acc(x)
                num += g * (y[t0 + k] - ym)
                sg += g
                sgg += g * g
                k += stride
            if num > 0.0:
                nn = <double> n / <double> stride
                den = sgg - sg * sg / nn
                if den > 0.0:
                    sc = num * num / den * <double> stride
                    if sc > best.score:
                        best.score = sc
                        best.t0 = t0
                        best.tn = tn
                        best.coef = num / den
            t0 += t0_step
        tn += tn_step


cdef inline void shift_fit(const double* y, long long n, long long tn_min, long long tn_max,
                           long long t0_step, long long tn_step, long long stride,
                           ShiftFit* best) noexcept nogil:
    """Best minimum-jerk acceleration template in y[0:n] (coarse-to-fine grid)."""
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
        best.ss += d * d
    if t0_step < 1:
        t0_step = 1
    if tn_step < 1:
        tn_step = 1
    if stride < 1:
        stride = 1
    _shift_fit_pass(y, n, ym, 0, n, t0_step, tn_min, tn_max, tn_step, stride, best)
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
        _shift_fit_pass(y, n, ym, k - s0, k + s0, t0_step,
                        <long long> d - s1 if <long long> d - s1 > tn_min else tn_min,
                        <long long> d + s1 if <long long> d + s1 < tn_max else tn_max,
                        tn_step, stride, best)
