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
