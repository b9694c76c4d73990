// sitegen in a notebook: put a figure's output in place, and feed it training updates.
//
// sitegen/notebook.py inlines this file after figures.js into each figure's output. A notebook runs it
// only where it trusts the output (JupyterLab and Notebook 7: outputs made in this session; VS Code:
// trusted notebooks). Where it does not run, the output shows the figure as a static SVG picture and
// nothing here is needed. Update outputs carry only a JSON message and one call to take().
(() => {
  "use strict";
  const script = document.currentScript;
  if (!window.sitegenNotebook) {
    const shown = new Map(); // live key -> Set of WeakRef(figure): the same figure may be shown twice
    const applied = new Map(); // live key -> number of the last update applied (an output may run twice)

    function injectStyles(box) { // once per page: every figure shares one stylesheet, scoped to .sg-*
      const island = box.querySelector("script.sg-nb-css");
      if (!island) return;
      const id = "sg-nb-css-" + (island.dataset.v || "0");
      if (document.getElementById(id)) return;
      let text = "";
      try { text = JSON.parse(island.textContent); } catch (e) { return; }
      const style = document.createElement("style");
      style.id = id;
      style.textContent = text;
      document.head.appendChild(style);
    }

    function mount(box) {
      injectStyles(box);
      const live = box.querySelector(".sg-nb-live");
      const picture = box.querySelector(".sg-nb-static");
      if (live) live.hidden = false;
      if (picture) picture.remove(); // the live figure replaces its static picture
      for (const fig of window.sitegenFigures.init(box)) {
        const key = fig.dataset.sgKey;
        if (!key) continue;
        if (!shown.has(key)) shown.set(key, new Set());
        shown.get(key).add(new WeakRef(fig));
      }
    }

    function floats(text) { // base64 of little-endian float32
      const bin = atob(text);
      const view = new DataView(new ArrayBuffer(bin.length));
      for (let i = 0; i < bin.length; i++) view.setUint8(i, bin.charCodeAt(i));
      const out = new Float32Array(bin.length >> 2);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    }

    async function inflate(text) { // base64 of gzip (sitegen/notebook/handle.py: _packed)
      const bin = atob(text), bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      return JSON.parse(await new Response(stream).text());
    }

    let order = Promise.resolve(); // messages apply in the order their outputs ran, packed or not
    function feed(box) {
      const island = box.querySelector("script.sg-delta");
      let message = null;
      try { message = island ? JSON.parse(island.textContent) : null; } catch (e) { message = null; }
      if (!message) return;
      const updates = typeof message.z === "string" ? inflate(message.z) : message.updates;
      order = order.then(() => updates).then(apply, () => {});
    }

    function apply(updates) {
      if (!Array.isArray(updates)) return;
      for (const u of updates) {
        if ((applied.get(u.key) ?? -1) >= u.seq) continue;
        applied.set(u.key, u.seq);
        const figs = shown.get(u.key);
        if (!figs) continue;
        const values = u.kind === "values"; // new values for the same drawing (sitegen/notebook/values.py)
        const delta = values ? u : { steps: u.steps, values: floats(u.values || ""), axes: u.axes, badges: u.badges, base: u.base };
        for (const ref of [...figs]) {
          const fig = ref.deref();
          if (!fig) { figs.delete(ref); continue; }
          if (values) window.sitegenFigures.refresh(fig, delta); else window.sitegenFigures.grow(fig, delta);
        }
      }
    }

    window.sitegenNotebook = {
      take(el) {
        const box = el && el.parentNode;
        if (!box || !window.sitegenFigures) return;
        if (box.classList.contains("sg-nb-feed")) feed(box); else mount(box);
      },
    };
  }
  window.sitegenNotebook.take(script);
})();
