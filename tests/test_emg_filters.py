"""EMG filter chain: scipy equivalence, chunk invariance, references."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from bridge.emg import EmgFilter, SosFilter, design_chain
from bridge.errors import ConfigError, SignalError

RATE = 2000.0


def random_sos(rng, n):
    """Stable random biquads (poles inside the unit circle)."""
    sos = np.zeros((n, 6))
    for k in range(n):
        r, th = rng.uniform(0.3, 0.97), rng.uniform(0.05, 3.0)
        sos[k, :3] = rng.standard_normal(3)
        sos[k, 3:] = [1.0, -2 * r * np.cos(th), r * r]
    return sos


def splits(n, rng, max_len=50):
    """Random block lengths summing to n, with 0- and 1-sample blocks."""
    out, pos = [], 0
    while pos < n:
        k = int(rng.choice([0, 1, 1, 2, 7, rng.integers(0, max_len)]))
        k = min(k, n - pos)
        out.append(k)
        pos += k
    return out


@pytest.mark.parametrize("channels", [1, 3, 4, 8, 12])
def test_sosfilter_matches_scipy(channels):
    rng = np.random.default_rng(channels)
    sos = random_sos(rng, 5)
    x = rng.standard_normal((3000, channels))
    f = SosFilter(sos, channels)
    y = np.vstack([f.process(x[a:a + 700]) for a in range(0, 3000, 700)])
    ref = signal.sosfilt(sos, x, axis=0)
    assert np.max(np.abs(y - ref)) <= 1e-10 * max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("channels", [1, 8])
def test_sosfilter_awkward_gains_match_scipy(channels):
    """The chain takes each section's b0 out (applied once at the output):
    sections where that cannot be done (b0 = 0, b / b0 overflowing), a
    negative b0, and numerators symmetric or (1, 2, 1) only to within a few
    ulp (made exact) all still agree with sosfilt, primed or not."""
    sos = np.array([
        [0.0, 0.5, 0.25, 1.0, -0.5, 0.2],                   # b0 = 0: gain kept
        [1e-300, 1.0, 1e-300, 1.0, 0.1, 0.3],               # b1 / b0 = 1e300: kept
        [-0.7, 0.3, -0.2, 1.0, -1.2, 0.5],                  # negative gain
        [0.9973888361673892, -1.9702186490445686, 0.9973888361673889, 1.0, -1.96, 0.99],
        [0.25, 0.5 * (1 + 2e-16), 0.25 * (1 - 2e-16), 1.0, -1.5, 0.6],
    ])
    rng = np.random.default_rng(5)
    x = 3.0 + rng.standard_normal((2500, channels))
    ref = signal.sosfilt(sos, x, axis=0)
    y = SosFilter(sos, channels).process(x)
    assert np.max(np.abs(y - ref)) <= 1e-10 * max(1.0, np.max(np.abs(ref)))
    zi = signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    ref, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
    y = SosFilter(sos, channels, prime=True).process(x)
    assert np.max(np.abs(y - ref)) <= 1e-10 * max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("channels", [1, 8])
@pytest.mark.parametrize("case", ["residue_b0", "huge_b2", "subnormal_gain"])
def test_sosfilter_gain_kept_where_taking_it_out_leaves_the_range(channels, case):
    """Taking b0 out of a section divides the signal after it by b0 (by the
    product of the b0s so far): where b / b0 is huge or that product is
    subnormal the chain left the range sosfilt computes in.  A near-delay
    whose b0 is a rounding residue (1e-160) gave inf/NaN on unit input;
    b = (1e-150, 0, 1e150) inf for |x| > 2e8; a 1e-320 product cost the
    output ~1e-5 of its value.  Those sections keep their gain."""
    sos, amp = {
        "residue_b0": (np.array([[1e-160, 1.0, 0.0, 1.0, -0.5, 0.0]] * 2), 1.0),
        "huge_b2": (np.array([[1e-150, 0.0, 1e150, 1.0, -0.3, 0.1]]), 1e9),
        "subnormal_gain": (np.array([[3e-160, 3e-160, 0.0, 1.0, -0.5, 0.0],
                                     [3e-160, 0.0, 3e-160, 1.0, 0.2, 0.0],
                                     [7e200, 0.0, 0.0, 1.0, 0.0, 0.0]]), 1e10),
    }[case]
    rng = np.random.default_rng(9)
    x = amp * (3.0 + rng.standard_normal((400, channels)))
    for prime in (False, True):
        if prime:
            zi = signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
            ref, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
        else:
            ref = signal.sosfilt(sos, x, axis=0)
        assert np.all(np.isfinite(ref))
        y = SosFilter(sos, channels, prime=prime).process(x)
        assert np.all(np.isfinite(y))
        assert np.max(np.abs(y - ref)) <= 1e-10 * np.max(np.abs(ref))


def test_sosfilter_primed_matches_scipy_zi():
    rng = np.random.default_rng(1)
    sos = design_chain(RATE)
    x = 2000 + rng.standard_normal((2000, 8))        # big DC offset, like raw ADC counts
    y = SosFilter(sos, 8, prime=True).process(x)
    zi = signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    ref, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
    assert np.max(np.abs(y - ref)) <= 1e-10 * np.max(np.abs(x))
    # priming removes the step transient a zero state would give
    assert np.max(np.abs(y[:200])) < 10 * np.std(y[1000:])


def reference_chain(x, f: EmgFilter):
    """Slow numpy/scipy version of EmgFilter (same coefficients)."""
    zi = signal.sosfilt_zi(f.sos)[:, :, None] * x[0][None, None, :]
    y, _ = signal.sosfilt(f.sos, x, axis=0, zi=zi)
    if f.tkeo:
        p = np.vstack([np.zeros((2, x.shape[1])), y])
        r = np.abs(p[1:-1] ** 2 - p[2:] * p[:-2])    # psi[n-1] reported at n
    else:
        r = np.abs(y)
    if f.envelope == "lowpass":
        env = signal.sosfilt(f.envelope_sos, r, axis=0)
    elif f.envelope == "rms":
        w = f.rms_samples
        c = np.cumsum(np.vstack([np.zeros((w, x.shape[1])), r * r]), axis=0)
        env = np.sqrt(np.maximum(c[w:] - c[:-w], 0) / w)
    else:
        env = r
    return y, env


@pytest.mark.parametrize("envelope,tkeo,channels", [
    ("lowpass", False, 8), ("lowpass", False, 3), ("rms", False, 8),
    ("lowpass", True, 4), ("none", False, 2), ("rms", True, 1),
])
def test_chain_matches_reference(envelope, tkeo, channels):
    rng = np.random.default_rng(7)
    x = 0.05 * rng.standard_normal((6000, channels)) + 0.3
    x[2000:3500] *= 8
    f = EmgFilter(channels, RATE, envelope=envelope, tkeo=tkeo)
    y, env = f.process(x, filtered=True)
    ry, renv = reference_chain(x, f)
    assert np.max(np.abs(y - ry)) <= 1e-10
    assert np.max(np.abs(env - renv)) <= 1e-10 * max(1.0, np.max(renv))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       mode=st.sampled_from([("lowpass", False, 8), ("rms", False, 3), ("lowpass", True, 4),
                             ("lowpass", False, 5)]))
def test_chain_chunk_invariance(seed, mode):
    envelope, tkeo, channels = mode
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1500, channels))
    one = EmgFilter(channels, RATE, envelope=envelope, tkeo=tkeo).process(x)
    f = EmgFilter(channels, RATE, envelope=envelope, tkeo=tkeo)
    parts, pos = [], 0
    for k in splits(len(x), rng):
        parts.append(f.process(x[pos:pos + k]))
        pos += k
    assert np.array_equal(np.vstack(parts), one)      # bit-identical


def test_vector_and_scalar_paths_agree():
    """8 channels take the 4-wide vector kernel, 1 channel the scalar one."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 8))
    many = EmgFilter(8, RATE).process(x)
    for c in (0, 5):
        single = EmgFilter(1, RATE).process(x[:, c:c + 1])
        # identical on x86-64 (no FMA in either path); a compiler that fuses
        # multiply-adds differently in the two paths may differ by rounding
        np.testing.assert_allclose(many[:, c:c + 1], single, rtol=0, atol=1e-12)


