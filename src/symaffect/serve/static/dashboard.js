// symaffect live dashboard: trajectories, valence-arousal plane, quality badges, segments,
// the listener's own ratings of ended segments and the live calibration.
// Data: GET /api/sessions/{id} and /predictions once, then server-sent events from /stream.
// Everything typed is checked by the server; its one-line answer is shown beside the form.
// The ratings, quadrant codes, colours and the Neutral box come from the server
// (symaffect.spec, in the page's data-affect attribute); none is written here.
"use strict";

(function () {
  const body = document.body;
  const sessionId = body.dataset.session;
  if (!sessionId) return;
  const MODALITIES = (body.dataset.modalities || "").split(",").filter(Boolean);
  const AFFECT = JSON.parse(body.dataset.affect);
  const TASKS = AFFECT.ratings;
  const COLORS = AFFECT.rating_colors;
  const THRESHOLD = AFFECT.threshold, BAND = AFFECT.neutral_band;
  const QUADS = AFFECT.quadrants.filter(q => q.axes);  // Q1..Q4; Neutral has no axes
  const QCOLORS = {};
  AFFECT.quadrants.forEach(q => { QCOLORS[q.code] = q.color; });
  // "HV-LA" -> "high V, low A"
  const axesWords = axes => axes.split("-").map(p => (p[0] === "H" ? "high " : "low ") + p.slice(1)).join(", ");
  const TRAIL = 40;
  const token = new URLSearchParams(window.location.search).get("token");

  const state = { n: 0, lastT: null, lastRow: null, segments: [], trail: [], ended: false, lastArrival: 0, hop: 1,
    ratings: {}, minRated: 2, calib: null, participant: null, digest: null, offers: [] };
  const RATED = ["valence", "arousal", "liking"];

  function url(path, params) {
    const p = new URLSearchParams(params || {});
    if (token) p.set("token", token);
    const q = p.toString();
    return q ? path + "?" + q : path;
  }
  function $(id) { return document.getElementById(id); }
  function fmtClock(s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const mm = (h ? String(m).padStart(2, "0") : String(m)), ss = String(sec).padStart(2, "0");
    return (h ? h + ":" : "") + mm + ":" + ss;
  }
  function num(x, d) { return (x === null || x === undefined || !isFinite(x)) ? "—" : Number(x).toFixed(d === undefined ? 1 : d); }

  // ---- plots ----
  const trajLayout = {
    margin: { l: 50, r: 12, t: 34, b: 44 },
    xaxis: { title: { text: "time since session start (min)" }, zeroline: false, rangemode: "tozero" },
    yaxis: { title: { text: "estimated rating (1-9)" }, range: [0.8, 9.2], tick0: 1, dtick: 2, zeroline: false },
    legend: { orientation: "h", x: 0, y: 1.1 },
    shapes: [], annotations: [], hovermode: "x unified",
    title: { text: "Trajectories", font: { size: 13 }, x: 0.99, xanchor: "right", y: 0.98 },
  };
  Plotly.newPlot("traj", TASKS.map(k => ({
    x: [], y: [], name: k, mode: "lines", line: { color: COLORS[k], width: 2 },
    hovertemplate: "%{y:.1f}",
  })), trajLayout, { displayModeBar: false, responsive: true });

  function planeLayout() {
    const t = THRESHOLD;
    const shapes = QUADS.map(q => {
      const [x0, x1] = q.axes.startsWith("HV") ? [t, 9] : [1, t];
      const [y0, y1] = q.axes.endsWith("HA") ? [t, 9] : [1, t];
      return { type: "rect", layer: "below", x0, x1, y0, y1, line: { width: 0 }, fillcolor: q.color, opacity: 0.08, name: q.code };
    });
    shapes.push({ type: "rect", layer: "below", x0: t - BAND, x1: t + BAND, y0: t - BAND, y1: t + BAND, name: "Neutral",
      line: { color: QCOLORS.Neutral, width: 1.5, dash: "dash" }, fillcolor: QCOLORS.Neutral, opacity: 0.25 });
    shapes.push({ type: "line", x0: t, x1: t, y0: 1, y1: 9, line: { color: "#999", width: 1 } },
      { type: "line", x0: 1, x1: 9, y0: t, y1: t, line: { color: "#999", width: 1 } });
    const annotations = QUADS.map(q => ({
      x: q.axes.startsWith("HV") ? (t + 9) / 2 : (1 + t) / 2, y: q.axes.endsWith("HA") ? 8.7 : 1.3,
      text: q.code + " · " + axesWords(q.axes), showarrow: false, font: { size: 11, color: q.color } }));
    annotations.push({ x: t, y: t + BAND, yanchor: "bottom", text: "Neutral", showarrow: false,
      font: { size: 10, color: "#666" } });
    return {
      margin: { l: 50, r: 12, t: 34, b: 44 },
      xaxis: { title: { text: "valence" }, range: [1, 9], dtick: 1, zeroline: false, constrain: "domain", fixedrange: true },
      yaxis: { title: { text: "arousal" }, range: [1, 9], dtick: 1, zeroline: false, scaleanchor: "x", constrain: "domain", fixedrange: true },
      shapes, annotations,
      showlegend: false,
      title: { text: "Current state (valence-arousal plane)", font: { size: 13 }, x: 0.5, y: 0.98 },
    };
  }
  Plotly.newPlot("plane", [
    { x: [], y: [], mode: "lines+markers", line: { color: "#aab", width: 1 }, marker: { size: 4, color: "#99a" }, hoverinfo: "skip", name: "recent" },
    { x: [], y: [], mode: "markers", marker: { size: 18, color: "#222", line: { color: "#fff", width: 2 } }, name: "now",
      hovertemplate: "valence %{x:.1f}<br>arousal %{y:.1f}<extra></extra>" },
  ], planeLayout(), { displayModeBar: false, responsive: true });

  // ---- segments ----
  function segmentShapes() {
    const tEnd = state.lastT === null ? 0 : state.lastT;
    const shapes = [], ann = [];
    state.segments.forEach((s, i) => {
      const end = (s.end === null || s.end === undefined) ? Math.max(tEnd, s.start) : s.end;
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: s.start / 60, x1: end / 60, y0: 0, y1: 1,
        fillcolor: i % 2 ? "#f6e3cf" : "#d9e6f5", opacity: 0.6, line: { width: 0 }, layer: "below" });
      // alternate label heights so that labels of neighbouring segments do not collide
      ann.push({ xref: "x", yref: "paper", x: (s.start + end) / 120, y: i % 2 ? 0.955 : 0.995, yanchor: "top", showarrow: false,
        text: s.track.length > 30 ? s.track.slice(0, 28) + "…" : s.track, font: { size: 11, color: "#333" } });
    });
    return { shapes, annotations: ann };
  }
  function redrawSegments() {
    Plotly.relayout("traj", segmentShapes());
    updateNowPlaying();
  }
  function updateNowPlaying() {
    const t = state.lastT;
    const el = $("now-playing");
    if (t === null) { el.textContent = ""; return; }
    const cur = state.segments.filter(s => s.start <= t && (s.end === null || s.end === undefined || t < s.end));
    el.textContent = cur.length ? "♪ " + cur[cur.length - 1].track : "no music segment";
  }

  // ---- quality ----
  function updateBadges(row) {
    const used = new Set(row ? (row.modalities_used || []) : []);
    const flags = {};
    (row ? (row.flags || []) : []).forEach(f => {
      const i = String(f).indexOf(":");
      const m = i > 0 ? f.slice(0, i) : "stream";
      (flags[m] = flags[m] || []).push(i > 0 ? f.slice(i + 1) : f);
    });
    const stale = !state.ended && row && (Date.now() - state.lastArrival) > Math.max(5000, 4000 * state.hop);
    MODALITIES.forEach(m => {
      const el = $("badge-" + m);
      if (!el) return;
      let cls, title;
      if (!row) { cls = "unknown"; title = "no data yet"; }
      else if (stale) { cls = "unknown"; title = "no new predictions"; }
      else if (!used.has(m)) { cls = "dropped"; title = "dropped" + (flags[m] ? ": " + flags[m].join(", ") : " (not in this prediction)"); }
      else if (flags[m]) { cls = "degraded"; title = "flagged: " + flags[m].join(", "); }
      else { cls = "ok"; title = "ok"; }
      el.className = "badge " + cls;
      el.dataset.state = cls;
      el.title = title;
      el.textContent = m + (cls === "ok" ? " ✓" : cls === "dropped" ? " ✕" : cls === "degraded" ? " !" : "");
    });
  }
  const seenQuality = new Set();
  function logQuality(rows) {
    const box = $("quality-log");
    rows = rows.filter(r => !seenQuality.has(r.id));
    rows.forEach(r => seenQuality.add(r.id));
    rows.slice(-20).forEach(r => {
      const d = document.createElement("div");
      d.textContent = fmtClock(r.t || 0) + "  " + (r.modality || "stream") + ": " + (r.flag || "") + (r.detail ? " — " + r.detail : "");
      box.prepend(d);
    });
    while (box.childNodes.length > 50) box.removeChild(box.lastChild);
  }

  // ---- predictions ----
  function addPredictions(rows) {
    rows = rows.filter(r => state.lastT === null || r.t > state.lastT);
    if (!rows.length) return;
    const gap = (a, b) => state.n > 2 && (b - a) > 2.5 * state.hop;
    const xs = TASKS.map(() => []), ys = TASKS.map(() => []);
    let prev = state.lastT;
    rows.forEach(r => {
      if (prev !== null && gap(prev, r.t)) TASKS.forEach((k, i) => { xs[i].push((prev + r.t) / 120); ys[i].push(null); });
      TASKS.forEach((k, i) => { xs[i].push(r.t / 60); ys[i].push(r[k] === undefined ? null : r[k]); });
      if (prev !== null && r.t > prev) state.hop = 0.9 * state.hop + 0.1 * (r.t - prev);
      prev = r.t;
    });
    Plotly.extendTraces("traj", { x: xs, y: ys }, [0, 1, 2]);
    state.n += rows.length;
    state.lastT = rows[rows.length - 1].t;
    state.lastRow = rows[rows.length - 1];
    state.lastArrival = Date.now();
    rows.forEach(r => { if (r.valence !== null && r.arousal !== null) state.trail.push([r.valence, r.arousal]); });
    state.trail = state.trail.slice(-TRAIL);
    const last = state.lastRow;
    Plotly.restyle("plane", {
      x: [state.trail.map(p => p[0]), [last.valence]], y: [state.trail.map(p => p[1]), [last.arousal]],
      "marker.color": ["#99a", QCOLORS[last.quadrant] || "#222"],
    }, [0, 1]);
    $("v-valence").textContent = num(last.valence);
    $("v-arousal").textContent = num(last.arousal);
    $("v-liking").textContent = num(last.liking);
    const quadrant = $("v-quadrant");
    quadrant.textContent = last.quadrant || "—";
    quadrant.dataset.quadrant = last.quadrant || "";
    quadrant.style.color = QCOLORS[last.quadrant] || "";
    $("v-confidence").textContent = num(last.confidence, 2);
    $("v-time").textContent = fmtClock(last.t);
    $("n-points").textContent = String(state.n);
    $("v-model").textContent = last.model_label || "—";
    const startInput = document.querySelector("#segment-form input[name=start]");
    if (startInput) startInput.placeholder = "now (" + last.t.toFixed(0) + ")";
    body.dataset.points = String(state.n);
    updateBadges(last);
    if (state.segments.some(s => s.end === null || s.end === undefined)) redrawSegments(); else updateNowPlaying();
  }

  // ---- connection ----
  function setConn(cls, text) { const el = $("conn"); el.className = "conn " + cls; el.textContent = text; }

  async function start() {
    const res = await fetch(url("/api/sessions/" + sessionId));
    if (!res.ok) { setConn("off", "error " + res.status); return; }
    const info = await res.json();
    const ses = info.session || {};
    $("session-title").textContent = "Session #" + sessionId + " · " + (ses.participant || "") + (ses.model ? " · " + ses.model : "");
    state.segments = info.segments || [];
    state.participant = ses.participant || null;
    state.digest = (ses.meta || {}).model_sha256 || null;
    state.minRated = info.min_rated || 2;
    setRatings(info.ratings || []);
    setCalibration(info.calibration || null);
    logQuality(info.quality || []);
    const pr = await fetch(url("/api/sessions/" + sessionId + "/predictions"));
    if (pr.ok) addPredictions(await pr.json());
    redrawSegments();
    updateBadges(state.lastRow);
    state.ended = ses.ended_at !== null && ses.ended_at !== undefined;
    if (state.ended) setConn("ended", "session ended");
    renderRatings();
    loadOffers();
    connect();
  }

  function connect() {
    const params = state.lastT === null ? {} : { since: state.lastT };
    const es = new EventSource(url("/api/sessions/" + sessionId + "/stream", params));
    es.onopen = () => { if (!state.ended) setConn("on", "live"); };
    es.addEventListener("predictions", ev => addPredictions(JSON.parse(ev.data)));
    es.addEventListener("segments", ev => { state.segments = JSON.parse(ev.data); redrawSegments(); renderRatings(); });
    es.addEventListener("ratings", ev => { setRatings(JSON.parse(ev.data)); renderRatings(); });
    es.addEventListener("calibration", ev => {
      const act = JSON.parse(ev.data);
      setCalibration(act ? { label: act.label, calibration_id: act.calibration_id } : null);
    });
    es.addEventListener("quality", ev => logQuality(JSON.parse(ev.data)));
    es.addEventListener("ended", () => { state.ended = true; setConn("ended", "session ended"); renderRatings(); });
    es.onerror = () => {
      if (!state.ended) setConn("off", "reconnecting…");
      // The server closes the stream after max_s; reconnect from the last point we have.
      es.close();
      setTimeout(connect, 2000);
    };
  }

  // ---- segment form ----
  const form = $("segment-form");
  if (form) {
    form.addEventListener("submit", async ev => {
      ev.preventDefault();
      const fd = new FormData(form);
      const startText = String(fd.get("start") || "").trim();
      // an empty start means "now": the time of the latest prediction
      const start = startText === "" ? (state.lastT === null ? 0 : state.lastT) : Number(startText);
      const payload = { track: String(fd.get("track") || ""), start: start };
      if (fd.get("end") !== "" && fd.get("end") !== null) payload.end = Number(fd.get("end"));
      const res = await fetch(url("/api/sessions/" + sessionId + "/segments"), {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
      const out = await res.json().catch(() => ({}));
      $("segment-msg").textContent = res.ok ? "added" : ("not added: " + (out.message || res.status));
      if (res.ok) form.reset();
    });
  }

  // ---- the listener's ratings and the calibration ----
  async function send(path, payload) {
    const res = await fetch(url(path), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: payload === undefined ? "" : JSON.stringify(payload) });
    const out = await res.json().catch(() => ({}));
    const detail = typeof out.detail === "string" ? out.detail : (out.message || ("error " + res.status));
    return { ok: res.ok, out, detail };
  }
  function setRatings(rows) {
    state.ratings = {};
    rows.forEach(r => { state.ratings[r.segment_id] = r; });
  }
  function setCalibration(c) {
    if (c) state.calib = c;
    else if (!state.calib) state.calib = { label: "base model", calibration_id: null };
    const el = $("active-model");
    el.textContent = state.calib.label;
    el.dataset.label = state.calib.label;
    renderOffers();
  }
  function rateable(s) { return (s.end !== null && s.end !== undefined) || state.ended; }
  function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); return td; }
  function ratingRow(s) {
    const tr = document.createElement("tr");
    tr.id = "rate-" + s.id;
    tr.dataset.segment = String(s.id);
    cell(tr, "").className = "track";
    cell(tr, "").className = "when";
    RATED.forEach(k => {
      const td = document.createElement("td");
      const inp = document.createElement("input");
      inp.type = "number"; inp.min = "1"; inp.max = "9"; inp.step = "any"; inp.name = k;
      inp.setAttribute("aria-label", k);
      inp.addEventListener("input", () => { inp.dataset.dirty = "1"; });
      td.appendChild(inp);
      tr.appendChild(td);
    });
    const td = document.createElement("td");
    const btn = document.createElement("button");
    btn.type = "button"; btn.textContent = "Save"; btn.className = "rate";
    btn.addEventListener("click", () => saveRating(s.id, tr));
    td.appendChild(btn);
    tr.appendChild(td);
    cell(tr, "").className = "status";
    return tr;
  }
  function renderRatings() {
    const body = document.querySelector("#ratings tbody");
    if (!body) return;
    const seen = new Set();
    state.segments.forEach(s => {
      seen.add("rate-" + s.id);
      let tr = $("rate-" + s.id);
      if (!tr) { tr = ratingRow(s); body.appendChild(tr); }
      tr.querySelector(".track").textContent = s.track;
      const end = (s.end === null || s.end === undefined) ? "…" : fmtClock(s.end);
      tr.querySelector(".when").textContent = fmtClock(s.start) + "–" + end;
      const ok = rateable(s);
      tr.className = ok ? "" : "playing";
      const stored = state.ratings[s.id];
      tr.querySelectorAll("input").forEach(inp => {
        inp.disabled = !ok;
        if (inp.dataset.dirty !== "1" && document.activeElement !== inp) {
          const v = stored ? stored[inp.name] : null;
          inp.value = (v === null || v === undefined) ? "" : String(v);
        }
      });
      tr.querySelector("button.rate").disabled = !ok;
      const status = tr.querySelector(".status");
      if (!status.dataset.msg) status.textContent = !ok ? "playing…" : (stored ? "rated" : "");
      tr.dataset.rated = stored ? "1" : "";
    });
    Array.from(body.children).forEach(tr => { if (!seen.has(tr.id)) tr.remove(); });
    const n = Object.keys(state.ratings).length;
    $("calibrate").disabled = n < state.minRated;
    $("calibrate-hint").textContent = n < state.minRated
      ? n + " of " + state.minRated + " rated segments needed to calibrate"
      : n + " rated segments";
  }
  async function saveRating(segId, tr) {
    const payload = {};
    let bad = null;
    tr.querySelectorAll("input").forEach(inp => {
      const text = inp.value.trim();
      if (text === "") { if (inp.validity.badInput) bad = inp.name + ": not a number"; return; }
      payload[inp.name] = Number(text);
    });
    const status = tr.querySelector(".status");
    status.dataset.msg = "1";
    if (bad) { status.textContent = bad; return; }
    const r = await send("/api/sessions/" + sessionId + "/segments/" + segId + "/ratings", payload);
    if (r.ok) {
      state.ratings[segId] = r.out;
      tr.querySelectorAll("input").forEach(inp => { delete inp.dataset.dirty; });
      status.textContent = "saved";
      renderRatings();
    } else {
      status.textContent = r.detail;
    }
  }
  async function calibrate() {
    const btn = $("calibrate");
    btn.disabled = true;
    $("calibration-msg").textContent = "fitting…";
    const r = await send("/api/sessions/" + sessionId + "/calibrate");
    if (r.ok) {
      setCalibration({ label: r.out.label, calibration_id: r.out.calibration_id });
      $("calibration-msg").textContent = "calibrated from " + r.out.k + " segments in " +
        Number(r.out.seconds).toFixed(1) + " s; used from the next hop";
      loadOffers();
    } else {
      $("calibration-msg").textContent = r.detail;
    }
    renderRatings();
  }
  async function loadOffers() {
    if (!state.participant) return;
    const res = await fetch(url("/api/participants/" + encodeURIComponent(state.participant) + "/calibrations"));
    state.offers = res.ok ? await res.json() : [];
    renderOffers();
  }
  function renderOffers() {
    const box = $("offer"), sel = $("offer-select");
    if (!box) return;
    const active = state.calib ? state.calib.calibration_id : null;
    const fits = c => !c.base_digest || !state.digest || c.base_digest === state.digest;
    const offers = state.offers.filter(c => c.id !== active && fits(c));
    sel.replaceChildren(...offers.map(c => {
      const o = document.createElement("option");
      o.value = String(c.id);
      const when = new Date(c.created_at * 1000).toISOString().slice(0, 10);
      o.textContent = c.label + " · session #" + c.session_id + " · " + when;
      return o;
    }));
    box.hidden = offers.length === 0;
  }
  async function useOffer() {
    const id = Number($("offer-select").value);
    if (!id) return;
    const r = await send("/api/sessions/" + sessionId + "/calibration", { calibration_id: id });
    if (r.ok) {
      setCalibration({ label: r.out.label, calibration_id: r.out.calibration_id });
      $("calibration-msg").textContent = "using the stored calibration from the next hop";
    } else {
      $("calibration-msg").textContent = r.detail;
    }
  }
  if ($("calibrate")) {
    $("calibrate").addEventListener("click", calibrate);
    $("offer-use").addEventListener("click", useOffer);
  }

  setInterval(() => updateBadges(state.lastRow), 2000);
  start().catch(err => setConn("off", "error: " + err));
})();
