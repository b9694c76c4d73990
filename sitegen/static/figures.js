// sitegen figures: tooltips, and play/scrub over training steps, on top of server-drawn SVG.
//
// The page is complete without this file (every figure is drawn at the final step). This adds:
// tooltips (pointer, touch and keyboard), and for figures with training steps a play button, a
// step slider and the current step. Animation data is fetched only when a figure comes near the
// screen or is touched, then each frame moves the existing circles (their cx); nothing is rebuilt.
// Text from data is only ever set with textContent.
//
// The same file runs in a notebook, inlined into every output (sitegen/notebook.py): it defines itself
// once per page (window.sitegenFigures) and a second copy only looks for new figures. Figures can
// grow while a model trains (grow(), used by the notebook's live updates).
(() => {
  "use strict";
  const VERSION = 4;
  if (window.sitegenFigures && window.sitegenFigures.version >= VERSION) {
    window.sitegenFigures.init();
    return;
  }
  const ROW = 8, R = 2.3; // strip row height and dot radius, as drawn by sitegen/figures/strips.py
  const MAX_LIVE_FRAMES = 2000; // a growing figure keeps at most this many frames (older ones thinned)
  const reduced = window.matchMedia ? matchMedia("(prefers-reduced-motion: reduce)") : { matches: false };
  const nf = new Intl.NumberFormat("en-US");
  let tip = null;
  let liveRegion = null;
  const kept = new Map(); // data-sg-key -> {step, follow}: where the reader left a figure that is redrawn

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Numbers as sitegen/figures/numbers.py writes them (the same rules, tested against each other):
  // `digits` significant digits rounded half away from zero on the exact value (toExponential), a
  // decimal from 0.001 to 999,999 (separators from 10,000), else 1.2 × 10⁻⁵; a real minus sign.
  const SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹";
  function fmt(v, digits, power) {
    if (v === null || v === undefined) return "no data";
    if (typeof v === "string") return v;
    if (Number.isNaN(v)) return "NaN";
    if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
    if (v === 0) return "0";
    let [m, e] = v.toExponential(Math.max(digits, 1) - 1).split("e");
    if (power === undefined) power = +e < -3 || +e >= 6;
    if (!power && +e + 1 > digits) [m, e] = v.toExponential(+e).split("e"); // 12,345, not 12,350
    const exp = +e, sign = v < 0 ? "−" : "";
    const fig = m.replace("-", "").replace(".", "").replace(/0+$/, "") || "0";
    if (power) {
      const sup = String(exp).replace(/[-\d]/g, (c) => (c === "-" ? "⁻" : SUP[c]));
      return sign + (fig === "1" ? "" : fig[0] + (fig.length > 1 ? "." + fig.slice(1) : "") + "\u202f×\u202f") + "10" + sup;
    }
    if (exp < 0) return sign + "0." + "0".repeat(-exp - 1) + fig;
    let whole = fig.slice(0, exp + 1).padEnd(exp + 1, "0");
    const frac = fig.slice(exp + 1);
    if (exp >= 4) whole = whole.replace(/\B(?=(\d{3})+$)/g, ",");
    return sign + whole + (frac ? "." + frac : "");
  }

  // -- the one tooltip and the one live region, shared by every figure -------------------------
  function showTip(lines, x, y, announce) {
    if (!tip) {
      tip = el("div", "sg-tip");
      tip.setAttribute("aria-hidden", "true");
      document.body.appendChild(tip);
    }
    tip.textContent = "";
    for (const [i, line] of lines.entries()) tip.appendChild(el("div", i ? "" : "sg-tip-head", line));
    tip.hidden = false;
    const w = tip.offsetWidth, h = tip.offsetHeight;
    const left = Math.max(4, Math.min(x + 12, document.documentElement.clientWidth - w - 4));
    const top = y - h - 10 < 4 ? y + 16 : y - h - 10;
    tip.style.left = left + window.scrollX + "px";
    tip.style.top = top + window.scrollY + "px";
    if (announce) say(lines.join(". "));
  }

  function hideTip() {
    if (tip) tip.hidden = true;
  }

  // A tap shows a tooltip (a touch has no hover): it stays after the finger lifts (a touch pointer
  // "leaves" then) and goes away with a tap anywhere that is not a plot.
  let tipped = null; // the element whose tooltip a tap opened
  function pointerMoves(target, show, clear) {
    target.addEventListener("pointermove", (ev) => { if (ev.pointerType !== "touch") show(ev); });
    target.addEventListener("pointerdown", (ev) => { tipped = target; show(ev); });
    target.addEventListener("pointerleave", (ev) => { if (ev.pointerType !== "touch") { tipped = null; clear(); } });
  }
  document.addEventListener("pointerdown", (ev) => {
    if (tipped && !tipped.contains(ev.target)) { tipped = null; hideTip(); }
  }, true);

  function say(text) {
    if (!liveRegion) {
      liveRegion = el("div", "sg-sr");
      liveRegion.setAttribute("aria-live", "polite");
      document.body.appendChild(liveRegion);
    }
    liveRegion.textContent = text;
  }

  function svgPoint(svg, ev) {
    const m = svg.getScreenCTM();
    if (!m) return { x: 0, y: 0 };
    const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(m.inverse());
    return { x: p.x, y: p.y };
  }

  function island(fig) {
    const s = fig.querySelector("script.sg-data");
    try { return s ? JSON.parse(s.textContent) : null; } catch (e) { return null; }
  }

  // -- the animation data: gzip of b"SGF1", bits, dots, frames, delta-coded positions ------------
  function base64Bytes(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function fetchFrames(url) {
    let buf;
    if (url.startsWith("data:")) { // inlined (a notebook has no site to fetch from): no network, no CSP connect-src
      buf = base64Bytes(url.slice(url.indexOf(",") + 1)).buffer;
    } else {
      const res = await fetch(url);
      if (!res.ok) throw new Error("figure data: HTTP " + res.status);
      buf = await res.arrayBuffer();
    }
    const head = new Uint8Array(buf, 0, 2);
    if (head[0] === 0x1f && head[1] === 0x8b) { // a host may already have undone the gzip
      const stream = new Blob([buf]).stream().pipeThrough(new DecompressionStream("gzip"));
      buf = await new Response(stream).arrayBuffer();
    }
    const dv = new DataView(buf);
    if (String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3)) !== "SGF1") {
      throw new Error("figure data: not a sitegen frames file");
    }
    const bits = dv.getUint8(4), dots = dv.getUint32(8, true), frames = dv.getUint32(12, true);
    const n = dots * frames, body = new Uint8Array(buf, 16);
    let codes;
    if (bits === 8) {
      codes = new Uint8Array(body.subarray(0, n));
    } else {
      codes = new Uint16Array(n);
      for (let i = 0; i < n; i++) codes[i] = (body[i] << 8) | body[n + i];
    }
    for (let d = 0; d < dots; d++) { // undo the differences; the typed array wraps like the encoder
      const o = d * frames;
      for (let f = 1; f < frames; f++) codes[o + f] += codes[o + f - 1];
    }
    return { bits, dots, frames, codes };
  }

  // -- expression figures -----------------------------------------------------------------------
  function expression(fig, data) {
    const strips = [...fig.querySelectorAll("svg.sg-strip")];
    const circles = [];
    for (const svg of strips) {
      const t = svg.querySelector("title");
      if (t) t.remove(); // our tooltip replaces the browser's; aria-label keeps the summary
      circles.push(...svg.querySelectorAll("circle"));
    }
    const runs = data.runs, exps = data.exps || [], word = data.stepTitle || "step"; // :step-title:
    const perPh = runs.reduce((s, r) => s + r.length, 0);
    if (circles.length !== perPh * data.ph.length) return; // markup and data disagree: stay static
    const rowStart = [];
    runs.reduce((s, r) => (rowStart.push(s), s + r.length), 0);
    const x0 = data.geom.x0, w = data.geom.w;
    let steps = data.steps || null; // grows (and may be thinned) when the figure receives training updates
    let last = steps ? steps.length - 1 : 0;
    const cur = new Float64Array(circles.length);
    const visible = new Uint8Array(circles.length);
    circles.forEach((c, i) => {
      cur[i] = c.cx.baseVal.value;
      visible[i] = c.getAttribute("visibility") === "hidden" ? 0 : 1;
    });
    const finalX = Float64Array.from(cur), finalSeen = Uint8Array.from(visible); // the server's exact last frame
    const state = { frame: last, anim: null, loading: null, playing: false, dragging: false, want: null, hover: null };
    let highlighted = [];
    // While dots move they are painted on one small canvas per strip (a frame is then ~50 bitmaps, not
    // thousands of SVG nodes to restyle and lay out); at rest the SVG circles are moved to match and
    // shown again, so what stays on the page (and prints, and is read by assistive tech) is the SVG.
    const motion = { on: false, layers: null, colours: null, ink: "", timer: 0 };
    const groups = strips.map((svg) => [...svg.querySelectorAll("g[class^=sg-e]")]);
    // a single value per plot is a bar from the axis origin with its number (sitegen/figures/strips.py)
    const bars = data.bar ? strips.map((svg) => [svg.querySelector("rect.sg-bar"), svg.querySelector("text.sg-val")]) : null;
    function origin(p) {
      const ph = data.ph[p];
      return !ph.log && ph.lo <= 0 && ph.hi >= 0 ? xOf(p, 0) : !ph.log && ph.hi < 0 ? x0 + w : x0;
    }

    function layers() {
      if (motion.layers) return motion.layers;
      motion.layers = strips.map((svg) => {
        const cv = el("canvas", "sg-canvas");
        cv.setAttribute("aria-hidden", "true");
        cv.hidden = true;
        svg.after(cv); // same positioned holder (.sg-ph) as its SVG: page layout moves both together
        // over the rows only (the plot's ground, at the SVG's origin), not the printed scale under them:
        // text the canvas does not cover is not repainted with every frame
        const bg = svg.querySelector("rect.sg-bg") || svg;
        return { svg: bg, cv, g: cv.getContext("2d"), w: svg.width.baseVal.value, h: bg.height.baseVal.value, dpr: 0 };
      });
      colours();
      return motion.layers;
    }

    function colours() { // the palette as the stylesheet resolved it (light or dark)
      motion.colours = groups[0].map((g) => getComputedStyle(g).fill);
      motion.ink = getComputedStyle(fig).color;
    }

    // Each canvas lies exactly over its plot's rows: its offset inside the shared holder is measured (an
    // SVG element has no offsetLeft/offsetTop), divided by the holder's own scale, so CSS zoom on an
    // ancestor counts once; a new device pixel ratio (browser zoom, another screen) gets a new bitmap.
    function place() {
      const dpr = window.devicePixelRatio || 1;
      for (const L of motion.layers) {
        const holder = L.cv.parentNode, hr = holder.getBoundingClientRect(), r = L.svg.getBoundingClientRect();
        const k = holder.offsetWidth ? hr.width / holder.offsetWidth : 1;
        const s = L.cv.style;
        s.left = (r.left - hr.left) / k - holder.clientLeft + "px";
        s.top = (r.top - hr.top) / k - holder.clientTop + "px";
        s.width = r.width / k + "px";
        s.height = r.height / k + "px";
        const scale = dpr * (r.width / k / L.w || 1);
        if (L.dpr !== scale) {
          L.dpr = scale;
          L.cv.width = Math.ceil(L.w * scale);
          L.cv.height = Math.ceil(L.h * scale);
          L.g.setTransform(L.cv.width / L.w, 0, 0, L.cv.height / L.h, 0, 0);
        }
      }
    }

    function paint() {
      const two = 2 * Math.PI;
      for (let p = 0; p < motion.layers.length; p++) {
        const { g, w, h } = motion.layers[p];
        g.clearRect(0, 0, w, h);
        g.globalAlpha = 0.75;
        for (let e = 0; e < runs.length; e++) {
          g.fillStyle = motion.colours[e] || "#0072B2";
          const cy = 1 + e * ROW + ROW / 2, base = p * perPh + rowStart[e];
          for (let r = 0, n = runs[e].length; r < n; r++) {
            const d = base + r;
            if (!visible[d]) continue;
            g.beginPath();
            g.arc(cur[d], cy, R, 0, two);
            g.fill();
          }
        }
        if (bars && visible[p]) {
          const o = origin(p);
          g.globalAlpha = 0.3;
          g.fillRect(Math.min(o, cur[p]), 2.5, Math.abs(cur[p] - o), 5);
          if (bars[p][1]) bars[p][1].textContent = fmt(valueAt(p).v, 3);
        }
        if (hlK >= 0 && visible[p * perPh + hlK]) {
          const d = p * perPh + hlK, e = where(d).e;
          g.globalAlpha = 1;
          g.strokeStyle = motion.ink;
          g.lineWidth = 1.4;
          g.beginPath();
          g.arc(cur[d], 1 + e * ROW + ROW / 2, R, 0, two);
          g.stroke();
        }
      }
    }

    function moving() {
      clearTimeout(motion.timer);
      if (motion.on) return;
      layers();
      motion.on = true;
      for (const L of motion.layers) L.cv.hidden = false;
      place();
      for (const gs of groups) for (const g of gs) g.setAttribute("visibility", "hidden");
      for (const c of highlighted) c.classList.remove("sg-hl");
      highlighted = [];
    }

    function rest() { // back to SVG: circles where the canvas showed them
      if (!motion.on) return;
      for (let d = 0; d < circles.length; d++) {
        const c = circles[d];
        if (visible[d]) {
          c.removeAttribute("visibility");
          if (c.cx.baseVal.value !== cur[d]) c.cx.baseVal.value = cur[d];
        } else c.setAttribute("visibility", "hidden");
      }
      if (bars) bars.forEach(([rect], p) => {
        if (!rect) return;
        const o = origin(p);
        rect.setAttribute("x", Math.min(o, cur[p]));
        rect.setAttribute("width", Math.abs(cur[p] - o));
      });
      for (const gs of groups) for (const g of gs) g.removeAttribute("visibility");
      for (const L of motion.layers) L.cv.hidden = true;
      motion.on = false;
      const k = hlK;
      hlK = -1;
      if (k >= 0) highlight(k);
    }
    const relayer = () => { if (motion.on) { place(); paint(); } };
    window.addEventListener("resize", relayer);
    if ("ResizeObserver" in window) new ResizeObserver(relayer).observe(fig);
    if (window.matchMedia) matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      if (motion.layers) { colours(); if (motion.on) paint(); }
    });

    function where(d) {
      const p = Math.floor(d / perPh), k = d % perPh;
      let e = 0;
      while (e + 1 < rowStart.length && rowStart[e + 1] <= k) e++;
      return { p, k, e, r: k - rowStart[e] };
    }

    // A growing figure keeps values, not codes: one Float32Array of every dot per frame (frames it
    // started with are decoded from their codes, so they stay approximate; received ones are exact),
    // so an axis that widens only changes where values are drawn.
    const live = { vals: null, exact: null };

    function fromAxis(p, t) {
      const ph = data.ph[p];
      return ph.log ? Math.pow(10, Math.log10(ph.lo) + t * (Math.log10(ph.hi) - Math.log10(ph.lo)))
        : ph.lo + t * (ph.hi - ph.lo);
    }

    function xOf(p, v) { // where a value sits on its placeholder's axis (null: not drawable), as strips.py does
      const ph = data.ph[p];
      if (!Number.isFinite(v) || (ph.log && v <= 0)) return null;
      const t = ph.log ? (Math.log10(v) - Math.log10(ph.lo)) / (Math.log10(ph.hi) - Math.log10(ph.lo))
        : (v - ph.lo) / (ph.hi - ph.lo);
      return x0 + Math.min(Math.max(Number.isFinite(t) ? t : 0, 0), 1) * w;
    }

    function valueAt(d) {
      if (live.vals) {
        const v = live.vals[state.frame][d];
        return { v: Number.isNaN(v) ? "NaN" : v, approx: !live.exact[state.frame] };
      }
      if (!state.anim || state.frame === last) return { v: data.final[d], approx: false };
      const a = state.anim, code = a.codes[d * a.frames + state.frame], miss = (1 << a.bits) - 1;
      if (code === miss) return { v: null, approx: false };
      return { v: fromAxis(Math.floor(d / perPh), code / (miss - 1)), approx: true };
    }

    function describe(d) {
      const { p, e, r } = where(d), ph = data.ph[p];
      const { v, approx } = valueAt(d);
      const lines = [ph.label + (ph.label !== ph.name ? " (" + ph.name + ")" : "")];
      if (exps.length) lines.push(data.expTitle + " " + exps[e]);
      lines.push(data.runTitle + " " + runs[e][r]);
      lines.push((approx ? "≈ " : "") + fmt(v, approx ? 3 : 7) + (steps ? " at " + word + " " + nf.format(steps[state.frame]) : ""));
      for (const b of ph.badges) lines.push("⚠ " + b);
      return lines;
    }

    let hlK = -1; // the highlighted run (index within a placeholder), -1 for none
    function highlight(d) {
      const k = d === null ? -1 : d % perPh; // the same run of the same experiment, in every parameter
      if (k === hlK) return;
      hlK = k;
      if (motion.on) { paint(); return; }
      for (const c of highlighted) c.classList.remove("sg-hl");
      highlighted = [];
      if (k < 0) return;
      for (let p = 0; p < data.ph.length; p++) {
        const c = circles[p * perPh + k];
        c.classList.add("sg-hl");
        highlighted.push(c);
      }
    }

    function point(d, announce) {
      state.hover = d;
      highlight(d);
      const { p, e } = where(d), svg = strips[p], box = svg.getBoundingClientRect();
      const s = box.width / svg.width.baseVal.value;
      showTip(describe(d), box.left + cur[d] * s, box.top + (1 + e * ROW + ROW / 2 - R) * s, announce);
    }

    function nearest(p, ev) {
      const svg = strips[p], pt = svgPoint(svg, ev);
      const e = Math.max(0, Math.min(runs.length - 1, Math.floor((pt.y - 1) / ROW)));
      let best = null, bestDist = Infinity;
      const base = p * perPh + rowStart[e];
      for (let r = 0; r < runs[e].length; r++) {
        const d = base + r;
        if (!visible[d]) continue;
        const dist = Math.abs(cur[d] - pt.x);
        if (dist < bestDist) { bestDist = dist; best = d; }
      }
      return best;
    }

    strips.forEach((svg, p) => {
      pointerMoves(svg, (ev) => {
        const d = nearest(p, ev);
        if (d === null) { hideTip(); highlight(null); return; }
        point(d, false);
      }, () => { state.hover = null; hideTip(); highlight(null); });
    });

    // keyboard: the expression is one stop; arrows walk parameters (left/right) and dots (up/down)
    const pre = fig.querySelector("pre.sg-expr");
    if (pre) {
      pre.tabIndex = 0;
      pre.setAttribute("role", "group");
      pre.setAttribute("aria-label", "Model with its parameters drawn in place. Arrow keys read the values: " +
        "left and right move between parameters, up and down between runs.");
      let kd = 0;
      pre.addEventListener("keydown", (ev) => {
        const keys = { ArrowRight: [1, 0], ArrowLeft: [-1, 0], ArrowDown: [0, 1], ArrowUp: [0, -1] };
        if (ev.key === "Escape") { hideTip(); highlight(null); return; }
        const mv = keys[ev.key];
        if (!mv) return;
        ev.preventDefault();
        let p = Math.floor(kd / perPh), k = kd % perPh;
        if (state.hover === null) { p = 0; k = 0; } else {
          p = (p + mv[0] + data.ph.length) % data.ph.length;
          k = (k + mv[1] + perPh) % perPh;
        }
        kd = p * perPh + k;
        point(kd, true);
      });
      pre.addEventListener("blur", () => { state.hover = null; hideTip(); highlight(null); });
    }

    // -- new values in the same drawing (a notebook's fig.update(df) with a table of the same shape) --
    // v: {x: base64 of uint16 per dot, cx * 10 (65535: no value, hidden), final: tooltip values, from/rev:
    // the drawing it applies to and the one it makes, axes?: [[lo, hi, lo text, hi text, zero x|null]] per
    // plot, labels?: [aria-label|null], bars?: [[x, width, value text]], data?: new animation frames}:
    // all as the server drew them, so the figure ends as a full redraw would draw it (notebook/values.py).
    function revalue(v) {
      if (v.from && fig.dataset.sgRev !== v.from) return false; // holds another drawing: the redraw comes
      const bin = atob(v.x || ""), n = circles.length;
      if (bin.length !== 2 * n || !Array.isArray(v.final) || v.final.length !== n) return false;
      if (steps && state.playing) stop();
      rest();
      for (let d = 0; d < n; d++) {
        const code = bin.charCodeAt(2 * d) | (bin.charCodeAt(2 * d + 1) << 8), c = circles[d];
        c.setAttribute("cx", String(code === 0xffff ? x0 : code / 10));
        if (code === 0xffff) c.setAttribute("visibility", "hidden"); else c.removeAttribute("visibility");
        cur[d] = finalX[d] = c.cx.baseVal.value;
        visible[d] = finalSeen[d] = code === 0xffff ? 0 : 1;
      }
      data.final = v.final;
      if (v.axes) v.axes.forEach(([lo, hi, a, b, zero], p) => {
        const svg = strips[p], bg = svg.querySelector("rect.sg-bg");
        data.ph[p].lo = lo;
        data.ph[p].hi = hi;
        svg.querySelector(".sg-lo").textContent = a;
        svg.querySelector(".sg-hi").textContent = b;
        let line = svg.querySelector("line.sg-zero");
        if (zero === null) { if (line) line.remove(); return; }
        if (!line) { // attributes in the order the server writes them
          line = document.createElementNS(svg.namespaceURI, "line");
          for (const [k, val] of [["class", "sg-zero"], ["x1", zero], ["x2", zero], ["y1", "0"],
            ["y2", bg.getAttribute("height")], ["stroke", "#888888"], ["stroke-width", "1"]]) line.setAttribute(k, val);
          bg.after(line);
        }
        line.setAttribute("x1", zero);
        line.setAttribute("x2", zero);
      });
      if (v.labels) v.labels.forEach((text, p) => { if (text !== null) strips[p].setAttribute("aria-label", text); });
      if (v.bars && bars) v.bars.forEach(([bx, bw, text], p) => {
        const [rect, val] = bars[p] || [];
        if (rect && bx !== null) { rect.setAttribute("x", bx); rect.setAttribute("width", bw); }
        if (val && text !== null) val.textContent = text;
      });
      fig.dataset.sgRev = v.rev;
      if (steps) {
        if (v.data) { // the frames start again from the new data, decoded when next needed
          data.data = v.data;
          state.anim = null;
          state.loading = null;
          live.vals = live.exact = null;
        }
        remember();
        if (state.frame !== last) load().then(request, () => {}); // a reader scrubbed back sees the new values there
      }
      if (state.hover !== null) point(state.hover, false);
      return true;
    }

    if (!steps) return { revalue: (v) => Promise.resolve(revalue(v)) }; // nothing to play and nothing to grow

    // -- play, scrub, step label (made here, so a page without JavaScript has no dead controls) --
    let play = null, scrub = null, label = null, note = null;

    function makeControls() {
      if (play) return;
      const controls = el("div", "sg-controls");
      play = el("button", "sg-play");
      play.type = "button";
      scrub = el("input", "sg-scrub");
      scrub.type = "range";
      scrub.min = "0";
      scrub.max = String(last);
      scrub.step = "1";
      scrub.value = String(last);
      scrub.setAttribute("aria-label", "Training " + word);
      label = el("output", "sg-steplabel");
      controls.append(play, scrub, label);
      const old = fig.querySelector(".sg-step");
      if (old) old.replaceWith(controls); else fig.insertBefore(controls, fig.firstChild);
      play.addEventListener("click", () => (state.playing ? stop() : start()));
      // while the slider is held the dots stay painted; they go back to SVG when it is let go
      scrub.addEventListener("pointerdown", () => { state.dragging = true; });
      for (const type of ["pointerup", "pointercancel", "change"]) scrub.addEventListener(type, () => {
        if (!state.dragging) return;
        state.dragging = false;
        clearTimeout(motion.timer);
        motion.timer = setTimeout(rest, 200);
      });
      scrub.addEventListener("input", () => {
        if (state.playing) stop();
        state.frame = Math.max(0, Math.min(last, Math.round(+scrub.value)));
        remember();
        if (state.anim || live.vals) request(); else { showStep(); load().then(request, () => {}); }
      });
      setPlayLabel();
      showStep();
    }

    function setPlayLabel() {
      play.textContent = state.playing ? "❚❚ Pause" : "▶ Play";
      play.setAttribute("aria-label", state.playing ? "Pause the training animation" : "Play the training animation");
      play.setAttribute("aria-pressed", state.playing ? "true" : "false");
    }

    function showStep() {
      if (!label) return;
      const text = word[0].toUpperCase() + word.slice(1) + " " + nf.format(steps[state.frame]) + " of " + nf.format(steps[last]);
      label.textContent = text;
      scrub.setAttribute("aria-valuetext", text);
      if (scrub.max !== String(last)) scrub.max = String(last);
      if (+scrub.value !== state.frame) scrub.value = String(state.frame);
    }

    function draw() {
      if (live.vals) {
        const row = live.vals[state.frame];
        for (let d = 0, n = circles.length; d < n; d++) {
          const x = xOf(Math.floor(d / perPh), row[d]);
          if (x === null) visible[d] = 0;
          else { visible[d] = 1; cur[d] = x; }
        }
      } else {
        const a = state.anim;
        if (!a) return;
        const F = a.frames, f = state.frame, miss = (1 << a.bits) - 1, k = w / (miss - 1);
        const codes = a.codes;
        if (f === last) { cur.set(finalX); visible.set(finalSeen); } // not the 8-bit codes: no jump at rest
        else for (let d = 0, n = circles.length; d < n; d++) {
          const c = codes[d * F + f];
          if (c === miss) visible[d] = 0;
          else { visible[d] = 1; cur[d] = x0 + c * k; }
        }
      }
      moving();
      paint();
      if (!state.playing && !state.dragging) motion.timer = setTimeout(rest, 200);
      if (state.hover !== null) point(state.hover, false);
    }

    let pending = false;
    function request() {
      showStep();
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; draw(); });
    }

    function load() {
      if (!data.data) return Promise.resolve(null); // one frame, or values only: nothing to fetch
      if (!state.loading) {
        const frames = steps.length, src = data.data; // as drawn by the server, before any growth
        fig.classList.add("sg-loading");
        state.loading = fetchFrames(new URL(data.data, document.baseURI).href).then((a) => {
          if (data.data !== src) return load(); // new values came while these frames were decoded
          if (a.dots !== circles.length || a.frames !== frames) throw new Error("figure data does not match the page");
          state.anim = a;
          fig.classList.remove("sg-loading");
          if (state.frame !== last && !live.vals) request(); // the page already shows the last frame
          return a;
        }).catch((err) => {
          fig.classList.remove("sg-loading");
          fig.classList.add("sg-nodata");
          if (play) {
            play.disabled = true;
            scrub.disabled = true;
            label.textContent = "Animation data could not be loaded; showing the end of training.";
          }
          state.frame = last;
          throw err;
        });
        state.loading.catch(() => {});
      }
      return state.loading;
    }

    let timer = 0;
    function stop() {
      state.playing = false;
      cancelAnimationFrame(timer);
      clearTimeout(timer);
      setPlayLabel();
      clearTimeout(motion.timer);
      motion.timer = setTimeout(rest, 200);
      remember();
    }

    function start() {
      if (state.frame >= last) state.frame = 0;
      state.playing = true;
      setPlayLabel();
      load().then(() => {
        if (!state.playing) return;
        if (reduced.matches) { // no smooth motion: ten calm jumps through training
          const jump = Math.max(1, Math.ceil(last / 10));
          const tick = () => {
            if (!state.playing) return;
            state.frame = Math.min(last, state.frame + jump);
            request();
            if (state.frame >= last) stop(); else timer = setTimeout(tick, 700);
          };
          request();
          timer = setTimeout(tick, 700);
          return;
        }
        const duration = Math.min(12000, Math.max(3000, steps.length * 40));
        const from = state.frame;
        let t0 = -1;
        const tick = (now) => {
          if (!state.playing) return;
          if (t0 < 0) t0 = now; // a frame's timestamp may precede performance.now() at the click
          state.frame = Math.min(last, from + Math.floor(((now - t0) / duration) * (last + 1)));
          showStep();
          draw();
          if (state.frame >= last) stop(); else timer = requestAnimationFrame(tick);
        };
        timer = requestAnimationFrame(tick);
      }, stop);
    }

    // -- where the reader left the figure, kept across a redraw of the same figure (data-sg-key) ----
    const key = fig.dataset.sgKey || "";
    function remember() {
      if (key) kept.set(key, { step: steps[state.frame], follow: state.frame === last });
    }

    function frameOf(step) { // the last frame at or before a step
      let f = 0;
      while (f < last && steps[f + 1] <= step) f++;
      return f;
    }

    // -- growth: new training steps arrive while the reader watches ----------------------------------
    const uniq = [];
    const phU = data.ph.map((ph) => { // values travel once per parameter, not once per placeholder
      let i = uniq.indexOf(ph.name);
      if (i < 0) { i = uniq.length; uniq.push(ph.name); }
      return i;
    });

    function numberOf(v) {
      return typeof v === "number" ? v : v === "∞" ? Infinity : v === "−∞" ? -Infinity : NaN;
    }

    function toValues() {
      live.vals = [];
      live.exact = [];
      const a = state.anim, n = circles.length;
      for (let f = 0; f <= last; f++) {
        const row = new Float32Array(n);
        if (f === last || !a) {
          for (let d = 0; d < n; d++) row[d] = numberOf(data.final[d]);
        } else {
          const miss = (1 << a.bits) - 1;
          for (let d = 0; d < n; d++) {
            const c = a.codes[d * a.frames + f];
            row[d] = c === miss ? NaN : fromAxis(Math.floor(d / perPh), c / (miss - 1));
          }
        }
        live.vals.push(row);
        live.exact.push(f === last);
      }
    }

    function setBadges(p, reasons) {
      const ph = data.ph[p];
      ph.badges = reasons;
      const holder = strips[p].parentNode;
      let badge = holder.querySelector(".sg-badge");
      if (!reasons.length) { if (badge) badge.remove(); return; }
      if (!badge) {
        badge = el("span", "sg-badge");
        const mark = el("span", "", "!");
        mark.setAttribute("aria-hidden", "true");
        badge.append(mark, el("span", "sg-sr"));
        holder.appendChild(badge);
      }
      const reason = reasons.join("; ");
      badge.title = ph.label + " " + reason;
      badge.lastChild.textContent = " warning: " + ph.label + " " + reason;
    }

    function thin() { // keep every other frame (and the last) once there are too many to hold
      if (steps.length <= MAX_LIVE_FRAMES) return;
      const keep = [];
      for (let f = 0; f < steps.length - 1; f += 2) keep.push(f);
      keep.push(steps.length - 1);
      steps = keep.map((f) => steps[f]);
      live.vals = keep.map((f) => live.vals[f]);
      live.exact = keep.map((f) => live.exact[f]);
    }

    function showNote(text) {
      if (!note) {
        note = el("p", "sg-step sg-live-note");
        note.setAttribute("role", "status");
        fig.insertBefore(note, fig.querySelector("pre.sg-expr"));
      }
      note.textContent = text;
    }

    // delta: {steps: [new steps, ascending], values: k x parameters x dots per placeholder (frame-major,
    // parameters in order of first appearance), axes?: [[lo, hi]] per placeholder, badges?: [[reason]]
    // per placeholder, base?: the last step the sender knew this figure to have}. Frames at or after the
    // first new step are replaced. Resolves to true when applied.
    function applyGrowth(delta) {
      const news = delta.steps || [], k = news.length, vals = delta.values;
      if (!k || !vals || vals.length !== k * uniq.length * perPh) return false;
      if (delta.base !== undefined && delta.base !== null) {
        if (steps[last] > delta.base) return false; // already drawn (a redraw overtook this update)
        if (steps[last] < delta.base) { // an update never reached this page
          showNote("Some live updates did not arrive; the figure is redrawn in full when the cell finishes.");
          return false;
        }
      }
      if (!live.vals) toValues();
      const follow = state.frame === last;
      const atStep = steps[state.frame];
      let cut = steps.length;
      while (cut > 0 && steps[cut - 1] >= news[0]) cut--;
      steps.length = cut;
      live.vals.length = cut;
      live.exact.length = cut;
      for (let f = 0; f < k; f++) {
        const row = new Float32Array(circles.length);
        for (let p = 0; p < data.ph.length; p++) {
          const src = (f * uniq.length + phU[p]) * perPh, dst = p * perPh;
          for (let i = 0; i < perPh; i++) row[dst + i] = vals[src + i];
        }
        steps.push(news[f]);
        live.vals.push(row);
        live.exact.push(true);
      }
      if (delta.axes) delta.axes.forEach(([lo, hi], p) => {
        const ph = data.ph[p], svg = strips[p], a = svg.querySelector(".sg-lo"), b = svg.querySelector(".sg-hi");
        ph.lo = lo;
        ph.hi = hi;
        const power = [lo, hi].some((v) => v !== 0 && (Math.abs(v) < 9.995e-4 || Math.abs(v) >= 999500));
        if (a && b) { a.textContent = fmt(lo, 3, power); b.textContent = fmt(hi, 3, power); }
      });
      if (delta.badges) delta.badges.forEach((reasons, p) => setBadges(p, reasons));
      thin();
      data.steps = steps;
      last = steps.length - 1;
      makeControls(); // a figure drawn at one step gets its controls with its second
      // the reader at the latest step follows training; one who scrubbed back stays where they were
      state.frame = follow ? last : Math.min(last, frameOf(atStep));
      remember();
      request();
      return true;
    }

    let queue = Promise.resolve(true);
    function grow(delta) { // in order, and only once the frames the figure started with are decoded
      queue = queue.then(() => load().catch(() => null)).then(() => applyGrowth(delta), () => false);
      return queue;
    }

    if (data.data && steps.length >= 2) {
      makeControls();
      for (const type of ["pointerenter", "focusin"]) fig.addEventListener(type, load, { once: true });
      if ("IntersectionObserver" in window) {
        const io = new IntersectionObserver((entries) => {
          if (entries.some((en) => en.isIntersecting)) { io.disconnect(); load(); }
        }, { rootMargin: "300px" });
        io.observe(fig);
      }
      const back = key ? kept.get(key) : null;
      if (back && !back.follow) { // a redraw of a figure the reader had scrubbed back: stay there
        state.frame = frameOf(back.step);
        load().then(request, () => {});
      }
    }
    // -- a redraw of this figure with more data (the preview, while the model trains) ----------------
    function snapshot() {
      return { step: steps[state.frame], follow: state.frame === last, playing: state.playing };
    }
    function restore(was) { // the reader at the latest step follows training; one who scrubbed back stays
      if (!was || was.follow || !play) return;
      state.frame = frameOf(was.step);
      showStep();
      load().then(() => { request(); if (was.playing) start(); }, () => {});
    }

    return { grow, snapshot, restore, revalue: (v) => (queue = queue.then(() => revalue(v), () => revalue(v))) };
  }

  // -- charts -------------------------------------------------------------------------------------
  function chart(fig, data) {
    const svg = fig.querySelector("svg.sg-chart-svg");
    const box = fig.querySelector(".sg-chart-box");
    if (!svg || !box) return;
    const t = svg.querySelector("title");
    if (t) t.remove();
    const [px0, px1, py0, py1] = data.plot;
    const sx = axis(data.x, px0, px1), sy = axis(data.y, py0, py1);
    const NS = "http://www.w3.org/2000/svg";
    const guide = document.createElementNS(NS, "line");
    guide.setAttribute("class", "sg-guide");
    guide.setAttribute("y1", py1);
    guide.setAttribute("y2", py0);
    guide.setAttribute("visibility", "hidden");
    svg.appendChild(guide);
    const marks = data.series.map((s, i) => {
      const c = document.createElementNS(NS, "circle");
      c.setAttribute("r", "4");
      c.setAttribute("class", "sg-mark sg-s" + (i % 7));
      c.setAttribute("visibility", "hidden");
      svg.appendChild(c);
      return c;
    });
    const xs = [...new Set(data.series.flatMap((s) => s.x.filter((v) => v !== null)))].sort((a, b) => a - b);

    function closestIndex(arr, v) {
      let lo = 0, hi = arr.length - 1;
      while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (arr[mid] < v) lo = mid; else hi = mid; }
      return Math.abs(arr[lo] - v) <= Math.abs(arr[hi] - v) ? lo : hi;
    }

    function at(xv, clientX, clientY, announce) {
      const gx = sx.to(xv);
      guide.setAttribute("x1", gx);
      guide.setAttribute("x2", gx);
      guide.removeAttribute("visibility");
      const lines = [(data.xlabel || "x") + " " + fmt(xv, 6)];
      data.series.forEach((s, i) => {
        const j = closestIndex(s.x, xv);
        const y = s.y[j];
        if (s.x[j] !== xv || y === null) { marks[i].setAttribute("visibility", "hidden"); return; }
        marks[i].setAttribute("cx", sx.to(s.x[j]));
        marks[i].setAttribute("cy", sy.to(y));
        marks[i].removeAttribute("visibility");
        let line = (s.name ? s.name + ": " : (data.ylabel || "y") + " ") + fmt(y, 4);
        if (s.lo && s.hi && s.lo[j] !== null && s.n && s.n[j] > 1) line += " (band " + fmt(s.lo[j], 3) + " to " + fmt(s.hi[j], 3) + ", " + s.n[j] + " runs)";
        lines.push(line);
      });
      if (clientX === null) {
        const r = guide.getBoundingClientRect();
        clientX = r.left; clientY = r.top + 20;
      }
      showTip(lines, clientX, clientY, announce);
    }

    function clear() {
      guide.setAttribute("visibility", "hidden");
      for (const m of marks) m.setAttribute("visibility", "hidden");
      hideTip();
    }

    pointerMoves(svg, (ev) => {
      if (!xs.length) return;
      const pt = svgPoint(svg, ev);
      if (pt.x < px0 - 8 || pt.x > px1 + 8) { clear(); return; }
      at(xs[closestIndex(xs, sx.from(pt.x))], ev.clientX, ev.clientY, false);
    }, clear);
    box.tabIndex = 0;
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Chart values: left and right arrow keys step along the horizontal axis.");
    let ki = -1;
    box.addEventListener("keydown", (ev) => {
      const step = { ArrowRight: 1, ArrowLeft: -1, Home: -1e9, End: 1e9 }[ev.key];
      if (ev.key === "Escape") { clear(); return; }
      if (step === undefined || !xs.length) return;
      ev.preventDefault();
      ki = ki < 0 ? 0 : Math.max(0, Math.min(xs.length - 1, ki + step));
      at(xs[ki], null, null, true);
    });
    box.addEventListener("blur", clear);
  }

  function axis([lo, hi, log], r0, r1) {
    const f = log ? Math.log10 : (v) => v, g = log ? (v) => Math.pow(10, v) : (v) => v;
    const a = f(lo), b = f(hi);
    return { to: (v) => r0 + ((f(v) - a) / (b - a)) * (r1 - r0), from: (px) => g(a + ((px - r0) / (r1 - r0)) * (b - a)) };
  }

  const controllers = new WeakMap(); // figure element -> what it can do beyond tooltips (grow)

  function init(root) {
    const scope = root || document;
    const figs = [...scope.querySelectorAll("figure[data-sg-figure]")];
    if (scope.matches && scope.matches("figure[data-sg-figure]")) figs.unshift(scope);
    for (const fig of figs) {
      if (fig.dataset.sgReady) continue;
      fig.dataset.sgReady = "1";
      const data = island(fig);
      if (!data) continue;
      if (data.kind === "expression") {
        const c = expression(fig, data);
        if (c) controllers.set(fig, c);
      } else if (data.kind === "chart") chart(fig, data);
    }
    return figs;
  }

  function grow(fig, delta) {
    const c = controllers.get(fig);
    return c && c.grow ? c.grow(delta) : Promise.resolve(false);
  }

  function refresh(fig, values) { // new values for the drawing a figure holds (see revalue)
    const c = controllers.get(fig);
    return c && c.revalue ? c.revalue(values) : Promise.resolve(false);
  }

  // Put a freshly drawn copy of a figure in place of the shown one (the preview does this when a running
  // experiment writes more rows): the reader keeps their step, their keyboard focus and the tooltip.
  function replace(old, fresh) {
    const c = controllers.get(old);
    const was = c && c.snapshot ? c.snapshot() : null;
    const active = document.activeElement;
    let focus = null;
    if (active && active !== old && old.contains(active)) {
      focus = active.localName + (active.classList.length ? "." + CSS.escape(active.classList[0]) : "");
    }
    if (c && c.snapshot) hideTip();
    old.replaceWith(fresh);
    init(fresh);
    const n = controllers.get(fresh);
    if (n && n.restore) n.restore(was);
    if (focus) {
      const target = fresh.querySelector(focus);
      if (target) target.focus({ preventScroll: true });
    }
    return fresh;
  }

  window.sitegenFigures = { version: VERSION, init, grow, refresh, replace, format: fmt };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => init());
  else init();
})();
