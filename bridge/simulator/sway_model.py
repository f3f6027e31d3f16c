"""IMU sway simulator with ground truth for standing balance tests.

Model (all deterministic given ``seed``):

* Sway: two independent inverted pendulums (AP and ML) about the ankle with
  delayed PD feedback plus low-pass filtered torque noise
  (theta'' = g/h theta - Kp theta(t - tau) - Kd theta'(t - tau) + noise),
  tau = 120 ms, integrated at >= 1 kHz.  Gains and noise differ for double
  vs single-leg stance (single: weaker ML control, more and faster sway;
  ~0.4 cm RMS double, ~1 cm RMS single at pelvis height) and eyes closed
  (noise x 1.6).  A small independent trunk wobble and heading drift ride on top.
* Lift-off: the pelvis shifts 8-12 cm toward the stance leg and the trunk
  leans 3-6 deg toward it over ``shift_s`` (minimum-jerk profile); the foot
  leaves the floor when the shift ends (truth ``lift_offs``).
* Touchdown (scripted): 0.6 s of loss of balance toward the swing side, then
  an impact (decaying ~18 Hz oscillation, mostly vertical, ``impact_g`` peak),
  the weight shifts back (0.5 s) and sway returns to double-stance levels.
  After ``relift_after`` s the subject lifts the foot again if the recording
  has time left.
* Sensor: at the pelvis (L5), 1 m above the ankle.  Output columns are
  acc x, y, z [g] (specific force, gravity included) and gyro x, y, z
  [deg/s] in the *sensor* frame; by default sensor x forward, y left, z up,
  optionally tilted by ``sensor_tilt_deg`` or re-mounted with ``axes``.

Ground truth is returned as a :class:`StanceTruth`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal as _sig

__all__ = ["StanceTruth", "simulate_stance", "body_to_sensor_matrix"]

G = 9.80665
COM_HEIGHT = 1.0  # m, ankle to pelvis sensor
_TAU = 0.12  # s, feedback delay
_SHIFT_BACK_S = 0.5  # s, weight shift back onto both feet after a touchdown

# (kp, kd, noise, noise corner Hz) per (stance, axis); tuned on the simulator
# itself for realistic amplitude/frequency (see module docstring).
_PARAMS = {
    ("double", "ap"): (17.0, 5.0, 0.035, 1.5),
    ("double", "ml"): (18.0, 5.0, 0.025, 1.5),
    ("single", "ap"): (18.0, 4.0, 0.05, 2.0),
    ("single", "ml"): (22.0, 3.5, 0.07, 3.0),
}


@dataclass(frozen=True)
class StanceTruth:
    """Ground truth of one simulated recording (times in s from the first sample)."""

    rate: float
    duration: float
    leg: str  # stance leg
    stance: str
    eyes: str
    lift_offs: tuple[float, ...]
    touchdowns: tuple[float, ...]
    impact_g: tuple[float, ...]
    stance_segments: tuple[tuple[float, float], ...]
    shift_onsets: tuple[float, ...]
    # per-sample truth: t, tilt_ap_deg (forward +), tilt_ml_deg (left +),
    # acc_ap, acc_ml (m/s^2, horizontal heading frame, gravity-free), single (0/1)
    signals: dict = field(repr=False, default_factory=dict)

    @property
    def stance_durations(self) -> tuple[float, ...]:
        return tuple(b - a for a, b in self.stance_segments)

    @property
    def time_to_first_touchdown(self) -> float | None:
        if not self.lift_offs:
            return None
        return (self.touchdowns[0] if self.touchdowns else self.duration) - self.lift_offs[0]


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


_AXES = {"+x": (0, 1), "-x": (0, -1), "+y": (1, 1), "-y": (1, -1), "+z": (2, 1), "-z": (2, -1)}


def body_to_sensor_matrix(axes=("+x", "+y", "+z"), tilt_deg=(0.0, 0.0)) -> np.ndarray:
    """Matrix S with v_sensor = S @ v_body.

    ``axes`` names the sensor axis that points forward, left and up (same
    convention as :class:`bridge.balance.Mounting`); ``tilt_deg`` = (pitch,
    roll) of the sensor on the body, e.g. a lordotic lumbar curve.
    """
    m = np.zeros((3, 3))  # body = m @ sensor
    for row, name in enumerate(axes):
        col, sign = _AXES[name]
        m[row, col] = sign
    if abs(np.linalg.det(m)) != 1:
        raise ValueError(f"axes {axes} are not three distinct sensor axes")
    tilt = _rot_y(np.radians(tilt_deg[0])) @ _rot_x(np.radians(tilt_deg[1]))
    # body = tilt @ (m @ sensor)  ->  sensor = m.T @ tilt.T @ body
    return m.T @ tilt.T


def _min_jerk(x):
    x = np.clip(x, 0.0, 1.0)
    return x ** 3 * (10 - 15 * x + 6 * x * x)


def _pendulum(kp, kd, noise, dt, nd, rng):
    """Delayed-PD inverted pendulum; kp/kd/noise are per-step arrays."""
    n = kp.size
    th = np.zeros(n)
    om = np.zeros(n)
    w0 = G / COM_HEIGHT
    t = o = 0.0
    for i in range(1, n):
        j = i - 1 - nd
        if j < 0:
            j = 0
        o += (w0 * t - kp[i] * th[j] - kd[i] * om[j] + noise[i]) * dt
        t += o * dt
        th[i] = t
        om[i] = o
    return th


def simulate_stance(rate: float = 200.0, duration: float = 40.0, leg: str = "left",
                    touchdowns=(), stance: str = "single", eyes: str = "open", seed: int = 0,
                    lift_off: float = 3.0, shift_s: float = 0.5, relift_after: float = 2.0,
                    impact_g=None, sensor_tilt_deg=(0.0, 0.0), axes=("+x", "+y", "+z"),
                    noise_g: float = 0.003, noise_dps: float = 0.2,
                    quantize: bool = False, acc_range_g: float = 8.0,
                    gyro_range_dps: float = 2000.0, sway_scale: float = 1.0,
                    gyro_bias_dps=None, lean_deg=None):
    """Simulate a pelvis IMU during quiet or single-leg stance.

    Parameters
    ----------
    rate : output rate in Hz.   duration : recording length in s.
    leg : stance leg ("left" or "right"); the other foot is lifted.
    touchdowns : absolute times (s) where the lifted foot touches down.
    stance : "single" (lift-off at ``lift_off``) or "double" (never lifts).
    eyes : "open" or "closed" (closed: 1.6x sway noise).
    impact_g : peak impact per touchdown (g); default random 0.25-1.0 g.
    quantize : emulate int16 counts (+-acc_range_g, +-gyro_range_dps) with clipping.
    sway_scale : multiplies the sway noise (amplitude variation between people).
    gyro_bias_dps : constant gyro bias per sensor axis; default random N(0, 0.5) deg/s.
    lean_deg : trunk lean toward the stance leg on one leg; default random 3-6 deg.

    Returns ``(imu, truth)``: imu is (n, 6) float64 acc xyz [g] + gyro xyz [deg/s].
    """
    if leg not in ("left", "right"):
        raise ValueError(f"leg must be 'left' or 'right', got {leg!r}")
    if stance not in ("single", "double") or eyes not in ("open", "closed"):
        raise ValueError("stance must be single|double and eyes open|closed")
    rng = np.random.default_rng(seed)
    k = max(1, int(np.ceil(1000.0 / rate)))
    dt = 1.0 / (rate * k)
    n_f = int(round(duration * rate)) * k
    t_f = np.arange(n_f) * dt
    side = 1.0 if leg == "left" else -1.0  # ML axis points left

    # --- script the phases -------------------------------------------------
    tds = sorted(float(t) for t in touchdowns) if stance == "single" else []
    lifts, onsets, segs = [], [], []
    if stance == "single":
        t_lift = lift_off
        for td in tds + [np.inf]:
            if t_lift >= duration:
                break
            lifts.append(t_lift)
            onsets.append(t_lift - shift_s)
            if td <= t_lift:
                raise ValueError(f"touchdown at {td} s precedes lift-off at {t_lift} s")
            segs.append((t_lift, min(td, duration)))
            if td >= duration:
                break
            t_lift = td + relift_after + shift_s
        tds = [td for td in tds if td < duration]
        tds = tds[: len(segs)]
    if impact_g is None:
        imp = tuple(float(x) for x in rng.uniform(0.25, 1.0, size=len(tds)))
    else:
        imp = tuple(float(x) for x in np.broadcast_to(np.asarray(impact_g, float), (len(tds),)))

    # single-stance indicator (1 between lift-off and touchdown) and shift profile
    single = np.zeros(n_f)
    shift = np.zeros(n_f)  # 0 = both feet, 1 = weight fully over stance leg
    loss = np.zeros(n_f)  # loss-of-balance lean toward the swing side, rad
    d_amp = rng.uniform(0.08, 0.12)
    lean_amp = np.radians(rng.uniform(3.0, 6.0) if lean_deg is None else lean_deg)
    for (a, b), on in zip(segs, onsets):
        single[(t_f >= a) & (t_f < b)] = 1.0
        up = _min_jerk((t_f - on) / shift_s)
        if b < duration:
            down = _min_jerk((t_f - b) / _SHIFT_BACK_S)
            ramp = _min_jerk((t_f - (b - 0.6)) / 0.6)
            lose = np.radians(rng.uniform(1.0, 2.5))
            loss -= lose * ramp * (1.0 - down)
        else:
            down = np.zeros(n_f)
        shift = np.maximum(shift, up * (1.0 - down))

    # --- sway pendulums ----------------------------------------------------
    nd = int(round(_TAU / dt))
    ec = 1.6 if eyes == "closed" else 1.0
    thetas = {}
    for axis in ("ap", "ml"):
        p_d, p_s = _PARAMS[("double", axis)], _PARAMS[("single", axis)]
        kp_arr = p_d[0] + (p_s[0] - p_d[0]) * single
        kd_arr = p_d[1] + (p_s[1] - p_d[1]) * single
        noise = np.zeros(n_f)
        for (kp0, kd0, sig, fc), mask in ((p_d, single == 0), (p_s, single == 1)):
            b, a = _sig.butter(1, fc, fs=1.0 / dt)
            z = _sig.lfilter(b, a, rng.normal(size=n_f)) * sig / np.sqrt(fc * dt * np.pi / 2)
            noise[mask] = z[mask]
        thetas[axis] = _pendulum(kp_arr, kd_arr, noise * ec * sway_scale, dt, nd, rng)

    # trunk wobble (independent of the pendulum) and slow heading drift
    b, a = _sig.butter(2, 2.0, fs=1.0 / dt)
    pad = int(2.0 / dt)  # filter a longer stretch and cut: no filtfilt edge transients
    wob = _sig.filtfilt(b, a, rng.normal(size=(2, n_f + 2 * pad)), axis=1)[:, pad:pad + n_f]
    # wobble doubles in single stance; the scale ramps over 0.3 s (a step in
    # amplitude would be a step in angle, i.e. a fake impact)
    ramp_n = max(1, int(0.3 / dt))
    scale = 1.0 + np.convolve(single, np.ones(ramp_n) / ramp_n, mode="same")
    wob *= np.radians(0.15) / max(wob.std(), 1e-12) * scale
    yaw = np.cumsum(rng.normal(size=n_f)) * np.radians(0.02) * np.sqrt(dt)
    yaw += np.radians(0.5) * np.sin(2 * np.pi * 0.1 * t_f + rng.uniform(0, 6.28))

    tilt_ap = thetas["ap"] + wob[0]  # forward lean, rad
    tilt_ml = thetas["ml"] + side * (lean_amp * shift + loss) + wob[1]  # left lean, rad

    # --- pelvis kinematics (heading frame, m) ------------------------------
    h = COM_HEIGHT
    p_ap = h * np.sin(thetas["ap"])
    p_ml = h * np.sin(thetas["ml"] + side * loss) + side * d_amp * shift
    p_up = h * np.cos(thetas["ap"]) * np.cos(thetas["ml"])

    def acc(x):
        return np.gradient(np.gradient(x, dt), dt)

    a_ap, a_ml, a_up = acc(p_ap), acc(p_ml), acc(p_up)
    for td, ig in zip(tds, imp):
        tt = t_f - td
        m = tt >= 0
        pulse = np.zeros(n_f)
        pulse[m] = ig * G * np.exp(-tt[m] / 0.03) * np.sin(2 * np.pi * 18.0 * tt[m] + 0.3)
        pulse /= max(np.abs(pulse).max() / (ig * G), 1e-12)  # exact peak ig
        a_up += pulse
        a_ml += -side * 0.3 * pulse
        a_ap += 0.15 * pulse

    # --- sensor frame ------------------------------------------------------
    # body orientation R = Rz(yaw) Ry(pitch) Rx(roll); pitch = forward lean,
    # roll = -left lean (roll + raises the left axis = lean right).
    pitch, roll = tilt_ap, -tilt_ml
    cy, sy = np.cos(yaw), np.sin(yaw)
    a_wx = a_ap * cy - a_ml * sy
    a_wy = a_ap * sy + a_ml * cy
    spec_w = np.stack([a_wx, a_wy, a_up + G]) / G  # specific force, g, world frame
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    # R^T applied per sample (R = Rz Ry Rx)
    x1 = cy * spec_w[0] + sy * spec_w[1]
    y1 = -sy * spec_w[0] + cy * spec_w[1]
    z1 = spec_w[2]
    x2 = cp * x1 - sp * z1
    z2 = sp * x1 + cp * z1
    acc_b = np.stack([x2, cr * y1 + sr * z2, -sr * y1 + cr * z2])
    dr, dp, dy = (np.gradient(v, dt) for v in (roll, pitch, yaw))
    gyro_b = np.stack([dr - dy * sp, dp * cr + dy * cp * sr, -dp * sr + dy * cp * cr])
    s_mat = body_to_sensor_matrix(axes, sensor_tilt_deg)
    acc_s = (s_mat @ acc_b)[:, ::k].T
    gyro_s = np.degrees(s_mat @ gyro_b)[:, ::k].T
    n = acc_s.shape[0]
    acc_s = acc_s + rng.normal(scale=noise_g, size=(n, 3))
    bias = rng.normal(scale=0.5, size=3)
    if gyro_bias_dps is not None:
        bias = np.broadcast_to(np.asarray(gyro_bias_dps, float), (3,))
    gyro_s = gyro_s + rng.normal(scale=noise_dps, size=(n, 3)) + bias
    if quantize:
        acc_s = np.clip(np.round(acc_s * 32768 / acc_range_g), -32768, 32767) * acc_range_g / 32768
        gyro_s = (np.clip(np.round(gyro_s * 32768 / gyro_range_dps), -32768, 32767)
                  * gyro_range_dps / 32768)
    imu = np.ascontiguousarray(np.hstack([acc_s, gyro_s]))
    sl = slice(None, None, k)
    truth = StanceTruth(
        rate=float(rate), duration=n / rate, leg=leg, stance=stance, eyes=eyes,
        lift_offs=tuple(lifts), touchdowns=tuple(tds), impact_g=imp,
        stance_segments=tuple(segs), shift_onsets=tuple(onsets),
        signals={"t": t_f[sl], "tilt_ap_deg": np.degrees(tilt_ap[sl]),
                 "tilt_ml_deg": np.degrees(tilt_ml[sl]), "acc_ap": a_ap[sl], "acc_ml": a_ml[sl],
                 "single": single[sl]},
    )
    return imu, truth
