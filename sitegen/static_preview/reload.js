// The preview's live-reload client. `sitegen serve` adds it to every HTML page it serves, at
// request time; it is never written into a built site (sitegen/static/ is what a site ships).
//
// It listens to the server's reload stream (server-sent events, /__sitegen/events), which says
// after every rebuild which files changed:
//   - this page, or a file it loaded, changed  -> reload, keeping the scroll position;
//   - only stylesheets changed                 -> swap them in place, no reload;
//   - only data changed (a training run wrote more rows, an experiment was re-run), and the new
//     page differs from this one only inside figures -> swap those figures in place: the reader
//     keeps scroll, focus and the step they scrubbed to (figures.js's replace());
//   - the build failed                         -> an overlay lists every `path:line: message`,
//                                                 and goes away once a build succeeds again.
// Browsers allow six HTTP/1.1 connections per host, and a stream holds one for as long as it is
// open; so all of a server's tabs share one stream, held by a shared worker (reload-worker.js),
// and a browser without shared workers gives each tab its own EventSource.
(() => {
  "use strict";

  const script = document.currentScript;
  const served = {
    build: Number(script?.dataset.build || 0),
    session: script?.dataset.session || "",
    status: Number(script?.dataset.status || 200),
  };
  const SCROLL_KEY = "sitegen-preview-scroll";
  const overlayCss = new URL("/__sitegen/overlay.css", location.href).href;

  let known = { build: served.build, session: served.session };
  let retries = 0;
  let offline = false;
  let offlineTimer = 0;
  let problems = [];
  let policyWarnings = [];
  let dismissedFor = "";

  // -- scroll position ------------------------------------------------------------------------

  function saveScroll() {
    const max = document.documentElement.scrollHeight - window.innerHeight;
    const state = {
      path: location.pathname, x: window.scrollX, y: window.scrollY,
      atBottom: window.scrollY > 0 && window.scrollY >= max - 40, time: Date.now(),
    };
    try { sessionStorage.setItem(SCROLL_KEY, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }

  function restoreScroll() {
    let state = null;
    try { state = JSON.parse(sessionStorage.getItem(SCROLL_KEY) || "null"); } catch (e) { return; }
    try { sessionStorage.removeItem(SCROLL_KEY); } catch (e) { /* ignore */ }
    if (!state || state.path !== location.pathname || Date.now() - state.time > 60000) return;
    let userMoved = false;
    const stop = () => { userMoved = true; };
    for (const type of ["wheel", "touchstart", "keydown", "mousedown"]) {
      window.addEventListener(type, stop, { once: true, passive: true });
    }
    const apply = () => {
      if (userMoved) return;
      const y = state.atBottom ? document.documentElement.scrollHeight : state.y;
      window.scrollTo(state.x, y);
    };
    apply();
    // Figures and images change the height after they load; put the reader back once more.
    if (document.readyState === "complete") requestAnimationFrame(apply);
    else window.addEventListener("load", () => requestAnimationFrame(apply), { once: true });
  }

  function reload() {
    saveScroll();
    if ("scrollRestoration" in history) history.scrollRestoration = "manual";
    location.reload();
  }

  // -- what a rebuild touched --------------------------------------------------------------------

  function pagePaths() {
    let path = location.pathname;
    try { path = decodeURIComponent(path); } catch (e) { /* keep it encoded */ }
    if (path.endsWith("/")) return [path + "index.html"];
    return [path, path + "/index.html", path + ".html"];
  }

  function sameOriginPath(url) {
    try {
      const u = new URL(url, location.href);
      if (u.origin !== location.origin) return null;
      return decodeURIComponent(u.pathname);
    } catch (e) {
      return null;
    }
  }

  function loadedFiles() {
    const files = new Set();
    for (const entry of performance.getEntriesByType("resource")) {
      const p = sameOriginPath(entry.name);
      if (p) files.add(p);
    }
    const selector = "img[src], script[src], link[rel~='stylesheet'][href], link[rel~='icon'][href], " +
      "source[src], video[src], audio[src], track[src], iframe[src], embed[src], object[data]";
    for (const el of document.querySelectorAll(selector)) {
      const p = sameOriginPath(el.getAttribute("src") || el.getAttribute("href") || el.getAttribute("data"));
      if (p) files.add(p);
    }
    return files;
  }

  function touchesThisPage(msg) {
    if (msg.all) return true;
    const changed = new Set([...(msg.written || []), ...(msg.removed || [])]);
    if (served.status === 404 && changed.has("/404.html")) return true;
    if (pagePaths().some((p) => changed.has(p))) return true;
    const css = new Set(msg.cssOnly ? msg.css || [] : []);
    for (const file of loadedFiles()) {
      if (changed.has(file) && !css.has(file)) return true;
    }
    return false;
  }

  function swapStylesheets(urls) {
    const wanted = new Set(urls);
    for (const link of document.querySelectorAll("link[rel~='stylesheet'][href]")) {
      const p = sameOriginPath(link.getAttribute("href"));
      if (!p || !wanted.has(p)) continue;
      const fresh = link.cloneNode();
      fresh.href = p + "?v=" + Date.now();
      fresh.addEventListener("load", () => link.remove(), { once: true });
      fresh.addEventListener("error", () => fresh.remove(), { once: true });
      link.after(fresh);
    }
  }

  // -- figures redrawn from new data, swapped in without a reload ------------------------------------

  function skeleton(main) { // the page without its figures: what must not have changed for a swap
    const copy = main.cloneNode(true);
    for (const fig of copy.querySelectorAll("figure[data-sg-figure]")) fig.replaceWith(document.createComment("figure"));
    return copy.innerHTML;
  }

  async function swapFigures() {
    const res = await fetch(location.pathname + location.search, { cache: "no-store" });
    if (!res.ok) throw new Error("the page answered " + res.status);
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const here = document.querySelector("main"), there = doc.querySelector("main");
    if (!here || !there) throw new Error("no <main> to compare");
    const olds = [...here.querySelectorAll("figure[data-sg-figure]")];
    const news = [...there.querySelectorAll("figure[data-sg-figure]")];
    if (olds.length !== news.length || olds.some((f, i) => f.id !== news[i].id)) throw new Error("figures came or went");
    if (skeleton(here) !== skeleton(there)) throw new Error("more than figures changed");
    const scripts = (d) => [...d.querySelectorAll("script[src]")].map((e) => e.getAttribute("src")).join(" ");
    if (scripts(document) !== scripts(doc)) throw new Error("the page's scripts changed");
    const api = window.sitegenFigures;
    olds.forEach((old, i) => {
      if (old.dataset.sgRev === news[i].dataset.sgRev) return;
      const fresh = document.importNode(news[i], true);
      if (api && api.replace) api.replace(old, fresh); else old.replaceWith(fresh);
    });
  }

  let swapping = null, swapAgain = false;
  function refreshFigures() { // one swap at a time; updates that arrive meanwhile make one more
    if (swapping) { swapAgain = true; return; }
    swapping = swapFigures().then(() => {
      swapping = null;
      if (swapAgain) { swapAgain = false; refreshFigures(); }
    }, (why) => {
      swapping = null;
      console.info("sitegen preview: reloading instead of swapping figures:", why && why.message);
      reload();
    });
  }

  // -- the overlay -------------------------------------------------------------------------------

  let host = null;

  function problemKey(list) {
    return list.map((p) => p.text).join("\n");
  }

  function listOf(items, level) {
    const list = document.createElement("ol");
    for (const text of items) {
      const item = document.createElement("li");
      item.className = level;
      const code = document.createElement("code");
      code.textContent = text;
      item.append(code);
      list.append(item);
    }
    return list;
  }

  function section(title, items, level) {
    const part = document.createElement("section");
    part.className = level + "s";
    const h = document.createElement("h3");
    h.textContent = title;
    part.append(h, listOf(items, level));
    return part;
  }

  function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

  // What the overlay says: the errors that stopped the build, counted in the heading and listed alone;
  // then the warnings in the files that have errors (likely the same edit); warnings elsewhere in the
  // site did not stop anything and stay folded, labelled as such.
  function render() {
    const errors = problems.filter((p) => p.level === "error");
    const failedPaths = new Set(errors.map((p) => p.path));
    const warnings = errors.length ? problems.filter((p) => p.level !== "error") : [];
    const near = warnings.filter((p) => failedPaths.has(p.path));
    const elsewhere = warnings.filter((p) => !failedPaths.has(p.path));
    const shown = errors.length + policyWarnings.length;
    const dismissed = dismissedFor === problemKey(errors.concat(policyWarnings));
    if ((!shown || dismissed) && !offline) {
      if (host) host.hidden = true;
      return;
    }
    if (!host) {
      host = document.createElement("sitegen-preview-overlay");
      host.attachShadow({ mode: "open" });
      document.body.append(host);
    }
    host.hidden = false;
    const root = host.shadowRoot;
    root.replaceChildren();
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = overlayCss;
    if (!shown || dismissed) {
      const pill = document.createElement("p");
      pill.className = "offline";
      pill.setAttribute("role", "status");
      pill.textContent = "Preview server stopped; reconnecting\u2026";
      root.append(link, pill);
      return;
    }
    const panel = document.createElement("section");
    panel.className = errors.length ? "panel failed" : "panel warned";
    panel.setAttribute("role", "alert");
    panel.setAttribute("aria-label", "sitegen preview");
    const head = document.createElement("header");
    const title = document.createElement("h2");
    title.textContent = errors.length ? `Build failed: ${plural(errors.length, "error")}`
      : "This page breaks the site's Content-Security-Policy";
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "Hide";
    close.setAttribute("aria-label", "Hide until the next change");
    close.addEventListener("click", () => {
      dismissedFor = problemKey(errors.concat(policyWarnings));
      render();
    });
    head.append(title, close);
    panel.append(head);
    if (errors.length) {
      const note = document.createElement("p");
      note.textContent = "The preview still shows the last good build. Fix the file and save; " +
        "this message goes away by itself.";
      panel.append(note, listOf(errors.map((p) => p.text), "error"));
    }
    if (near.length) {
      panel.append(section(`${plural(near.length, "warning")} in the same file${failedPaths.size === 1 ? "" : "s"}`,
        near.map((p) => p.text), "warning"));
    }
    if (elsewhere.length) {
      const fold = document.createElement("details");
      fold.className = "elsewhere";
      const summary = document.createElement("summary");
      summary.textContent = `${plural(elsewhere.length, "warning")} in other files (they did not stop the build)`;
      fold.append(summary, listOf(elsewhere.map((p) => p.text), "warning"));
      panel.append(fold);
    }
    if (policyWarnings.length) {
      const label = errors.length ? "Blocked by the site's Content-Security-Policy" : "Blocked";
      panel.append(errors.length ? section(label, policyWarnings, "warning") : listOf(policyWarnings, "warning"));
    }
    root.append(link, panel);
  }

  function showProblems(list) {
    problems = list || [];
    render();
  }

  // Production serves `script-src 'self'` and friends; the preview sends the same policy, so a
  // page that would break online says so here instead of failing silently.
  document.addEventListener("securitypolicyviolation", (e) => {
    if (e.disposition !== "enforce") return;
    const where = e.sourceFile ? ` (${e.sourceFile}${e.lineNumber ? ":" + e.lineNumber : ""})` : "";
    const what = e.blockedURI === "inline" ? "an inline script or style" :
      e.blockedURI === "eval" ? "eval()" : e.blockedURI || "a resource";
    const text = `blocked ${what} by ${e.effectiveDirective}${where}`;
    if (!policyWarnings.includes(text) && policyWarnings.length < 20) {
      policyWarnings.push(text);
      render();
    }
  });

  // -- the connection ------------------------------------------------------------------------------

  function setOffline(value) {
    clearTimeout(offlineTimer);
    if (!value) {
      if (offline) { offline = false; render(); }
      return;
    }
    // A quick reconnect (a restarted server) should not flash a message.
    offlineTimer = setTimeout(() => { offline = true; render(); }, 1500);
  }

  function handle(msg) {
    if (msg.type === "hello") {
      // A restarted server, or a build between serving this page and connecting: the page may
      // be stale, and the message saying so was missed.
      const restarted = Boolean(known.session) && msg.session !== known.session;
      const missed = !restarted && msg.build > known.build;
      // builds that only redrew figures from new data (a run training) need no reload, only new figures
      const dataOnly = missed && msg.structural !== undefined && msg.structural <= known.build;
      known = { build: msg.build, session: msg.session };
      showProblems(msg.problems);
      if (restarted || (missed && !dataOnly)) reload();
      else if (dataOnly) refreshFigures();
    } else if (msg.type === "built") {
      known.build = msg.build;
      showProblems(msg.problems);
      if (touchesThisPage(msg)) {
        const page = new Set(msg.written || []);
        if (msg.dataOnly && !msg.all && pagePaths().some((p) => page.has(p))) refreshFigures();
        else reload();
      } else if (msg.cssOnly && msg.css?.length) swapStylesheets(msg.css);
    } else if (msg.type === "failed") {
      showProblems(msg.problems);
    }
  }

  const EVENTS = "/__sitegen/events";

  function receive(msg) {
    if (msg.type === "online") setOffline(false);
    else if (msg.type === "offline") setOffline(true);
    else handle(msg);
  }

  function ownStream() { // one EventSource for this tab alone
    const source = new EventSource(EVENTS);
    source.addEventListener("open", () => { retries = 0; setOffline(false); });
    source.addEventListener("message", (e) => {
      try { handle(JSON.parse(e.data)); } catch (err) { console.error("sitegen preview:", err); }
    });
    source.addEventListener("error", () => {
      setOffline(true);
      // EventSource retries a dropped stream by itself; a refused one (too many tabs) it gives up on.
      if (source.readyState === EventSource.CLOSED) setTimeout(ownStream, Math.min(5000, 200 * 2 ** retries++));
    });
  }

  function sharedStream() { // the stream every tab of this server shares, held by a worker
    const worker = new SharedWorker("/__sitegen/reload-worker.js", { name: "sitegen-preview" });
    const port = worker.port;
    port.addEventListener("message", (e) => {
      try { receive(e.data); } catch (err) { console.error("sitegen preview:", err); }
    });
    port.start();
    window.addEventListener("pagehide", () => port.postMessage("bye"), { once: true });
  }

  function connect() {
    if (typeof SharedWorker === "function") {
      try { sharedStream(); return; } catch (e) { /* blocked: fall back to a stream of our own */ }
    }
    if (typeof EventSource === "function") ownStream();
  }

  // A page restored from the back-forward cache said goodbye to the worker when it was left.
  window.addEventListener("pageshow", (e) => { if (e.persisted) connect(); });

  restoreScroll();
  connect();
})();