def test_reset_restarts():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 2))
    f = EmgFilter(2, RATE)
    a = f.process(x)
    f.process(rng.standard_normal((300, 2)))
    f.reset()
    assert np.array_equal(f.process(x), a)


def test_design_chain_clamps_and_notches():
    sos = design_chain(500.0)            # 450 Hz > Nyquist: clamped to 237.5 Hz
    w, h = signal.sosfreqz(sos, worN=4096, fs=500.0)
    assert abs(h[np.argmin(np.abs(w - 50))]) < 0.05       # notch
    assert abs(h[np.argmin(np.abs(w - 80))]) > 0.7        # pass band
    assert len(design_chain(2000.0, notch=None)) == 4     # 4th-order band-pass only
    assert len(design_chain(2000.0, notch=60.0, notch_harmonics=3)) == 7
    w, h = signal.sosfreqz(design_chain(2000.0, notch=60.0), worN=8192, fs=2000.0)
    for f0 in (60, 120, 180):
        assert abs(h[np.argmin(np.abs(w - f0))]) < 0.1


@pytest.mark.parametrize("kwargs", [
    dict(rate=0), dict(rate=-5), dict(rate=float("nan")),
    dict(band=(500, 100)), dict(band="x"), dict(envelope="median"),
    dict(envelope_cutoff=5000), dict(channels=0), dict(channels=2.5),
])
def test_filter_bad_config(kwargs):
    args = dict(channels=2, rate=RATE)
    args.update(kwargs)
    with pytest.raises(ConfigError):
        EmgFilter(args.pop("channels"), args.pop("rate"), **args)


