// glutebridge live dashboard: websocket updates -> canvas drawing. No libraries.
"use strict";
(function () {
  const st = {
    labels: [], emg: [], imu: [], events: [], intervals: {}, open: {}, t: 0, window: 10,
    phase: null, stance: null, link: { lost: 0, gaps: 0 }, peak: [], seen: [],
    // linkDown: the server's link_down (null while the link is up); ended: set when the
    // session is over (with link_down_at_end if the link was down then)
    linkDown: null, linkRx: 0, ended: null, goneAt: null,
  };
  // Counters for people and tests: how much the page has received and drawn.
  const gb = (window.gb = { updates: 0, emgPoints: 0, imuPoints: 0, events: 0, draws: 0,
                            lastT: 0, connected: false, scales: [], banner: "" });
  const $ = (id) => document.getElementById(id);
  let dirty = true;
  // An amplitude in mV with 3 decimals whatever its size, as the terminal, the report and the
  // CSV/JSON files give it (bridge.sinks.console.mv): 0.348 mV, 1.250 mV.
  const mV = (v) => v.toFixed(3) + " mV";

  function addEvent(e) {
    st.events.push(e);
    if (st.events.length > 200) st.events.shift();
    gb.events++;
    if (e.type === "onset") {
      st.open[e.channel] = e.time;
    } else if (e.type === "offset") {
      const c = e.contraction || {};
      (st.intervals[e.channel] = st.intervals[e.channel] || []).push(
        [c.onset !== undefined ? c.onset : st.open[e.channel], e.time]);
      delete st.open[e.channel];
    }
  }

  function apply(msg) {
    if (msg.type === "snapshot") {
      st.emg = []; st.imu = []; st.events = []; st.intervals = {}; st.open = {};
    }
    st.labels = msg.labels || st.labels;
    st.window = msg.window || st.window;
    for (const p of msg.emg) st.emg.push(p);
    for (const p of msg.imu) st.imu.push(p);
    for (const e of msg.events) addEvent(e);
    gb.emgPoints += msg.emg.length;
    gb.imuPoints += msg.imu.length;
    st.t = Math.max(st.t, msg.t || 0);
    st.phase = msg.phase; st.stance = msg.stance; st.link = msg.link || st.link;
    st.linkDown = msg.link_down || null;
    st.linkRx = performance.now();
    if (msg.type === "snapshot" || msg.ended) st.ended = msg.ended || null;
    const lo = st.t - st.window;
    while (st.emg.length && st.emg[0][0] < lo) st.emg.shift();
    while (st.imu.length && st.imu[0][0] < lo) st.imu.shift();
    for (const ch in st.intervals) {
      st.intervals[ch] = st.intervals[ch].filter((iv) => iv[1] >= lo);
    }
    gb.updates++;
    gb.lastT = st.t;
    dirty = true;
  }

  function sizeCanvas(c) {
    const r = window.devicePixelRatio || 1;
    const w = Math.round(c.clientWidth * r), h = Math.round(c.clientHeight * r);
    if (w && (c.width !== w || c.height !== h)) { c.width = w; c.height = h; }
    const ctx = c.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    return ctx;
  }

  function drawEmg() {
    const c = $("emg"), ctx = sizeCanvas(c), W = c.width, H = c.height;
    const n = st.labels.length || 1, left = 110, rowH = (H - 24) / n;
    const t1 = st.t, t0 = t1 - st.window;
    const sx = (t) => left + (t - t0) / (t1 - t0) * (W - left - 8);
    ctx.clearRect(0, 0, W, H);
    ctx.font = "12px system-ui, sans-serif";
    for (let i = 0; i < n; i++) {
      const y0 = 4 + i * rowH, base = y0 + rowH - 4;
      // activation shading from the detector's onsets/offsets
      ctx.fillStyle = "rgba(46,157,79,0.20)";
      for (const iv of st.intervals[i] || []) {
        const a = Math.max(sx(iv[0]), left), b = sx(iv[1]);
        if (b > left) ctx.fillRect(a, y0, b - a, rowH - 4);
      }
      if (st.open[i] !== undefined) {
        const a = Math.max(sx(st.open[i]), left);
        ctx.fillRect(a, y0, W - 8 - a, rowH - 4);
      }
      // Row scale: the window's peak, but never so small that rest noise fills the row --
      // at least 8x the row's median (its rest level) and 30 % of the strongest envelope
      // seen on any row this session -- decaying slowly so the picture does not jump.
      const vals = st.emg.map((p) => p[i + 1] || 0).sort((a, b) => a - b);
      const med = vals.length ? vals[vals.length >> 1] : 0;
      const peak = vals.length ? vals[vals.length - 1] : 0;
      st.seen[i] = Math.max(st.seen[i] || 0, peak);
      const strongest = Math.max(0, ...st.seen.filter((v) => v !== undefined));
      const target = Math.max(peak, 8 * med, 0.3 * strongest, 1e-9);
      st.peak[i] = Math.max((st.peak[i] || 0) * 0.995, target);
      const scale = (rowH - 10) / st.peak[i];
      ctx.strokeStyle = "#d6dbe3"; ctx.beginPath(); ctx.moveTo(left, base);
      ctx.lineTo(W - 8, base); ctx.stroke();
      ctx.strokeStyle = "#1d2430"; ctx.lineWidth = 1.2; ctx.beginPath();
      let first = true;
      for (const p of st.emg) {
        const x = sx(p[0]), y = base - (p[i + 1] || 0) * scale;
        if (first) { ctx.moveTo(x, y); first = false; } else ctx.lineTo(x, y);
      }
      ctx.stroke();
      ctx.fillStyle = "#1d2430";
      ctx.fillText((st.labels[i] || "ch" + i).replace(/_/g, " "), 6, y0 + rowH / 2 + 4);
      // Full scale of the row, in mV like the envelope on the wire, the terminal,
      // the report and the CSV export.
      const full = mV(st.peak[i]);
      gb.scales[i] = full;
      ctx.fillStyle = "#5b6575";
      ctx.fillText(full, 6, y0 + rowH / 2 + 18);
    }
    ctx.fillStyle = "#5b6575";
    for (let s = Math.ceil(t0); s <= t1 - 0.5; s += 2) {
      ctx.fillText(String(s), sx(s) - 4, H - 6);
    }
  }

  function drawSway() {
    const c = $("sway"), ctx = sizeCanvas(c), W = c.width, H = c.height;
    ctx.clearRect(0, 0, W, H);
    ctx.strokeStyle = "#d6dbe3"; ctx.strokeRect(0.5, 0.5, W - 1, H - 1);
    ctx.beginPath(); ctx.moveTo(W / 2, 0); ctx.lineTo(W / 2, H); ctx.moveTo(0, H / 2);
    ctx.lineTo(W, H / 2); ctx.stroke();
    const pts = st.imu.slice(-Math.round(st.window * 50));
    if (pts.length < 3) return;
    let map = 0, mml = 0;
    for (const p of pts) { map += p[1]; mml += p[2]; }
    map /= pts.length; mml /= pts.length;
    let saa = 0, smm = 0, sam = 0;
    const radii = [];
    for (const p of pts) {
      const a = p[1] - map, m = p[2] - mml;
      saa += a * a; smm += m * m; sam += a * m; radii.push(Math.hypot(a, m));
    }
    // scale to the bulk of the path: a lift-off transient must not shrink the sway to a dot
    radii.sort((x, y) => x - y);
    const lim = Math.max(0.05, radii[Math.floor(0.97 * (radii.length - 1))] * 1.3);
    const k = pts.length - 1; saa /= k; smm /= k; sam /= k;
    const s = (Math.min(W, H) / 2 - 10) / (lim * 1.1);
    ctx.save(); ctx.beginPath(); ctx.rect(0, 0, W, H); ctx.clip();
    ctx.strokeStyle = "rgba(47,111,191,0.8)"; ctx.lineWidth = 1; ctx.beginPath();
    pts.forEach((p, j) => {
      const x = W / 2 + (p[2] - mml) * s, y = H / 2 - (p[1] - map) * s;
      if (j) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
    // 95 % ellipse of the window (chi-square, 2 dof: 5.991) from the covariance
    const tr = smm + saa, det = smm * saa - sam * sam;
    const l1 = tr / 2 + Math.sqrt(Math.max(tr * tr / 4 - det, 0));
    const l2 = Math.max(tr - l1, 0);
    const ang = Math.atan2(l1 - smm, sam || 1e-12);
    ctx.strokeStyle = "#d9822b"; ctx.lineWidth = 2; ctx.beginPath();
    ctx.ellipse(W / 2, H / 2, Math.sqrt(5.991 * l1) * s, Math.sqrt(5.991 * l2) * s, -ang, 0,
                2 * Math.PI);
    ctx.stroke();
    ctx.restore();
    ctx.fillStyle = "#5b6575"; ctx.font = "11px system-ui, sans-serif";
    ctx.fillText("ML \u2192 (m/s\u00b2), \u00b1" + (lim * 1.1).toFixed(2), 6, H - 6);
    ctx.fillText("AP \u2191", 6, 14);
  }

  function drawText() {
    $("updates").textContent = gb.updates;
    $("time").textContent = st.t.toFixed(1);
    $("lost").textContent = st.link.lost;
    $("phase").textContent = st.phase ? st.phase.name + (st.phase.arg ? " " + st.phase.arg : "")
                                      : "-";
    const s = st.stance;
    if (s) {
      const goal = (s.result && s.result.goal) || s.goal || 30;
      let shown, info;
      if (s.result) {
        shown = s.result.time_achieved;
        info = s.leg + " leg: " + (s.result.completed ? "goal met" : "touchdown") + " - " +
               (shown === null ? "?" : shown.toFixed(1)) + " of " + goal + " s";
      } else if (s.start !== null && s.start !== undefined) {
        const first = s.touchdowns.length ? s.touchdowns[0] : null;
        shown = Math.min((first !== null ? first : st.t) - s.start, goal);
        info = s.leg + " leg standing" + (first !== null ? " - touchdown at " +
               (first - s.start).toFixed(1) + " s" : "");
      } else {
        shown = null;
        info = s.leg + " leg: waiting for the foot to lift";
      }
      $("timer").innerHTML = (shown === null ? "--" : shown.toFixed(1)) +
                             "<small> / " + goal + " s</small>";
      $("stanceinfo").textContent = info;
    }
    const ul = $("events");
    const last = st.events.slice(-14).reverse();
    ul.innerHTML = "";
    for (const e of last) {
      const li = document.createElement("li");
      li.className = e.type;
      if (e.type === "link") li.className += " " + e.state;
      const what = e.type === "onset" || e.type === "offset" ? e.muscle.replace(/_/g, " ") + " " + e.type
                 : e.type === "link" ? e.text || "link " + e.state
                 : e.type === "phase" ? "phase " + e.phase + (e.arg ? " " + e.arg : "")
                 : e.type === "gap" ? "lost " + e.n_samples + " samples (" + e.reason + ")"
                 : e.type.replace(/_/g, " ") + (e.leg ? " (" + e.leg + ")" : "");
      li.innerHTML = '<span class="t">' + (e.time === null ? "" : e.time.toFixed(2)) +
                     "</span>";
      li.appendChild(document.createTextNode(what));
      ul.appendChild(li);
    }
    document.title = "glutebridge live \u00b7 " + gb.updates + " updates";
  }

  // The link banner. Its detail lines are the terminal's (bridge.sinks.console
  // link_state_text for the latest change, link_down_text at the end of the session).
  function drawBanner() {
    const d = st.linkDown, e = st.ended;
    let head = "", detail = "", ended = false;
    if (e) {
      if (e.text) { head = "Session ended with the link down"; detail = e.text; ended = true; }
    } else if (d) {
      // counts on between the server's updates, and stops when the page loses the server
      const now = st.goneAt !== null ? st.goneAt : performance.now();
      const gone = d.down_for + (d.age || 0) + Math.max(0, now - st.linkRx) / 1000;
      head = "Link LOST: " + d.device + " \u2014 no data since " + d.since.toFixed(1) +
             " s (session time), for " + gone.toFixed(0) + " s";
      detail = d.text;
      if (st.goneAt !== null) {
        head = "Dashboard disconnected while the link was down. " + head;
        ended = true;
      }
    }
    const b = $("linkbanner");
    b.hidden = !head;
    b.className = ended ? "ended" : "";
    if ($("linkhead").textContent !== head) $("linkhead").textContent = head;
    if ($("linkdetail").textContent !== detail) $("linkdetail").textContent = detail;
    gb.banner = head ? head + "\n" + detail : "";
  }

  function frame() {
    if (dirty) {
      dirty = false;
      try { drawEmg(); drawSway(); drawText(); drawBanner(); gb.draws++; } catch (err) { gb.error = String(err); }
    }
    requestAnimationFrame(frame);
  }

  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onopen = () => {
      gb.connected = true; st.goneAt = null;
      $("conn").textContent = "live"; $("conn").className = "pill on";
    };
    ws.onmessage = (m) => { try { apply(JSON.parse(m.data)); } catch (err) { gb.error = String(err); } };
    ws.onclose = () => {
      gb.connected = false; $("conn").className = "pill";
      $("conn").textContent = st.ended ? "session ended" : "disconnected";
      if (st.goneAt === null) st.goneAt = performance.now();
      drawBanner();
      setTimeout(connect, 1000);
    };
  }
  // Draw on animation frames, and on a timer too: hidden/headless tabs may not get frames.
  requestAnimationFrame(frame);
  setInterval(() => { if (dirty) { dirty = false; drawEmg(); drawSway(); drawText(); gb.draws++; } }, 100);
  // the banner's "for N s" counts on while no updates come (the link is down)
  setInterval(() => { try { drawBanner(); } catch (err) { gb.error = String(err); } }, 250);
  connect();
})();
