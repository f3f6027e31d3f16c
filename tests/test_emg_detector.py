"""Contraction detector: reference state machine, chunk invariance, truth."""

import dataclasses
import math
import platform
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.emg import (
    Contraction,
    ContractionDetector,
    EmgFilter,
    Offset,
    Onset,
    detect_contractions,
)
from bridge.errors import ConfigError, SignalError
from bridge.simulator.emg_model import Burst, simulate_emg
from test_emg_filters import write_libc_stubs

RATE = 2000.0


# --------------------------------------------------------------------------
# A slow, per-sample Python reference of the documented detector semantics.
# --------------------------------------------------------------------------
def reference_events(env, det: ContractionDetector, rest=None, x0=None):
    """Events as tuples: onsets (1, ch, sample, emitted, censored), offsets
    (2, ch, sample, emitted, onset, peak, mean, censored).  ``x0``: the
    first raw sample row (the start watch's rounding level)."""
    p = det.params
    r = det.rate
    k_on, k_off, k_ref = p["k_on"], p["k_off"], p["k_refine"]
    min_on = max(1, int(round(p["min_on"] * r)))
    min_len = max(1, int(round(p["min_length"] * r)))
    min_gap = int(round(p["min_gap"] * r))
    rearm_hold = max(1, int(round(p["rearm_rest"] * r)))
    win = max(1, int(round(p["baseline_window"] * r)))
    hist_cap = int(round(p["baseline_history"] / (win / r)))
    quiet, off_frac, min_ratio = p["baseline_quiet"], p["off_fraction"], p["min_ratio"]
    comp = det.envelope_delay
    n, nc = env.shape
    auto = rest is None
    s0, s1 = det.settle_samples, det.start_settle_samples
    horizon = int(math.ceil(p["censor_window"] * r - 1e-9))
    horizon = ((horizon + win - 1) // win) * win
    ch = []
    for c in range(nc):
        s = dict(state=0, base=False, last_low=-1, last_off=0, onset=0, raw=0, cand=0,
                 above=0, pre_sum=0.0, pre_peak=0.0, acc=0.0, accp=0.0, snap=0.0, snapp=0.0,
                 ws=0.0, wq=0.0, hm=[0.0] * hist_cap, hv=[0.0] * hist_cap)
        ch.append(s)

    extrap = p["extrapolate"]
    remerge = p["remerge_fraction"]
    confirm = p["confirm_mean"]
    nsub, sub_keep = p["baseline_subwindows"], p["baseline_sub_keep"]
    sub_ends = [((j + 1) * win) // nsub for j in range(nsub)]
    for c, s in enumerate(ch):
        s.update(rearm=0.0, rearm_low=0.0, below=0, wt=0.0, sv=[0.0] * nsub, first=True, cens=False,
                 watch=auto and horizon > 0, speak=0.0,
                 zero=0.0 if x0 is None else 1e-12 * abs(float(x0[c])))

    def set_base(s, m, sd):
        sd = max(sd, 0.02 * m)
        s.update(base=True, mu=m, on=max(m + k_on * sd, min_ratio * m), off=m + k_off * sd,
                 ref=m + k_ref * sd)

    if not auto:
        for c in range(nc):
            set_base(ch[c], rest[0][c], rest[1][c])
    win_n = hist_pos = hist_len = 0
    events = []

    def judge(c, now):
        """Replay the start under the floor in force at window end ``now``."""
        s = ch[c]
        e_c = env[:, c]
        done = now + 1 >= horizon
        if s["speak"] > s["on"] and s["on"] > s["zero"] and now >= s1:
            on, off, ref = s["on"], s["off"], s["ref"]
            st_, ended, last_low, raw, onset, above, cand = 0, False, s0 - 1, s0, 0, 0, 0
            acc = accp = snap = snapp = pre = pk = csum = cpk = 0.0
            nconf, t_dec, e_dec, thr_dec = 1, 0, 0.0, 0.0
            for t in range(s0, now + 1):
                e = e_c[t]
                if st_ in (0, 1):
                    if e <= ref:
                        if st_ == 0 and t >= max(s1, win):
                            break
                        last_low, pre, pk = t, 0.0, 0.0
                    else:
                        pre += e
                        pk = max(pk, e)
                    if st_ == 0 and e > on:
                        st_, above, raw = 1, 0, last_low + 1
                        onset = raw - comp
                        if extrap > 0 and s["on"] > s["ref"]:
                            f = (s["ref"] - s["mu"]) / (s["on"] - s["ref"])
                            onset -= int(extrap * f * (t - last_low) + 0.5)
                        onset = max(onset, 0)
                if st_ == 1:
                    if e > on:
                        above += 1
                    elif e < off:
                        st_ = 0
                    if (st_ == 1 and t >= s1 and above >= min_on and t - raw + 1 >= min_len
                            and pre >= confirm * on * (t - raw + 1)):
                        st_, acc, accp, csum, cpk, nconf = 2, pre, pk, pre, pk, t - raw + 1
                elif st_ == 2:
                    if e < off or e * (t - raw) < off_frac * acc:
                        st_, cand, snap, snapp = 3, t, acc, accp
                    acc += e
                    accp = max(accp, e)
                elif st_ == 3:
                    acc += e
                    accp = max(accp, e)
                    if e > on and e * (cand - raw) > remerge * snap:
                        st_ = 2
                    elif t - cand >= min_gap:
                        thr = max(off_frac * snap / (cand - raw), off)
                        if e <= thr:
                            ended, t_dec, e_dec, thr_dec = True, t, e, thr
                            break
                        st_ = 2
            if st_ in (2, 3):
                cens = raw <= s0
                if cens:
                    onset = 0
                events.append((1, c, onset, now, cens))
                s["first"] = False
                done = True
                if ended:
                    events.append((2, c, cand, now, onset, snapp, snap / (cand - raw), cens))
                    s["last_off"] = cand
                    if s["state"] == 1:
                        s["state"] = 0
                    # re-armed unless back at rest since: below the offset
                    # threshold for min_gap samples in a row
                    below, rest_since = 0, False
                    for e_t in e_c[t_dec + 1:now + 1]:
                        below = below + 1 if e_t < off else 0
                        if below >= rearm_hold:
                            rest_since = True
                            break
                    if remerge > 0 and e_dec > off and not rest_since:
                        s["rearm"] = remerge * snap / (cand - raw)
                        s["rearm_low"] = thr_dec
                        s["below"] = below
                else:
                    s.update(state=st_, onset=onset, raw=raw, acc=acc, accp=accp, cand=cand,
                             snap=snap, snapp=snapp, rearm=0.0, cens=cens)
        if done:
            s["watch"] = False

    for t in range(n):
        for c in range(nc):
            s = ch[c]
            e = env[t, c]
            if auto:
                s["ws"] += e
                s["wq"] += e * e
            if s["watch"] and s0 <= t < horizon:
                s["speak"] = max(s["speak"], e)
            if not s["base"]:
                s["last_low"] = t
                continue
            if e <= s["ref"] or (s["rearm"] != 0.0 and e <= s["rearm_low"]):
                s.update(last_low=t, pre_sum=0.0, pre_peak=0.0)
            else:
                s["pre_sum"] += e
                s["pre_peak"] = max(s["pre_peak"], e)
            st_ = s["state"]
            # after a split without rest a new onset must reach the re-arm level
            # until back at rest: below the offset threshold for min_gap in a row
            if s["rearm"] != 0.0 and st_ in (0, 1):
                s["below"] = s["below"] + 1 if e < s["off"] else 0
                if s["below"] >= rearm_hold:
                    s["rearm"] = 0.0
            on_eff = max(s["on"], s["rearm"])
            if st_ == 0 and e > on_eff:
                st_ = 1
                s["above"] = 0
                s["raw"] = max(s["last_low"] + 1, s["last_off"])
                onset = s["raw"] - comp
                if extrap > 0 and s["on"] > s["ref"]:
                    f = (s["ref"] - s["mu"]) / (s["on"] - s["ref"])
                    onset -= int(extrap * f * (t - s["last_low"]) + 0.5)
                s["onset"] = max(onset, s["last_off"], 0)
            if st_ == 1:
                if e > on_eff:
                    s["above"] += 1
                elif e < s["off"]:
                    st_ = 0
                if (st_ == 1 and s["above"] >= min_on and t - s["raw"] + 1 >= min_len
                        and s["pre_sum"] >= confirm * on_eff * (t - s["raw"] + 1)):
                    st_ = 2
                    s["rearm"] = 0.0
                    s["acc"], s["accp"] = s["pre_sum"], s["pre_peak"]
                    cens = False
                    if s["first"]:
                        s["first"] = s["watch"] = False
                        if s["raw"] <= s0:
                            cens, s["onset"] = True, 0
                    s["cens"] = cens
                    events.append((1, c, s["onset"], t, cens))
            elif st_ == 2:
                # e < max(off, off_frac * mean so far), as a product (no division)
                if e < s["off"] or e * (t - s["raw"]) < off_frac * s["acc"]:
                    st_ = 3
                    s.update(cand=t, snap=s["acc"], snapp=s["accp"])
                s["acc"] += e
                s["accp"] = max(s["accp"], e)
            elif st_ == 3:
                s["acc"] += e
                s["accp"] = max(s["accp"], e)
                if e > s["on"] and e * (s["cand"] - s["raw"]) > remerge * s["snap"]:
                    st_ = 2
                elif t - s["cand"] >= min_gap:
                    thr = max(off_frac * s["snap"] / (s["cand"] - s["raw"]), s["off"])
                    if e <= thr:
                        st_ = 0
                        s["last_off"] = s["cand"]
                        if remerge > 0 and e > s["off"]:
                            s["rearm"] = remerge * s["snap"] / (s["cand"] - s["raw"])
                            s["rearm_low"] = thr
                            s["below"] = 0
                        events.append((2, c, s["cand"], t, s["onset"], s["snapp"],
                                       s["snap"] / (s["cand"] - s["raw"]), s["cens"]))
                        s["cens"] = False
                    else:
                        st_ = 2
            s["state"] = st_
        if auto:
            win_n += 1
            j = sub_ends.index(win_n) if win_n in sub_ends else -1
            if j >= 0:       # sub-window done: own variance, sum into the window's
                n_sub = win_n - (j * win) // nsub
                for c in range(nc):
                    s = ch[c]
                    m = s["ws"] / n_sub
                    s["sv"][j] = max(s["wq"] / n_sub - m * m, 0.0)
                    s["wt"] += s["ws"]
                    s["ws"] = s["wq"] = 0.0
            if win_n == win:
                win_n = 0
                for c in range(nc):
                    s = ch[c]
                    s["hm"][hist_pos] = s["wt"] / win
                    s["hv"][hist_pos] = sum(sorted(s["sv"])[:sub_keep]) / sub_keep
                    s["wt"] = 0.0
                hist_pos = (hist_pos + 1) % hist_cap
                hist_len = min(hist_len + 1, hist_cap)
                nq = min(max(1, int(quiet * hist_len + 0.999999)), hist_len)
                for c in range(nc):
                    s = ch[c]
                    order = sorted(range(hist_len), key=lambda k: s["hm"][k])[:nq]
                    sm = sv = 0.0
                    for k in order:
                        sm += s["hm"][k]
                        sv += s["hv"][k]
                    set_base(s, sm / nq, math.sqrt(sv / nq) if sv > 0 else 0.0)
                for c in range(nc):
                    if ch[c]["watch"]:
                        judge(c, t)
    return events


def sim(seed, channels=2, duration=12.0, snr=12.0, **kw):
    rng = np.random.default_rng(seed)
    bursts = []
    for c in range(channels):
        t = 2.0 + rng.uniform(0, 0.5)
        while t + 2.5 < duration:
            d = rng.uniform(0.6, 2.0)
            bursts.append(Burst(c, t, t + d, rng.uniform(0.2, 0.5), rise=rng.uniform(0.02, 0.15),
                                fall=0.05))
            t += d + rng.uniform(1.5, 3.0)
    return simulate_emg(RATE, duration, bursts, channels, snr_db=snr, seed=seed, **kw)


def as_tuples(events):
    out = []
    for e in events:
        if isinstance(e, Onset):
            out.append((1, e.channel, e.sample, e.emitted_sample, e.censored_onset))
        else:
            c = e.contraction
            out.append((2, e.channel, e.sample, e.emitted_sample, c.onset_sample, c.peak, c.mean,
                        c.censored_onset))
    return out


def assert_same_events(got, ref):
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g[:5] == r[:5]
        if g[0] == 2:
            assert g[5] == pytest.approx(r[5], rel=1e-9)
            assert g[6] == pytest.approx(r[6], rel=1e-9)
            assert g[7] == r[7]


@pytest.mark.parametrize("seed,calibrated,kw", [
    (1, False, {}), (2, False, {}), (3, True, {}),
    (4, False, {"remerge_fraction": 0.0, "confirm_mean": 0.0}),
    (5, False, {"baseline_subwindows": 5, "baseline_sub_keep": 3, "baseline_window": 0.2503}),
    (6, False, {"baseline_subwindows": 1, "baseline_sub_keep": 1, "confirm_mean": 1.5}),
])
def test_matches_reference_state_machine(seed, calibrated, kw):
    x, _ = sim(seed, channels=3, duration=10.0, hum=0.01, ecg=0.05)
    det = ContractionDetector(3, RATE, **kw)
    rest = None
    if calibrated:
        rest = det.calibrate_rest(x[:int(1.5 * RATE)])
    env = EmgFilter(3, RATE).process(x)
    ref = reference_events(env, det, rest, x[0])
    got = as_tuples(det.process(x))
    assert any(r[0] == 1 for r in ref) and any(r[0] == 2 for r in ref)
    # events of one call come sorted by (emitted sample, channel)
    ref.sort(key=lambda r: (r[3], r[1]))
    assert_same_events(got, ref)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_chunk_invariance(seed):
    x, _ = sim(seed % 7, channels=4, duration=8.0)
    one = as_tuples(ContractionDetector(4, RATE).process(x))
    assert len(one) >= 4
    rng = np.random.default_rng(seed)
    det = ContractionDetector(4, RATE)
    got, pos = [], 0
    while pos < len(x):
        k = int(rng.choice([0, 1, 3, 32, 64, 65, rng.integers(0, 700)]))
        got += as_tuples(det.process(x[pos:pos + k]))
        pos += k
    assert got == one


def test_detect_contractions_runs_the_streaming_detector():
    x, _ = sim(5, channels=2, duration=10.0)
    det = ContractionDetector(2, RATE)
    events = []
    for a in range(0, len(x), 32):
        events += det.process(x[a:a + 32])
    events += det.finish()
    stream = sorted((e.contraction for e in events if isinstance(e, Offset)),
                    key=lambda c: (c.onset_sample, c.channel))
    for block in (1, 256, 10_000):
        assert detect_contractions(x, RATE, block=block) == stream


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_against_simulator_truth(seed):
    rng = np.random.default_rng(seed)
    x, truth = sim(seed, channels=2, duration=20.0, snr=float(rng.uniform(6, 20)),
                   hum=0.02, ecg=0.05, wander=0.2)
    found = detect_contractions(x, RATE)
    errors = []
    for ch, on, off, _ in truth:
        mine = [c for c in found if c.channel == ch and on - 0.3 <= c.onset < off]
        assert len(mine) == 1, (ch, on, off, mine)
        errors.append(mine[0].onset - on)
        assert mine[0].offset == pytest.approx(off, abs=0.2)
    assert np.median(np.abs(errors)) < 0.03
    assert np.max(np.abs(errors)) < 0.1
    spurious = [c for c in found
                if not any(ch == c.channel and on - 0.3 <= c.onset < off for ch, on, off, _ in truth)]
    assert spurious == []


def test_rest_gives_nothing():
    x, _ = simulate_emg(RATE, 30.0, [], 4, noise_rms=0.01, hum=0.05, ecg=0.02, wander=0.3, seed=9)
    assert detect_contractions(x, RATE) == []


def test_event_fields_and_latency():
    x, truth = simulate_emg(RATE, 8.0, [Burst(0, 3.0, 5.0, 0.4, rise=0.05)], 1, snr_db=15, seed=2)
    det = ContractionDetector(1, RATE)
    events = det.process(x)
    on = [e for e in events if isinstance(e, Onset)]
    off = [e for e in events if isinstance(e, Offset)]
    assert len(on) == 1 and len(off) == 1
    o = on[0]
    assert o.time == o.sample / RATE and abs(o.time - 3.0) < 0.03
    # confirmed only after min_length, reported at the refined onset
    assert o.latency == (o.emitted_sample - o.sample) / RATE
    assert o.latency >= det.params["min_length"] - 1 / RATE
    c = off[0].contraction
    assert isinstance(c, Contraction) and c.pct_mvc is None and not c.truncated
    assert c.onset == o.time and c.offset == off[0].time
    assert c.duration == pytest.approx(2.0, abs=0.15)
    assert 0 < c.mean < c.peak
    assert c.mean == pytest.approx(0.4 * 0.8, rel=0.3)     # |x| of noise ~ 0.8 RMS
    assert off[0].latency >= det.params["min_gap"] - 1 / RATE
    with pytest.raises(AttributeError):
        o.sample = 3                                          # frozen


def test_open_contraction_closed_at_end():
    x, _ = simulate_emg(RATE, 6.0, [Burst(0, 3.0, 7.0, 0.4)], 1, snr_db=15, seed=3)
    found = detect_contractions(x, RATE)
    assert len(found) == 1 and found[0].truncated
    assert found[0].offset == pytest.approx(6.0)
    det = ContractionDetector(1, RATE)
    assert not any(isinstance(e, Offset) for e in det.process(x))
    (off,) = det.finish()
    assert off.contraction.truncated and off.sample == len(x)
    assert det.finish() == []


def test_rest_calibrated_says_whether_the_floor_is_fixed():
    x, _ = sim(4, channels=2, duration=4.0)
    det = ContractionDetector(2, RATE)
    assert not det.rest_calibrated
    det.calibrate_rest(x[:2000])
    assert det.rest_calibrated
    det.reset()                       # reset keeps the calibration
    assert det.rest_calibrated
    det.clear_rest()
    assert not det.rest_calibrated


def test_calibrate_rest_and_mvc():
    bursts = [Burst(0, 2.0, 3.0, 0.2), Burst(0, 5.0, 6.0, 0.4), Burst(1, 2.0, 3.0, 0.3)]
    x, _ = simulate_emg(RATE, 8.0, bursts, 2, noise_rms=0.01, seed=4)
    mvc_x, _ = simulate_emg(RATE, 3.0, [Burst(0, 0.5, 2.5, 0.8), Burst(1, 0.5, 2.5, 0.6)], 2,
                            noise_rms=0.01, seed=5)
    rest_x, _ = simulate_emg(RATE, 2.0, [], 2, noise_rms=0.01, seed=6)
    det = ContractionDetector(2, RATE)
    mu, sd = det.calibrate_rest(rest_x)
    assert mu.shape == (2,) and np.all(mu > 0) and np.all(sd > 0)
    assert [b[0] for b in det.baseline()] == pytest.approx(list(mu))
    mvc = det.calibrate_mvc(mvc_x)
    assert mvc[0] == pytest.approx(0.8 * 0.8, rel=0.2)        # mean |x| of the plateau
    events = det.process(x)
    cs = [e.contraction for e in events if isinstance(e, Offset)]
    assert len(cs) == 3
    for c in cs:
        assert c.pct_mvc == pytest.approx(100 * c.mean / mvc[c.channel])
        assert c.peak_pct_mvc == pytest.approx(100 * c.peak / mvc[c.channel])
    ch0 = sorted((c for c in cs if c.channel == 0), key=lambda c: c.onset)
    assert ch0[1].pct_mvc > 1.6 * ch0[0].pct_mvc          # twice the level
    # calibrated from the start: no warm-up window, a burst at 0.2 s is caught
    y, _ = simulate_emg(RATE, 2.0, [Burst(0, 0.2, 1.0, 0.3)], 2, noise_rms=0.01, seed=7)
    det.reset()
    assert len(det.process(y)) == 2                       # onset + offset, calibration kept
    det.clear_rest()
    det.reset()
    assert math.isnan(det.baseline()[0][0])
    with pytest.raises(SignalError):
        det.calibrate_mvc(np.zeros((4000, 2)))
    with pytest.raises(SignalError, match="too short"):
        det.calibrate_rest(rest_x[:50])


def test_flat_and_constant_input():
    det = ContractionDetector(2, RATE)
    assert det.process(np.zeros((6000, 2))) == []
    # a DC offset only (raw ADC counts): the pre-filter primes on the first
    # sample, so no step transient is mistaken for a burst
    assert ContractionDetector(2, RATE).process(np.full((6000, 2), 2034.0)) == []


def test_nonfinite_raise_keeps_state():
    x, _ = sim(8, channels=2, duration=8.0)
    ref = as_tuples(ContractionDetector(2, RATE).process(x))
    det = ContractionDetector(2, RATE)
    got = as_tuples(det.process(x[:5000]))
    bad = x[5000:5100].copy()
    bad[10, 1] = np.nan
    with pytest.raises(SignalError, match="row 10, channel 1"):
        det.process(bad)
    assert det.nonfinite == 1 and det.sample_count == 5000
    got += as_tuples(det.process(x[5000:]))
    assert got == ref


@pytest.mark.parametrize("channels", [1, 3, 8])
def test_nonfinite_found_anywhere(channels):
    """Every position (vector body and scalar tail of the finder, long
    blocks that release the GIL) and every kind of non-finite value."""
    rng = np.random.default_rng(channels)
    for n in (1, 5, 33, 2100):
        block = rng.normal(size=(n, channels))
        det = ContractionDetector(channels, RATE)
        det.process(block)                      # finite: accepted
        for k in {0, n * channels // 2, n * channels - 1}:
            for bad_value in (np.nan, np.inf, -np.inf):
                bad = block.copy()
                bad.flat[k] = bad_value
                before = det.sample_count
                with pytest.raises(SignalError, match=f"row {k // channels}, channel {k % channels} "):
                    det.process(bad)
                assert det.sample_count == before



@pytest.mark.parametrize("channels,block,kw", [
    (8, 32, {}), (8, 64, {}), (3, 32, {}), (8, 200, {}), (4, 700, {}), (8, 1500, {}),
    (2, 100, {"tkeo": True}), (2, 32, {"envelope": "rms"})])
def test_nonfinite_rejected_block_leaves_no_trace(channels, block, kw):
    """However a block is checked (by the filter chain as it runs, with the
    state saved first if it spans several chunks - the noise-floor history
    too if it reaches a window end; TKEO/RMS envelopes: a pass before), a
    rejected block changes nothing: the stream carries on exactly as if it
    had never been offered (events, noise floor, start watch)."""
    x, _ = sim(5, channels=channels, duration=10.0)
    starts = range(0, len(x), block)
    ref_det = ContractionDetector(channels, RATE, **kw)
    ref = []
    for s in starts:
        ref += as_tuples(ref_det.process(x[s:s + block]))
    ref += as_tuples(ref_det.finish())
    det = ContractionDetector(channels, RATE, **kw)
    got = []
    rng = np.random.default_rng(block)
    rejected = 0
    for k, s in enumerate(starts):
        good = x[s:s + block]
        if k % 5 == 0 or k == len(starts) - 1:
            bad = good.copy()
            j = bad.size - 1 if k % 2 else int(rng.integers(bad.size))
            bad.flat[j] = (np.nan, np.inf, -np.inf)[k % 3]
            with pytest.raises(SignalError, match=f"row {j // channels}, channel {j % channels} "):
                det.process(bad)
            rejected += 1
            assert det.sample_count == s
        got += as_tuples(det.process(good))
    got += as_tuples(det.finish())
    assert len(ref) >= 4
    assert got == ref
    assert np.array_equal(det.baseline(), ref_det.baseline(), equal_nan=True)
    assert det.nonfinite == rejected



def test_process_native_binding_same_as_method():
    """``process`` runs as one native call per block (bound per instance):
    the same events and errors as the Python method for every kind of
    input; a subclass that overrides ``process`` keeps its override."""
    x, _ = sim(6, channels=2, duration=8.0)
    for conv in (lambda b: b, lambda b: b.tolist(), lambda b: np.asfortranarray(b),
                 lambda b: (b * 100).astype(np.int32)):
        a, b = ContractionDetector(2, RATE), ContractionDetector(2, RATE)
        assert "process" in vars(a)          # the native binding is in place
        got, ref = [], []
        for s in range(0, len(x), 500):
            got += a.process(conv(x[s:s + 500]))
            ref += ContractionDetector.process(b, conv(x[s:s + 500]))
        assert got and got == ref
    for bad in (np.zeros((5, 3)), np.zeros(5), [["a", "b"]]):
        with pytest.raises(ConfigError) as native:
            a.process(bad)
        with pytest.raises(ConfigError) as method:
            ContractionDetector.process(b, bad)
        assert str(native.value) == str(method.value)

    class Counting(ContractionDetector):
        calls = 0

        def process(self, block):
            Counting.calls += 1
            return super().process(block)

    Counting(2, RATE).process(x[:100])
    assert Counting.calls == 1



def test_process_builds_event_objects_like_convert():
    """The native ``process`` builds the event objects straight from the
    event buffer (no tuples, no ``_convert`` call): the same objects as the
    tuple path + ``_convert``, MVC percentages included; a subclass that
    overrides ``_convert`` still gets its own."""
    x, _ = sim(7, channels=2, duration=10.0)
    a, b = ContractionDetector(2, RATE), ContractionDetector(2, RATE)
    for det in (a, b):
        det.calibrate_mvc(x[3000:9000])
    got, ref = [], []
    for s in range(0, len(x), 32):
        got += a.process(x[s:s + 32])
        ref += b._convert(b._core.process_fast(x[s:s + 32]) or [], False)
    assert len(got) >= 4 and got == ref
    assert [repr(g) for g in got] == [repr(r) for r in ref]        # np.float64 pct kept
    assert all(e.contraction.pct_mvc is not None for e in got if isinstance(e, Offset))

    class Tagged(ContractionDetector):
        def _convert(self, recs, truncated):
            return [("tag", r) for r in super()._convert(recs, truncated)]

    t = Tagged(2, RATE)
    t.calibrate_mvc(x[3000:9000])
    tagged = []
    for s in range(0, len(x), 32):
        tagged += t.process(x[s:s + 32])
    assert [e for _, e in tagged] == ref and all(tag == "tag" for tag, _ in tagged)


def test_event_builder_failure_leaves_the_stream_aligned():
    """An exception while ``process`` builds the event objects (here a
    Ctrl-C in the MVC lookup) loses that block's events, as ``process`` +
    ``_convert`` would, but the block is still run to its end and nothing of
    it is left behind: the sample count stays aligned and later blocks give
    exactly the events they give without the failure (the records were once
    left in the event buffer, handed out again and appended to, past its
    end, by every further failing call)."""
    x, _ = sim(7, channels=2, duration=20.0)
    blocks = [x[s:s + 500] for s in range(0, len(x), 500)]
    ref_det = ContractionDetector(2, RATE)
    ref_det.calibrate_mvc(x[3000:9000])
    ref = [ref_det.process(b) for b in blocks]

    class Flaky:
        def __init__(self, mvc, fails):
            self.mvc, self.fails = mvc, fails

        def __getitem__(self, c):
            if self.fails:
                self.fails -= 1
                raise KeyboardInterrupt
            return self.mvc[c]

    for fails in (1, 3, 1000):
        det = ContractionDetector(2, RATE)
        det.calibrate_mvc(x[3000:9000])
        det._core.set_mvc(Flaky(det.mvc, fails))
        failed = 0
        for k, b in enumerate(blocks):
            try:
                got = det.process(b)
            except KeyboardInterrupt:
                failed += 1
                assert any(isinstance(e, Offset) for e in ref[k])
            else:
                assert got == ref[k]
            assert det.sample_count == min(len(x), 500 * (k + 1))
        assert failed == min(fails, sum(any(isinstance(e, Offset) for e in r) for r in ref))
        assert failed >= 1


def test_event_types_checked_before_native_building():
    """``make_events`` / ``bind`` read the classes and field names without
    checks while building: a types tuple that does not fit (a subclass with
    one more field, a short tuple, a list of names) is a TypeError up front,
    not a read past a tuple's end (it crashed the interpreter)."""
    from bridge import _emg
    from bridge.emg import _EVENT_TYPES

    @dataclasses.dataclass(frozen=True, slots=True)
    class Tagged(Onset):
        tag: str = ""

    bad = [(Tagged, tuple(f.name for f in dataclasses.fields(Tagged))) + _EVENT_TYPES[2:],
           _EVENT_TYPES[:4], (1,) + _EVENT_TYPES[1:],
           _EVENT_TYPES[:3] + (list(_EVENT_TYPES[3]),) + _EVENT_TYPES[4:]]
    rec = [(1, 0, 10, 40, 10, 1.0, 0.5, 0), (2, 0, 50, 60, 10, 1.0, 0.5, 0)]
    det = ContractionDetector(1, RATE)
    for types in bad:
        with pytest.raises(TypeError):
            _emg.make_events(rec, RATE, None, False, types)
        with pytest.raises(TypeError):
            det._core.bind(lambda b: b, det._convert, types, RATE)
    assert _emg.make_events(rec, RATE, None, False, _EVENT_TYPES)[1].contraction.onset_sample == 10


def test_events_built_natively_equal_dataclass_constructors():
    """The event objects are built without the dataclasses' __init__: every
    field as the constructors would set it (MVC percentages, censored
    onsets, truncation at finish included)."""
    x, _ = sim(7, channels=2, duration=10.0)
    det = ContractionDetector(2, RATE)
    det.calibrate_mvc(x[3000:9000])
    recs = list(det._core.process_fast(x[:15000]))
    recs += [(1, 0, 0, 900, 0, 2.5, 1.5, 1)]              # a censored onset
    tail = list(det._core.finish()) + [(2, 1, 17000, 16990, 16000, 3.0, 2.0, 1)]
    assert any(r[0] == 1 for r in recs) and any(r[0] == 2 for r in recs) and tail
    r, mvc = det.rate, det.mvc

    def reference(recs, truncated):
        out = []
        for kind, ch, sample, emitted, onset, peak, mean, flags in recs:
            cens = bool(flags & 1)
            if kind == 1:
                out.append(Onset(ch, sample, sample / r, (emitted - sample) / r, emitted, peak,
                                 mean, censored_onset=cens))
            else:
                c = Contraction(ch, onset / r, sample / r, peak, mean, 100.0 * mean / mvc[ch],
                                onset, sample, truncated, cens)
                out.append(Offset(ch, sample, sample / r, max(0, emitted - sample) / r, emitted, c))
        return out

    for got_recs, truncated in ((recs, False), (tail, True)):
        got, ref = det._convert(got_recs, truncated), reference(got_recs, truncated)
        assert got == ref
        for g, f in zip(got, ref):
            assert type(g) is type(f) and repr(g) == repr(f)
            with pytest.raises(AttributeError):
                g.channel = 5                               # still frozen


def test_nonfinite_hold_bridges_gaps():
    x, truth = sim(8, channels=2, duration=8.0)
    y = x.copy()
    y[3000:3040] = np.nan
    y[7000, 0] = np.inf
    det = ContractionDetector(2, RATE, nonfinite="hold")
    events = det.process(y)
    assert det.nonfinite == 81 and det.sample_count == len(y)
    assert len(events) >= 2
    clean = ContractionDetector(2, RATE).process(x)
    assert len(events) == len(clean)                       # a 20 ms gap changes nothing big
    # state stays finite: later data still detected
    base = det.baseline()
    assert all(np.isfinite(b[0]) for b in base)


def test_input_conversion_and_errors():
    x, _ = sim(9, channels=2, duration=6.0)
    ref = as_tuples(ContractionDetector(2, RATE).process(x))
    assert as_tuples(ContractionDetector(2, RATE).process(np.asfortranarray(x))) == ref
    assert as_tuples(ContractionDetector(2, RATE).process(x.astype(np.float32).astype(np.float64))) \
        == as_tuples(ContractionDetector(2, RATE).process(x.astype(np.float32)))
    counts = np.round(x * 1000).astype(np.int16)
    assert len(ContractionDetector(2, RATE).process(counts)) == len(ref)
    det = ContractionDetector(2, RATE)
    assert det.process(np.zeros((0, 2))) == []
    with pytest.raises(ConfigError, match="channels"):
        det.process(np.zeros((10, 3)))
    with pytest.raises(ConfigError, match="2-D"):
        det.process(np.zeros(10))
    with pytest.raises(ConfigError, match="numeric"):
        det.process(np.array([["a", "b"]]))
    # 1-D accepted for a single channel
    assert ContractionDetector(1, RATE).process(np.zeros(100)) == []


@pytest.mark.parametrize("kwargs", [
    dict(rate=0.0), dict(rate=-1.0), dict(rate=float("inf")), dict(k_on=1.0, k_off=2.0),
    dict(k_refine=3.0), dict(nonfinite="ignore"), dict(min_gap=-1.0), dict(min_on=0.0),
    dict(baseline_quiet=0.0), dict(baseline_window=-1.0), dict(k_on=float("nan")),
    dict(off_fraction=1.0), dict(min_ratio=-1.0), dict(min_gap=float("nan")),
    dict(extrapolate=-1.0), dict(remerge_fraction=-0.5), dict(confirm_mean=float("nan")),
    dict(rearm_rest=-0.1), dict(rearm_rest=float("inf")),
    dict(baseline_subwindows=0), dict(baseline_subwindows=17), dict(baseline_subwindows=2.5),
    dict(baseline_sub_keep=6), dict(baseline_window=0.001),
])
def test_bad_config(kwargs):
    args = dict(rate=RATE)
    args.update(kwargs)
    with pytest.raises(ConfigError):
        ContractionDetector(2, args.pop("rate"), **args)


def test_detect_contractions_inputs():
    x, _ = simulate_emg(RATE, 6.0, [Burst(0, 2.0, 4.0, 0.4)], 1, snr_db=15, seed=1)
    a = detect_contractions(x[:, 0], RATE)
    assert a == detect_contractions(x, RATE) and len(a) == 1
    assert detect_contractions(np.zeros((0, 3)), RATE) == []
    with pytest.raises(ConfigError):
        detect_contractions(np.zeros((2, 2, 2)), RATE)
    with pytest.raises(ConfigError):
        detect_contractions(x, 0)
    with pytest.raises(SignalError):
        detect_contractions(np.full(100, np.nan), RATE)
    rest, _ = simulate_emg(RATE, 1.0, [], 1, snr_db=None, noise_rms=0.01, seed=2)
    b = detect_contractions(x, RATE, rest=rest[:, 0], mvc=x[4000:8000, 0])
    assert len(b) == 1 and b[0].pct_mvc is not None


def _partial_relaxation(seed):
    """Two reps with a 1 s dip to ~20 % of their level (far above rest) in
    between, then full rest: the case the remerge/re-arm rule is for."""
    bursts = [Burst(0, 2.0, 3.5, 0.4, rise=0.05, fall=0.05),
              Burst(0, 3.5, 4.5, 0.08, rise=0.05, fall=0.05),
              Burst(0, 4.5, 6.0, 0.4, rise=0.05, fall=0.05)]
    x, _ = simulate_emg(RATE, 9.0, bursts, 1, noise_rms=0.01, seed=seed)
    return x


@pytest.mark.parametrize("seed", [21, 22])
def test_dip_between_reps_splits_them(seed):
    x = _partial_relaxation(seed)
    split = detect_contractions(x, RATE)
    merged = detect_contractions(x, RATE, remerge_fraction=0.0)
    # without the rule the dip (8x the rest noise) holds the contraction open
    assert len(merged) == 1
    # with it: two contractions, the second starting at the second rep (not
    # re-triggered by the dip level right after the first offset)
    assert len(split) == 2
    assert 1.9 < split[0].onset < 2.1 and 3.4 < split[0].offset < 3.9
    assert 4.3 < split[1].onset < 4.6 and split[1].offset > 5.9
    det = ContractionDetector(1, RATE)
    env = EmgFilter(1, RATE).process(x)
    ref = reference_events(env, det)
    got = as_tuples(det.process(x))
    ref.sort(key=lambda r: (r[3], r[1]))
    assert_same_events(got, ref)


@pytest.mark.parametrize("seed", [5, 6])
def test_low_tone_is_not_confirmed(seed):
    """Tone that only flickers across the onset threshold (mean below it) is
    not a contraction with confirm_mean; a real burst after it still is."""
    bursts = [Burst(0, 3.0, 6.0, 0.011, rise=0.05, fall=0.05),
              Burst(0, 7.0, 8.5, 0.3, rise=0.05, fall=0.05)]
    x, _ = simulate_emg(RATE, 10.0, bursts, 1, noise_rms=0.01, seed=seed)
    env = EmgFilter(1, RATE).process(x)[:, 0]
    det = ContractionDetector(1, RATE)
    det.process(x[:int(2.9 * RATE)])
    _, _, on, _ = det.baseline()[0]
    tone = env[int(3.5 * RATE):int(5.5 * RATE)]
    # the scenario: the tone crosses the onset threshold often, its mean does not
    assert (tone > on).mean() > 0.01 and tone.mean() < 0.85 * on
    plain = detect_contractions(x, RATE, confirm_mean=0.0)
    got = detect_contractions(x, RATE)
    assert any(2.5 < c.onset < 6.0 for c in plain)
    assert not any(c.onset < 6.5 for c in got)
    assert len(got) == 1 and 6.8 < got[0].onset < 7.1


# --------------------------------------------------------------------------
# Recordings that start mid-contraction (left-censored onsets)
# --------------------------------------------------------------------------
def _start_mid_contraction(seed, hum=0.0, first=(0.0, 3.0), rate=RATE):
    """Channel 0 is contracting from the first sample; a second rep at 6 s."""
    bursts = [Burst(0, first[0], first[1], 0.3, rise=0.0 if first[0] == 0 else 0.05, fall=0.05),
              Burst(0, 6.0, 8.0, 0.3, rise=0.05, fall=0.05)]
    x, _ = simulate_emg(rate, 10.0, bursts, 1, noise_rms=0.01, hum=hum, seed=seed)
    return x


@pytest.mark.parametrize("seed,hum", [(31, 0.0), (32, 0.05), (33, 0.0)])
def test_start_mid_contraction_is_censored(seed, hum):
    x = _start_mid_contraction(seed, hum)
    det = ContractionDetector(1, RATE)
    events = det.process(x) + det.finish()
    onsets = [e for e in events if isinstance(e, Onset)]
    cs = [e.contraction for e in events if isinstance(e, Offset)]
    assert len(onsets) == 2 and len(cs) == 2
    first = cs[0]
    assert first.censored_onset and first.onset == 0.0 and first.onset_sample == 0
    assert first.offset == pytest.approx(3.0, abs=0.2) and not first.truncated
    assert onsets[0].censored_onset and onsets[0].sample == 0
    # recognised only once the floor had learnt the rest after it: emitted late,
    # and the latency says so
    assert onsets[0].emitted_sample > 3.0 * RATE
    assert onsets[0].latency == onsets[0].emitted_sample / RATE
    assert not cs[1].censored_onset and cs[1].onset == pytest.approx(6.0, abs=0.1)
    # without the start watch the first rep is lost, the second unchanged
    off = detect_contractions(x, RATE, censor_window=0)
    assert len(off) == 1 and off[0].onset_sample == cs[1].onset_sample


@pytest.mark.parametrize("seed", [41, 42, 43, 44])
def test_rest_start_is_not_censored(seed):
    """Ordinary starts (rest, hum ringing down in the notch, wander, ECG):
    the start watch changes nothing."""
    x, _ = sim(seed, channels=2, duration=12.0, hum=0.05, ecg=0.05, wander=0.3)
    got = detect_contractions(x, RATE)
    assert got and not any(c.censored_onset for c in got)
    assert got == detect_contractions(x, RATE, censor_window=0)


@pytest.mark.parametrize("start", [0.1, 0.3])
def test_burst_in_warm_up_gets_its_own_onset(start):
    """A contraction beginning inside the first baseline window (before the
    floor exists) is found by the re-judgement with its real onset, not
    censored (before the start watch it was missed)."""
    x = _start_mid_contraction(34, first=(start, 3.0))
    got = detect_contractions(x, RATE)
    assert len(got) == 2
    assert not got[0].censored_onset and got[0].onset == pytest.approx(start, abs=0.03)
    assert detect_contractions(x, RATE, censor_window=0)[0].onset > 5.0


def test_censored_start_calibrated():
    """With a rest calibration detection runs from sample 0: a contraction
    under way at the start is confirmed at once, flagged censored because
    the envelope never sat at the baseline after it rose from zero; one
    beginning 0.2 s in keeps its onset."""
    rest, _ = simulate_emg(RATE, 2.0, [], 1, noise_rms=0.01, seed=35)
    got = detect_contractions(_start_mid_contraction(36), RATE, rest=rest)
    assert len(got) == 2 and got[0].censored_onset and got[0].onset == 0.0
    assert got[0].offset == pytest.approx(3.0, abs=0.2) and not got[1].censored_onset
    det = ContractionDetector(1, RATE)
    det.calibrate_rest(rest)
    on = [e for e in det.process(_start_mid_contraction(36)) if isinstance(e, Onset)][0]
    assert on.censored_onset and on.latency < 0.25                # not late: floor known
    late = detect_contractions(_start_mid_contraction(37, first=(0.2, 3.0)), RATE, rest=rest)
    assert not late[0].censored_onset and late[0].onset == pytest.approx(0.2, abs=0.03)


@pytest.mark.parametrize("calibrated,kw", [
    (False, {}), (True, {}), (False, {"remerge_fraction": 0.0, "confirm_mean": 0.0}),
    (False, {"envelope": "rms", "notch": None}), (False, {"censor_window": 2.2}),
])
def test_censored_start_matches_reference(calibrated, kw):
    """Start watch and re-judgement against the Python reference: channel 0
    contracting from sample 0, channel 1 from 0.3 s, channel 2 at rest."""
    bursts = [Burst(0, 0.0, 2.5, 0.3, rise=0.0), Burst(0, 5.0, 6.5, 0.3),
              Burst(1, 0.3, 2.0, 0.25), Burst(1, 4.0, 5.0, 0.3), Burst(2, 3.0, 4.0, 0.3)]
    x, _ = simulate_emg(RATE, 8.0, bursts, 3, noise_rms=0.01, hum=0.02, seed=38)
    det = ContractionDetector(3, RATE, **kw)
    rest = None
    if calibrated:
        r, _ = simulate_emg(RATE, 2.0, [], 3, noise_rms=0.01, seed=39)
        rest = det.calibrate_rest(r)
    env = det.filter.fresh().process(x)
    ref = reference_events(env, det, rest, x[0])
    ref.sort(key=lambda r: (r[3], r[1]))
    got = as_tuples(det.process(x))
    assert_same_events(got, ref)
    if kw.get("censor_window", 30.0) > 2.5:
        assert any(r[0] == 1 and r[1] == 0 and r[4] for r in ref)     # censored
        assert any(r[0] == 1 and r[1] == 1 and not r[4] and r[2] < RATE for r in ref)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_censored_start_chunk_invariance(seed):
    x = _start_mid_contraction(seed % 5, hum=0.02)
    one = ContractionDetector(1, RATE)
    ref = as_tuples(one.process(x) + one.finish())
    assert ref[0][4]                                                  # censored onset
    rng = np.random.default_rng(seed)
    det = ContractionDetector(1, RATE)
    got, pos = [], 0
    while pos < len(x):
        k = int(rng.choice([0, 1, 3, 64, 65, rng.integers(0, 3000)]))
        got += as_tuples(det.process(x[pos:pos + k]))
        pos += k
    got += as_tuples(det.finish())
    assert got == ref


def test_reset_reopens_the_start_watch_and_clear_rest():
    x = _start_mid_contraction(40)
    det = ContractionDetector(1, RATE)
    first = as_tuples(det.process(x))
    det.reset()
    assert as_tuples(det.process(x)) == first and first[0][4]
    # a rest calibration given mid-stream does not re-judge the start
    det = ContractionDetector(1, RATE)
    det.process(x[:int(1.0 * RATE)])
    rest, _ = simulate_emg(RATE, 2.0, [], 1, noise_rms=0.01, seed=41)
    det.calibrate_rest(rest)
    assert not any(isinstance(e, Onset) and e.censored_onset for e in det.process(x[int(RATE):]))
    with pytest.raises(ConfigError):
        ContractionDetector(1, RATE, censor_window=-1.0)


def _rep_tone_rep(rest_before_tone: float) -> np.ndarray:
    """Rest, rep 1, low tone (5x rest) with 60 ms dips to nothing, rep 2;
    optionally a rest between rep 1 and the tone."""
    rate = 2000.0
    t = np.arange(int(12 * rate)) / rate
    amp = np.ones_like(t)
    amp[(t >= 3) & (t < 5)] = 20
    amp[(t >= 5) & (t < 8)] = 5
    amp[(t >= 5) & (t < 5 + rest_before_tone)] = 1
    for d0 in (5.6, 6.2, 6.8, 7.4):
        amp[(t >= d0) & (t < d0 + 0.06)] = 0.0
    amp[(t >= 8) & (t < 10)] = 20
    return np.random.default_rng(11).standard_normal(len(t)) * amp * 0.01


def test_rearm_needs_rest_not_one_sample_dip():
    """After a contraction that ends without rest, a new onset must reach the
    re-arm level until the envelope is back at rest: below the offset
    threshold for min_gap in a row.  A brief dip of low tone between reps
    (60 ms of nothing; the envelope crosses the offset threshold for a few
    samples) is not rest: the tone must not start a contraction that runs
    into rep 2 (with one sample counting as rest it started at 5.65 s and
    ran to 10 s, and rep 2 had no onset of its own - UCI 3Apie/ST)."""
    cs = detect_contractions(_rep_tone_rep(0.0), 2000.0)
    assert len(cs) == 2
    assert abs(cs[0].onset - 3.0) < 0.1 and abs(cs[1].onset - 8.0) < 0.1, cs


def test_rearm_ends_after_real_rest():
    """The same tone after 0.4 s of real rest is a contraction of its own
    (the ordinary onset threshold applies again)."""
    cs = detect_contractions(_rep_tone_rep(0.4), 2000.0)
    onsets = [c.onset for c in cs]
    assert any(5.3 < o < 5.7 for o in onsets), onsets
    assert any(7.9 < o < 8.1 for o in onsets) or any(c.onset < 8 < c.offset for c in cs), onsets



def test_rearm_matches_reference_and_any_split():
    """The re-arm rule in the native core is the reference's, streamed in
    any split (the run below the offset threshold carries across blocks)."""
    x = np.column_stack([_rep_tone_rep(0.0), _rep_tone_rep(0.4), _rep_tone_rep(0.1)])
    det = ContractionDetector(3, 2000.0)
    env = EmgFilter(3, 2000.0).process(x)
    ref = reference_events(env, det, None, x[0])
    ref.sort(key=lambda r: (r[3], r[1]))
    one = as_tuples(det.process(x))
    assert_same_events(one, ref)
    rng = np.random.default_rng(3)
    det.reset()
    got, pos = [], 0
    while pos < len(x):
        k = int(rng.integers(1, 400))
        got += as_tuples(det.process(x[pos:pos + k]))
        pos += k
    assert got == one


def _group_signal(channels: int, seed: int) -> np.ndarray:
    """Bursts of mixed strength, overlapping across channels at staggered
    times (a group then holds resting, starting, active and ending lanes at
    once), plus the rep / tone / rep pattern on the last channel (re-armed
    and pending-offset states)."""
    rng = np.random.default_rng(seed)
    bursts = []
    for c in range(channels):
        t = 2.0 + 0.13 * c + rng.uniform(0, 0.3)
        while t + 1.5 < 11.5:
            dur = rng.uniform(0.3, 2.0)
            bursts.append(Burst(c, t, t + dur, rng.choice([0.02, 0.05, 0.3]),
                                rise=rng.uniform(0.02, 0.15), fall=rng.uniform(0.02, 0.1)))
            t += dur + rng.uniform(0.1, 1.5)
    x, _ = simulate_emg(RATE, 12.0, bursts, channels, snr_db=10, hum=0.02, ecg=0.05, seed=seed)
    x[:, -1] += _rep_tone_rep(0.1)
    return x


@pytest.mark.parametrize("channels", [4, 5, 8, 9, 12, 16])
@pytest.mark.parametrize("calibrated", [False, True])
def test_channel_groups_identical_to_one_by_one(channels, calibrated):
    """The detector's resting and active fast paths run channels side by
    side in vector lanes (8 with AVX-512, 4 with AVX2; emg_group8/4).  The
    events are those of the one-by-one path bit for bit, in any split."""
    x = _group_signal(channels, seed=channels + 10 * calibrated)
    runs = {}
    for width in (8, 4, 1):
        det = ContractionDetector(channels, RATE)
        used = det._core._group(width)
        if width > 1 and used < width and used > 1:
            continue   # this CPU has no such group: that width is the narrower one
        if calibrated:
            det.calibrate_rest(x[:int(1.5 * RATE)])
        rng = np.random.default_rng(width)
        got, pos = [], 0
        while pos < len(x):
            k = int(rng.integers(1, 200))
            got += as_tuples(det.process(x[pos:pos + k]))
            pos += k
        runs[used] = got
    if max(runs) == 1:
        pytest.skip("this CPU runs no channel group (no AVX2)")
    assert 1 in runs and len(runs[1]) >= 2 * channels
    for width, got in runs.items():
        assert got == runs[1], width


def _gnu_gcc_x86_64() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64") or shutil.which("gcc") is None:
        return False
    gas = subprocess.run(["gcc", "-print-prog-name=as"], capture_output=True, text=True).stdout.strip()
    ver = subprocess.run([gas or "as", "--version"], capture_output=True, text=True).stdout
    return "GNU assembler" in ver


@pytest.mark.skipif(not _gnu_gcc_x86_64(), reason="needs GCC and the GNU assembler on x86-64")
@pytest.mark.parametrize("width", [8, 4])
def test_channel_group_kernels_use_only_the_features_emg_cpu_group_checks(width, tmp_path):
    """emg_group8/4 run wherever emg_cpu_group's CPU test passes, so their
    code may use no instruction outside the features that test checks:
    GCC compiles the kernel (the extension's flags) and the GNU assembler,
    restricted to those features, rejects anything else.  (For
    target("avx512f") alone GCC 12 emitted AVX512DQ/VL's vextractf64x2: an
    illegal instruction on an AVX-512F CPU without DQ/VL, e.g. Xeon Phi.)"""
    native = Path(__file__).resolve().parent.parent / "native"
    hdr = (native / "emg_detect.h").read_text()
    body = hdr[hdr.index("static int emg_cpu_group(void)\n{"):]
    body = body[:body.index("\n}\n")]
    cut = body.index("return 8;")
    part = body[:cut] if width == 8 else body[cut:]
    feats = re.findall(r'__builtin_cpu_supports\("([a-z0-9]+)"\)', part)
    assert feats
    (tmp_path / "use.c").write_text(
        '#include "emg_detect.h"\n'
        "void use(emg_det_t *d, const double *env, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t c0,\n"
        f"         ptrdiff_t *start) {{ emg_group{width}(d, env, i0, i1, c0, start); }}\n")
    res = subprocess.run(["gcc", "-O3", "-fwrapv", "-fPIC", "-Wno-unused-function", "-I",
                          str(native), "-c", str(tmp_path / "use.c"), "-o", str(tmp_path / "use.o"),
                          "-Wa,-march=generic64+" + "+".join(feats)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang not installed")
@pytest.mark.parametrize("target,groups", [("x86_64-linux-gnu", True),
                                           ("x86_64-apple-macos10.15", False)])
def test_channel_groups_only_where_the_cpu_check_links(target, groups, tmp_path):
    """emg_cpu_group's __builtin_cpu_supports reads __cpu_model from the
    compiler runtime: libgcc or compiler-rt on Linux, but Apple's toolchain
    has none (a macOS build would link with -undefined dynamic_lookup and
    then fail to import: symbol not found '___cpu_model').  The channel
    groups, and that check, are built for x86-64 Linux only (as the CPU
    checks in emg_kernels.h); elsewhere one channel at a time, as before."""
    native = Path(__file__).resolve().parent.parent / "native"
    write_libc_stubs(tmp_path)
    (tmp_path / "use.c").write_text(
        '#include "emg_detect.h"\n'
        "int use(emg_det_t *d, const double *env, ptrdiff_t n)\n"
        "{ emg_detect(d, env, n); return emg_cpu_group(); }\n")
    res = subprocess.run(
        ["clang", "--target=" + target, "-O2", "-Wall", "-nostdinc", "-isystem", str(tmp_path),
         "-isystem", subprocess.check_output(["clang", "-print-resource-dir"], text=True).strip()
         + "/include", "-I", str(native), "-S", "-o", "-", str(tmp_path / "use.c")],
        capture_output=True, text=True)
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
    assert ("__cpu_model" in res.stdout) == groups
    assert ("emg_group8" in res.stdout) == groups and ("emg_group4" in res.stdout) == groups