def test_filter_bad_blocks():
    f = EmgFilter(2, RATE)
    with pytest.raises(ConfigError, match="channels"):
        f.process(np.zeros((10, 3)))
    with pytest.raises(ConfigError, match="2-D"):
        f.process(np.zeros((2, 10, 2)))
    with pytest.raises(ConfigError, match="numeric"):
        f.process(np.array([["a", "b"]]))
    x = np.ones((10, 2))
    x[3, 1] = np.nan
    with pytest.raises(SignalError):
        f.process(x)
    assert f.process(np.zeros((0, 2))).shape == (0, 2)
    # int and non-contiguous input are converted
    xi = (np.arange(40).reshape(20, 2) * 3).astype(np.int16)
    assert np.array_equal(EmgFilter(2, RATE).process(xi), EmgFilter(2, RATE).process(xi.astype(float)))
    big = np.random.default_rng(0).standard_normal((50, 4))
    assert np.array_equal(EmgFilter(2, RATE).process(big[:, ::2]),
                          EmgFilter(2, RATE).process(np.ascontiguousarray(big[:, ::2])))


@pytest.mark.parametrize("channels", [4, 8, 12])
@pytest.mark.parametrize("kw", [dict(), dict(notch=None), dict(envelope="none"), dict(order=2)])
def test_sym4_path_bit_identical(channels, kw):
    """Chains whose sections all have b0 = b2 = 1 once the gains are out
    (every default design) run a 4-wide AVX2 form with fewer multiplies:
    the same bits as the general 4-wide path, split or not (on a CPU
    without AVX2 both runs take the general path)."""
    x = np.random.default_rng(6).standard_normal((2500, channels)) * 40 + 7
    x[900:1300] *= 8
    outs = []
    for sym in (True, False):
        for cuts in ((), (1, 33, 1000, 1064)):
            f = EmgFilter(channels, RATE, **kw)
            f._chain._wide(False)
            f._chain._sym4(sym)
            parts = [f.process(p, filtered=True) for p in np.split(x, cuts)]
            outs.append((np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])))
    for filt, env in outs[1:]:
        assert np.array_equal(filt, outs[0][0]) and np.array_equal(env, outs[0][1])


