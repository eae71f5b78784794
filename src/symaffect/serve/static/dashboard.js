// symaffect live dashboard: trajectories (with their uncertainty band and the stretches
// where a signal was dropped, confidence was low or there was no estimate), the
// valence-arousal plane, quality badges with their last 30 s, the report's counts,
// vital signs and raw-signal strips, segments, the listener's own ratings of ended
// segments and the live calibration.
// Data: GET /api/sessions/{id} and /predictions once, then server-sent events from /stream.
// Everything typed is checked by the server; its one-line answer is shown beside the form.
// The ratings, quadrant codes, colours, the Neutral box, the low-confidence threshold and
// the words for quality flags come from the server (the page's data-affect attribute);
// none is written here.
// Time axes are plotly date axes of stream time (1970-01-01 00:00 = session start),
// labelled m:ss (h:mm:ss past an hour).
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
  const LOW = AFFECT.low_confidence, HISTORY_S = AFFECT.history_s;
  const FLAG_WORDS = AFFECT.flag_words, STREAM_WORDS = AFFECT.stream_flag_words;
  const QUADS = AFFECT.quadrants.filter(q => q.axes);  // Q1..Q4; Neutral has no axes
  const QCOLORS = {};
  AFFECT.quadrants.forEach(q => { QCOLORS[q.code] = q.color; });
  // "HV-LA" -> "high V, low A"
  const axesWords = axes => axes.split("-").map(p => (p[0] === "H" ? "high " : "low ") + p.slice(1)).join(", ");
  const TRAIL = 40;
  // stream seconds -> a plotly date ("1970-01-01 00:01:15.500": 0 s is the session's start)
  function X(t) { return new Date(Math.round(t * 1000)).toISOString().slice(0, 23).replace("T", " "); }
  const token = new URLSearchParams(window.location.search).get("token");

  const state = { rows: [], lastT: null, lastRow: null, segments: [], trail: [], ended: false, lastArrival: 0,
    hop: 1, hopFixed: false, quality: [], qualityIds: new Set(), noPred: new Map(), outages: new Set(),
    mods: [], modsSource: "seen", absent: [], summary: null, stored: null,
    ratings: {}, minRated: 2, calib: null, participant: null, digest: null, offers: [] };
  const RATED = ["valence", "arousal", "liking"];

  function url(path, params) {
    const p = new URLSearchParams(params || {});
    if (token) p.set("token", token);
    const q = p.toString();
    return q ? path + "?" + q : path;
  }
  function $(id) { return document.getElementById(id); }
  function pad2(x) { return String(x).padStart(2, "0"); }
  function fmtClock(s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + ":" + pad2(m) : String(m)) + ":" + pad2(sec);
  }
  // the report's fmt_dur: "42 s", "3 min 05 s", "3 min", "1 h 02 min"
  function fmtDur(s) {
    s = Math.max(Number(s) || 0, 0);
    if (s < 60) return s.toFixed(0) + " s";
    const r = Math.round(s), m = Math.floor(r / 60), sec = r % 60;
    if (m < 60) return sec ? m + " min " + pad2(sec) + " s" : m + " min";
    return Math.floor(m / 60) + " h " + pad2(m % 60) + " min";
  }
  function pct(x) { const p = 100 * x; return p > 0 && p < 0.5 ? "<1 %" : (p >= 99.5 && p < 100 ? ">99 %" : p.toFixed(0) + " %"); }
  function num(x, d) { return (x === null || x === undefined || !isFinite(x)) ? "—" : Number(x).toFixed(d === undefined ? 1 : d); }
  function rgba(hex, a) {
    const h = hex.replace("#", "");
    const v = h.length === 3 ? h.split("").map(c => parseInt(c + c, 16)) : [0, 2, 4].map(i => parseInt(h.slice(i, i + 2), 16));
    return "rgba(" + v.join(",") + "," + a + ")";
  }
  function flagWords(flag) { return FLAG_WORDS[flag] || flag; }
  function timeFormat() { return (state.lastT || 0) >= 3600 ? "%-H:%M:%S" : "%-M:%S"; }
  function timeAxis(title) {
    const f = timeFormat();
    return { type: "date", title: { text: title }, tickformat: f, hoverformat: f, zeroline: false };
  }
  // "modality:flag" strings of a prediction, by modality
  function flagsByModality(flags) {
    const out = {};
    (flags || []).forEach(f => {
      const i = String(f).indexOf(":");
      const m = i > 0 ? f.slice(0, i) : "stream";
      (out[m] = out[m] || []).push(i > 0 ? f.slice(i + 1) : f);
    });
    return out;
  }

  // ---- the trajectories: curves, bands, shading ----
  const PLOT_CONFIG = { displayModeBar: false, responsive: true };
  let renderPending = false;
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    setTimeout(() => { renderPending = false; renderTraj(); }, 30);
  }

  // consecutive hop times (sorted) -> [[start, end, n]] stretches, each hop covering t ± hop/2
  function stretches(times) {
    const hop = state.hop, out = [];
    times.forEach(t => {
      const last = out[out.length - 1];
      if (last && t - last.t1 <= 1.5 * hop + 1e-6) { last.t1 = t; last.n += 1; }
      else out.push({ t0: t, t1: t, n: 1 });
    });
    return out.map(s => [s.t0 - hop / 2, s.t1 + hop / 2, s.n]);
  }
  function droppedIn(r) { return state.mods.filter(m => !(r.modalities_used || []).includes(m)); }
  function fullHeight(name, x0, x1, style) {
    return Object.assign({ type: "rect", name: name, xref: "x", yref: "paper", x0: X(x0), x1: X(x1), y0: 0, y1: 1,
      layer: "below" }, style);
  }
  function qualityShapes() {
    const rows = state.rows;
    const dropped = stretches(rows.filter(r => droppedIn(r).length).map(r => r.t));
    const low = stretches(rows.filter(r => r.confidence !== null && r.confidence < LOW).map(r => r.t));
    const none = stretches(Array.from(state.noPred.keys()).sort((a, b) => a - b));
    const shapes = [];
    low.forEach(([a, b, n]) => shapes.push(fullHeight("low-confidence", a, b,
      { fillcolor: "#8a8a8a", opacity: 0.16, line: { color: "#666", width: 1, dash: "dot" }, hops: n })));
    dropped.forEach(([a, b, n]) => shapes.push(fullHeight("dropped", a, b,
      { fillcolor: "#d9534f", opacity: 0.2, line: { width: 0 }, hops: n })));
    none.forEach(([a, b, n]) => shapes.push(fullHeight("no-prediction", a, b,
      { fillcolor: "#333", opacity: 0.35, line: { width: 0 }, hops: n })));
    return shapes;
  }
  function segmentShapes() {
    const tEnd = state.lastT === null ? 0 : state.lastT;
    const shapes = [], ann = [];
    state.segments.forEach((s, i) => {
      const end = (s.end === null || s.end === undefined) ? Math.max(tEnd, s.start) : s.end;
      shapes.push({ type: "rect", name: "segment", xref: "x", yref: "paper", x0: X(s.start), x1: X(end), y0: 0, y1: 1,
        fillcolor: i % 2 ? "#f6e3cf" : "#d9e6f5", opacity: 0.6, line: { width: 0 }, layer: "below" });
      // alternate label heights so that labels of neighbouring segments do not collide
      ann.push({ xref: "x", yref: "paper", x: X((s.start + end) / 2), y: i % 2 ? 0.955 : 0.995, yanchor: "top", showarrow: false,
        text: s.track.length > 30 ? s.track.slice(0, 28) + "…" : s.track, font: { size: 11, color: "#333" } });
    });
    const b = state.summary && state.summary.baseline;
    if (b) {
      shapes.push({ type: "rect", name: "baseline", xref: "x", yref: "paper", x0: X(b.start), x1: X(b.end),
        y0: 0, y1: 0.04, fillcolor: "#2e8b57", opacity: 0.55, line: { width: 0 }, layer: "above" });
      ann.push({ xref: "x", yref: "paper", x: X((b.start + b.end) / 2), y: 0.045, yanchor: "bottom", showarrow: false,
        text: "baseline", font: { size: 10, color: "#1f6b35" } });
    }
    return { shapes, annotations: ann };
  }
  function renderTraj() {
    const rows = state.rows, hop = state.hop;
    const noPred = Array.from(state.noPred.keys());
    const x = [], y = {}, sd = {}, lo = {}, hi = {};
    TASKS.forEach(k => { y[k] = []; sd[k] = []; lo[k] = []; hi[k] = []; });
    let prev = null;
    rows.forEach(r => {
      const broken = prev !== null && (r.t - prev > 2.5 * hop || noPred.some(t => t > prev && t < r.t));
      if (broken) {
        x.push(X((prev + r.t) / 2));
        TASKS.forEach(k => { y[k].push(null); sd[k].push(null); lo[k].push(null); hi[k].push(null); });
      }
      x.push(X(r.t));
      TASKS.forEach(k => {
        const v = r[k] === undefined ? null : r[k];
        const s = r.spread && r.spread[k] !== undefined ? r.spread[k] : null;
        y[k].push(v);
        sd[k].push(s);
        lo[k].push(v === null || s === null ? null : Math.max(1, v - s));
        hi[k].push(v === null || s === null ? null : Math.min(9, v + s));
      });
      prev = r.t;
    });
    // the band: one closed polygon per unbroken run (+1 sd forwards, -1 sd backwards), runs split by null
    const data = TASKS.map(k => {
      const bx = [], by = [];
      let run = [];
      const flush = () => {
        if (run.length) {
          run.forEach(i => { bx.push(x[i]); by.push(hi[k][i]); });
          run.slice().reverse().forEach(i => { bx.push(x[i]); by.push(lo[k][i]); });
          bx.push(null); by.push(null);
        }
        run = [];
      };
      x.forEach((_, i) => { if (lo[k][i] === null) flush(); else run.push(i); });
      flush();
      return { x: bx, y: by, name: k + " ± 1 sd", legendgroup: k, showlegend: false, mode: "lines", fill: "toself",
        fillcolor: rgba(COLORS[k], 0.13), line: { width: 0, color: COLORS[k] }, hoverinfo: "skip",
        meta: { role: "band", task: k } };
    });
    TASKS.forEach(k => {
      data.push({ x, y: y[k], customdata: sd[k], name: k, legendgroup: k, mode: "lines",
        line: { color: COLORS[k], width: 2 }, hovertemplate: "%{y:.1f} ± %{customdata:.1f}", meta: { role: "line", task: k } });
    });
    const seg = segmentShapes();
    const layout = {
      margin: { l: 50, r: 12, t: 34, b: 44 },
      xaxis: timeAxis("time since session start (m:ss of signal)"),
      yaxis: { title: { text: "estimated rating (1-9)" }, range: [0.8, 9.2], tick0: 1, dtick: 2, zeroline: false },
      legend: { orientation: "h", x: 0, y: 1.1 },
      shapes: seg.shapes.concat(qualityShapes()), annotations: seg.annotations, hovermode: "x unified",
      uirevision: "keep",
      title: { text: "Trajectories (band: ± 1 sd)", font: { size: 13 }, x: 0.99, xanchor: "right", y: 0.98 },
    };
    Plotly.react("traj", data, layout, PLOT_CONFIG);
    body.dataset.rows = String(rows.length);
  }

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
  renderTraj();
  Plotly.newPlot("plane", [
    { x: [], y: [], mode: "lines+markers", line: { color: "#aab", width: 1 }, marker: { size: 4, color: "#99a" }, hoverinfo: "skip", name: "recent" },
    { x: [], y: [], mode: "markers", marker: { size: 18, color: "#222", line: { color: "#fff", width: 2 } }, name: "now",
      hovertemplate: "valence %{x:.1f}<br>arousal %{y:.1f}<extra></extra>" },
  ], planeLayout(), PLOT_CONFIG);

  // ---- segments ----
  function redrawSegments() {
    scheduleRender();
    updateNowPlaying();
  }
  function updateNowPlaying() {
    const t = state.lastT;
    const el = $("now-playing");
    if (t === null) { el.textContent = ""; return; }
    const cur = state.segments.filter(s => s.start <= t && (s.end === null || s.end === undefined || t < s.end));
    el.textContent = cur.length ? "♪ " + cur[cur.length - 1].track : "no music segment";
  }

  // ---- quality: badges with their recent history, the log, outages ----
  function latestHopT() {
    let t = state.lastT === null ? -Infinity : state.lastT;
    state.noPred.forEach((_, k) => { if (k > t) t = k; });
    return isFinite(t) ? t : null;
  }
  function firstHopT() {
    let t = state.rows.length ? state.rows[0].t : Infinity;
    state.noPred.forEach((_, k) => { if (k < t) t = k; });
    return isFinite(t) ? t : null;
  }
  // the last HISTORY_S s of hops, oldest first: [{t, row, none}] (row null: no estimate / no data)
  function recentHops() {
    const tEnd = latestHopT();
    if (tEnd === null) return [];
    const hop = state.hop, n = Math.max(1, Math.round(HISTORY_S / hop));
    const byOffset = new Map();
    for (let i = state.rows.length - 1; i >= 0 && state.rows[i].t > tEnd - HISTORY_S - hop; i--) {
      byOffset.set(Math.round((tEnd - state.rows[i].t) / hop), { row: state.rows[i] });
    }
    state.noPred.forEach((detail, t) => {
      if (t > tEnd - HISTORY_S - hop) byOffset.set(Math.round((tEnd - t) / hop), { none: detail || "every signal dropped" });
    });
    const first = firstHopT(), out = [];
    for (let k = n - 1; k >= 0; k--) {
      const t = tEnd - k * hop;
      if (t < first - hop / 2) continue;  // before the session's first hop
      const e = byOffset.get(k) || { none: "no data" };
      out.push({ t, row: e.row || null, none: e.none || null });
    }
    return out;
  }
  function cellState(m, h) {
    if (!h.row) return { cls: "none", text: h.none === "no data" ? "no data" : "no estimate: " + h.none };
    const flags = flagsByModality(h.row.flags)[m];
    const words = flags ? flags.map(flagWords).join(", ") : "";
    if (!(h.row.modalities_used || []).includes(m)) return { cls: "dropped", text: "dropped" + (words ? ": " + words : "") };
    if (flags) return { cls: "flagged", text: "flagged: " + words };
    return { cls: "ok", text: "ok" };
  }
  function updateBadges() {
    const hops = recentHops();
    const stale = !state.ended && state.lastRow && (Date.now() - state.lastArrival) > Math.max(5000, 4000 * state.hop);
    const secs = n => Math.round(n * state.hop);
    MODALITIES.forEach(m => {
      const el = $("badge-" + m), strip = $("history-" + m), text = $("history-text-" + m);
      if (!el) return;
      const known = state.mods.includes(m);
      const cells = known ? hops.map(h => Object.assign({ t: h.t }, cellState(m, h))) : [];
      const count = c => cells.filter(x => x.cls === c).length;
      const nDrop = count("dropped"), nNone = count("none"), nFlag = count("flagged");
      const last = cells.length ? cells[cells.length - 1] : null;
      let cls, title, words;
      if (!known) {
        cls = state.absent.includes(m) ? "absent" : "unknown";
        title = cls === "absent" ? "not in this recording" : (hops.length ? "not used by any estimate so far" : "no data yet");
        words = cls === "absent" ? "not recorded" : "";
      } else if (!last) { cls = "unknown"; title = "no data yet"; words = ""; }
      else {
        if (last.cls === "dropped" || last.cls === "none") cls = "dropped";
        else if (last.cls === "flagged") cls = "degraded";
        else cls = (nDrop || nNone || nFlag) ? "recent" : "ok";
        title = "now: " + last.text;
        const bits = [];
        if (nDrop) bits.push("dropped in " + secs(nDrop) + " of the last " + HISTORY_S + " s");
        if (nNone) bits.push("no estimate in " + secs(nNone) + " s");
        if (nFlag) bits.push("flagged in " + secs(nFlag) + " s");
        words = bits.length ? bits.join("; ") : "ok throughout the last " + HISTORY_S + " s";
        if (stale) { cls = "unknown"; title = "no new estimates"; }
      }
      el.className = "badge " + cls;
      el.dataset.state = cls;
      el.title = title;
      el.textContent = m + (cls === "ok" ? " ✓" : cls === "dropped" ? " ✕" : cls === "degraded" || cls === "recent" ? " !" : "");
      strip.replaceChildren(...cells.map(c => {
        const s = document.createElement("i");
        s.className = "cell " + c.cls;
        s.title = fmtClock(c.t) + " " + c.text;
        return s;
      }));
      strip.dataset.dropped = String(secs(nDrop));
      strip.dataset.none = String(secs(nNone));
      strip.dataset.flagged = String(secs(nFlag));
      text.textContent = words;
    });
  }

  function addQuality(rows) {
    rows = rows.filter(r => !state.qualityIds.has(r.id));
    if (!rows.length) return;
    rows.forEach(r => {
      state.qualityIds.add(r.id);
      state.quality.push(r);
      if (r.flag === "no_prediction") state.noPred.set(r.t, r.detail || "");
    });
    state.quality.sort((a, b) => a.t - b.t || a.id - b.id);
    renderOutages(rows.filter(r => r.modality === "stream"));
    renderQualityLog();
    if (rows.some(r => r.flag === "no_prediction")) { scheduleRender(); updateBadges(); }
  }
  // the stream's own rows (an outage, a calibration not applied): one plain sentence each
  function renderOutages(rows) {
    const box = $("outage");
    rows.forEach(r => {
      const what = STREAM_WORDS[r.flag] || ("stream: " + r.flag);
      const sentence = "At " + fmtClock(r.t) + " " + what + (r.detail ? " (" + r.detail + ")." : ".");
      const key = fmtClock(r.t) + what;
      if (state.outages.has(key)) return;
      state.outages.add(key);
      const d = document.createElement("div");
      d.className = "outage-line";
      d.dataset.flag = r.flag;
      d.textContent = sentence;
      box.appendChild(d);
    });
    box.hidden = box.childNodes.length === 0;
  }
  // runs of the same flag on the same modality on consecutive hops, newest first, in plain words
  function renderQualityLog() {
    const runs = [], open = {};
    state.quality.forEach(r => {
      if (r.modality === "stream") return;
      const key = r.modality + "|" + r.flag;
      const run = open[key];
      if (run && r.t - run.t1 <= 1.5 * state.hop + 1e-6) { run.t1 = r.t; run.n += 1; return; }
      open[key] = { modality: r.modality, flag: r.flag, t0: r.t, t1: r.t, n: 1, detail: r.detail };
      runs.push(open[key]);
    });
    const box = $("quality-log");
    box.replaceChildren(...runs.slice(-50).reverse().map(run => {
      const d = document.createElement("div");
      const when = run.n > 1 ? fmtClock(run.t0) + "–" + fmtClock(run.t1) : fmtClock(run.t0);
      const who = run.modality === "all" ? "" : run.modality + ": ";
      d.textContent = when + " " + who + flagWords(run.flag) + (run.detail ? " — " + run.detail : "");
      return d;
    }));
  }

  // ---- predictions ----
  function addPredictions(rows) {
    rows = rows.filter(r => state.lastT === null || r.t > state.lastT);
    if (!rows.length) return;
    let prev = state.lastT;
    rows.forEach(r => {
      delete r.probabilities;  // the page needs the ratings, spread, confidence and modalities
      if (!state.hopFixed && prev !== null && r.t > prev && state.rows.length > 1) {
        state.hop = 0.9 * state.hop + 0.1 * (r.t - prev);
      }
      if (state.modsSource === "seen") {
        (r.modalities_used || []).forEach(m => { if (!state.mods.includes(m) && !state.absent.includes(m)) state.mods.push(m); });
      }
      state.rows.push(r);
      prev = r.t;
    });
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
    const low = last.confidence !== null && last.confidence < LOW;
    const note = $("v-confidence-note");
    note.textContent = low ? "low (below " + LOW + "): read with care" : "";
    note.className = "note" + (low ? " low" : "");
    $("v-time").textContent = fmtClock(last.t);
    $("v-model").textContent = last.model_label || "—";
    const startInput = document.querySelector("#segment-form input[name=start]");
    if (startInput) startInput.placeholder = "now (" + last.t.toFixed(0) + ")";
    updateBadges();
    updateNowPlaying();
    scheduleRender();
  }
  // the stored count is the server's, never a count of what this page received
  function setSession(ses) {
    state.stored = ses.n_predictions;
    $("n-points").textContent = String(ses.n_predictions);
    body.dataset.points = String(ses.n_predictions);
    body.dataset.streamSeconds = String(ses.stream_seconds);
    const row = document.querySelector('#sessions tr[data-session="' + ses.id + '"]');
    if (row) fillSessionRow(row, ses);
  }

  // ---- the report's counts, baseline and sentences ----
  function setSummary(s) {
    state.summary = s;
    const bits = [s.n_predictions + " estimates over " + fmtDur(s.stream_seconds) + " of signal"];
    if (s.n_no_prediction) bits.push("no estimate at " + s.n_no_prediction + " hop" + (s.n_no_prediction === 1 ? "" : "s"));
    const dropped = Object.keys(s.dropped || {}).filter(m => s.dropped[m] > 0);
    if (dropped.length) bits.push("dropped: " + dropped.map(m => m + " " + s.dropped[m] + " (" + pct(s.dropped_share[m]) + ")").join(", "));
    if (s.n_predictions) {
      bits.push("confidence below " + s.low_confidence_threshold + ": " + s.low_confidence + " (" +
        pct(s.low_confidence / s.n_predictions) + ")");
    }
    if (s.baseline) bits.push("baseline " + fmtClock(s.baseline.start) + "–" + fmtClock(s.baseline.end));
    $("counts").textContent = bits.join(" · ");
    $("baseline-rule").textContent = s.baseline
      ? fmtClock(s.baseline.start) + "–" + fmtClock(s.baseline.end) + ": " + s.baseline.rule : "not yet known";
    $("summary-sentences").replaceChildren(...(s.summary || []).map(text => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    scheduleRender();
  }

  // ---- vital signs and raw-signal strips ----
  const VITAL_FMT = v => (v === null || v === undefined || !isFinite(v)) ? "—" : (Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(1));
  function setVitals(rows) {
    const by = {};
    rows.forEach(v => { (by[v.modality] = by[v.modality] || []).push(v); });
    MODALITIES.forEach(m => {
      const ul = $("vitals-" + m);
      if (!ul) return;
      const list = by[m] || [];
      if (!list.length) return;
      const dup = {};
      list.forEach(v => { dup[v.name] = (dup[v.name] || 0) + 1; });
      ul.replaceChildren(...list.map(v => {
        const li = document.createElement("li");
        li.className = "vital " + v.status;
        li.dataset.name = v.name;
        li.dataset.channel = v.channel;
        li.dataset.status = v.status;
        const label = v.name.replace(/_/g, " ").replace(/\b(ppg|scr|eeg|eog|gsr|hrv)\b/gi, w => w.toUpperCase());
        li.title = (v.detail || v.status) + " · at " + fmtClock(v.t);
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = label.charAt(0).toUpperCase() + label.slice(1) + (dup[v.name] > 1 ? " (" + v.channel + ")" : "");
        const val = document.createElement("b");
        val.textContent = VITAL_FMT(v.value) + (v.unit ? " " + v.unit : "");
        li.append(name, " ", val);
        if (v.detail) {
          const d = document.createElement("small");
          d.textContent = v.detail;
          li.append(" ", d);
        }
        return li;
      }));
    });
  }
  function setStrips(strips) {
    strips.forEach(s => {
      const el = $("strip-" + s.modality);
      if (!el) return;
      const n = s.values.length ? s.values[0].length : 0;
      const x = Array.from({ length: n }, (_, i) => X(s.t - (n - 1 - i) / s.sfreq));
      // each channel centred on its median and scaled by its spread, one per row, first on top
      const data = s.values.map((vals, c) => {
        const ok = vals.filter(v => v !== null).sort((a, b) => a - b);
        const mid = ok.length ? ok[Math.floor(ok.length / 2)] : 0;
        const lo = ok.length ? ok[Math.floor(0.02 * (ok.length - 1))] : 0, hi = ok.length ? ok[Math.ceil(0.98 * (ok.length - 1))] : 0;
        const scale = hi - lo > 1e-12 ? 0.8 / (hi - lo) : 0;
        const off = s.values.length - 1 - c;
        return { x, y: vals.map(v => v === null ? null : off + (v - mid) * scale), customdata: vals, name: s.channels[c],
          mode: "lines", line: { width: 1, color: "#345" }, hovertemplate: s.channels[c] + " %{customdata:.4g}<extra></extra>" };
      });
      const nc = s.values.length;
      el.hidden = false;
      el.style.height = Math.max(120, Math.min(420, 14 * nc + 60)) + "px";
      el.dataset.t = String(s.t);
      el.dataset.channels = String(nc);
      Plotly.react(el, data, {
        margin: { l: 110, r: 8, t: 6, b: 30 }, showlegend: false,
        xaxis: Object.assign(timeAxis(""), { title: null }),
        yaxis: { tickvals: data.map((_, c) => nc - 1 - c), ticktext: s.channels, range: [-0.7, nc - 0.3],
          zeroline: false, fixedrange: true, tickfont: { size: nc > 12 ? 8 : 10 } },
      }, { displayModeBar: false, responsive: true, staticPlot: false });
    });
  }

  // ---- the sessions table (counts and stream-time durations refresh while open) ----
  function fmtStarted(ts) {
    const d = new Date(ts * 1000);
    return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " + pad2(d.getHours()) + ":" + pad2(d.getMinutes());
  }
  function fillSessionRow(tr, s) {
    tr.querySelector(".duration").textContent = fmtDur(s.stream_seconds);
    tr.querySelector(".wall").textContent = (s.ended_at === null || s.ended_at === undefined) ? "live" : fmtDur(s.ended_at - s.started_at);
    tr.querySelector(".count").textContent = String(s.n_predictions);
  }
  async function refreshSessions() {
    const tbody = document.querySelector("#sessions tbody");
    if (!tbody) return;
    const res = await fetch(url("/api/sessions"));
    if (!res.ok) return;
    const list = (await res.json()).sort((a, b) => b.id - a.id);
    tbody.replaceChildren(...list.map(s => {
      const tr = document.createElement("tr");
      tr.dataset.session = String(s.id);
      if (String(s.id) === String(sessionId)) tr.className = "current";
      [String(s.id), s.participant, fmtStarted(s.started_at)].forEach(t => { const td = document.createElement("td"); td.textContent = t; tr.appendChild(td); });
      ["duration", "wall", "count"].forEach(c => { const td = document.createElement("td"); td.className = c; tr.appendChild(td); });
      const model = document.createElement("td");
      model.className = "model";
      model.textContent = s.model;
      tr.appendChild(model);
      const links = document.createElement("td");
      const mon = document.createElement("a"), rep = document.createElement("a");
      mon.href = url("/sessions/" + s.id); mon.textContent = "monitor";
      rep.href = url("/sessions/" + s.id + "/report"); rep.textContent = "report";
      links.append(mon, " · ", rep);
      tr.appendChild(links);
      fillSessionRow(tr, s);
      return tr;
    }));
    body.dataset.sessionsRefreshed = String((Number(body.dataset.sessionsRefreshed) || 0) + 1);
  }

  // ---- connection ----
  function setConn(cls, text) { const el = $("conn"); el.className = "conn " + cls; el.textContent = text; }

  async function start() {
    const res = await fetch(url("/api/sessions/" + sessionId));
    if (!res.ok) { setConn("off", "error " + res.status); return; }
    const info = await res.json();
    const ses = info.session || {};
    $("session-title").textContent = "Session #" + sessionId + " · " + (ses.participant || "") + (ses.model ? " · " + ses.model : "");
    const meta = ses.meta || {};
    if (typeof meta.hop === "number" && meta.hop > 0) { state.hop = meta.hop; state.hopFixed = true; }
    const sm = info.session_modalities || {};
    state.mods = (sm.modalities || []).slice();
    state.modsSource = sm.source || "seen";
    state.absent = sm.absent || [];
    state.segments = info.segments || [];
    state.participant = ses.participant || null;
    state.digest = meta.model_sha256 || null;
    state.minRated = info.min_rated || 2;
    setRatings(info.ratings || []);
    setCalibration(info.calibration || null);
    addQuality(info.quality || []);
    if (info.summary) setSummary(info.summary);
    setVitals(info.vitals || []);
    setStrips(info.strips || []);
    const pr = await fetch(url("/api/sessions/" + sessionId + "/predictions"));
    if (pr.ok) addPredictions(await pr.json());
    setSession(ses);
    redrawSegments();
    updateBadges();
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
    es.addEventListener("session", ev => setSession(JSON.parse(ev.data)));
    es.addEventListener("summary", ev => setSummary(JSON.parse(ev.data)));
    es.addEventListener("vitals", ev => setVitals(JSON.parse(ev.data)));
    es.addEventListener("strips", ev => setStrips(JSON.parse(ev.data)));
    es.addEventListener("segments", ev => { state.segments = JSON.parse(ev.data); redrawSegments(); renderRatings(); });
    es.addEventListener("ratings", ev => { setRatings(JSON.parse(ev.data)); renderRatings(); });
    es.addEventListener("calibration", ev => {
      const act = JSON.parse(ev.data);
      setCalibration(act ? { label: act.label, calibration_id: act.calibration_id } : null);
    });
    es.addEventListener("quality", ev => addQuality(JSON.parse(ev.data)));
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

  setInterval(updateBadges, 2000);
  setInterval(() => { refreshSessions().catch(() => {}); }, 5000);
  start().catch(err => setConn("off", "error: " + err));
})();