@pytest.mark.parametrize("kw", [dict(), dict(notch=None), dict(envelope="none"), dict(order=2),
                                dict(notch_harmonics=6), dict(tkeo=True)])
def test_wide_path_bit_identical(kw):
    """8 channels on an AVX-512 CPU run one 8-wide vector with the states in
    registers: the same bits as the 4-wide path, split or not (without
    AVX-512 both runs take the 4-wide path)."""
    x = np.random.default_rng(4).standard_normal((3000, 8)) * 40 + 7
    x[1000:1400] *= 8
    outs = []
    for wide in (True, False):
        for cuts in ((), (1, 33, 1000, 1064)):
            f = EmgFilter(8, RATE, **kw)
            f._chain._wide(wide)
            parts = [f.process(p, filtered=True) for p in np.split(x, cuts)]
            outs.append((np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])))
    for filt, env in outs[1:]:
        assert np.array_equal(filt, outs[0][0]) and np.array_equal(env, outs[0][1])


_NATIVE = Path(__file__).resolve().parent.parent / "native"
_USE_ALL_KERNELS = """
#include "emg_kernels.h"
#include "emg_detect.h"
int use(emg_chain_t *ch, const double *x, ptrdiff_t n, double *env, emg_det_t *d)
{
    int r = emg_chain_run(ch, x, n, env, 0, 1);
    emg_chain_undo(ch);
    emg_detect(d, env, n);
    emg_set_base(d, 0, 1.0, 1.0);
    return r + emg_cpu_v8() + emg_cpu_v3() + emg_cpu_group() + (int)emg_find_nonfinite(x, n);
}
"""


def write_libc_stubs(folder) -> None:
    """math.h, string.h and stdlib.h (immintrin.h needs it) as the native headers use
    them, for cross-compiles with no libc for the target."""
    (folder / "math.h").write_text(
        "double sqrt(double); double fabs(double);\n"
        "#define isfinite(x) __builtin_isfinite(x)\n#define HUGE_VAL __builtin_huge_val()\n")
    (folder / "string.h").write_text(
        "#include <stddef.h>\nvoid *memcpy(void *, const void *, size_t);\n"
        "void *memset(void *, int, size_t);\n")
    (folder / "stdlib.h").write_text(
        "#include <stddef.h>\nvoid *malloc(size_t); void free(void *);\n")


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang not installed")
@pytest.mark.parametrize("target", ["aarch64-linux-gnu", "armv7a-linux-gnueabihf", "i686-linux-gnu",
                                    "riscv64-linux-gnu", "x86_64-linux-gnu"])
def test_kernels_compile_for_other_targets(target, tmp_path):
    """The C kernels build where we never run them (Raspberry Pi, Apple
    silicon, 32-bit x86, ...): Clang cross-compiles the headers (no libc
    for the target here, so math.h / string.h are stubs).  An x86-only asm
    constraint ("+x") in the detector once broke every non-x86 build."""
    write_libc_stubs(tmp_path)
    src = tmp_path / "use.c"
    src.write_text(_USE_ALL_KERNELS)
    res = subprocess.run(["clang", "--target=" + target, "-O3", "-Wall", "-nostdinc", "-isystem",
                          str(tmp_path), "-isystem",
                          subprocess.check_output(["clang", "-print-resource-dir"], text=True).strip()
                          + "/include", "-I", str(_NATIVE), "-c", str(src), "-o",
                          str(tmp_path / "use.o")], capture_output=True, text=True)
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
