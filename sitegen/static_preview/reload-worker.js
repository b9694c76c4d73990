// The preview's reload stream, shared by every open tab of one `sitegen serve` (reload.js connects).
//
// A stream of server-sent events holds an HTTP connection for as long as it is open, and a browser
// allows six per host: one stream per tab would leave a seventh tab unable to load anything. This
// worker holds the only one, passes each message on to every tab, and keeps the server's state
// (session, build, problems) current, so a tab that connects later gets the same "hello" the
// server would send it.
"use strict";

const EVENTS = "/__sitegen/events";
const ports = new Set();
let state = null; // the server's last "hello", kept current by later messages; null while not connected
let source = null;
let retries = 0;

function post(port, msg) {
  try { port.postMessage(msg); } catch (e) { ports.delete(port); }
}

function broadcast(msg) {
  for (const port of ports) post(port, msg);
}

function open() {
  source = new EventSource(EVENTS);
  source.addEventListener("open", () => { retries = 0; broadcast({ type: "online" }); });
  source.addEventListener("message", (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch (err) { return; }
    if (msg.type === "hello") state = msg;
    else if (state) {
      state = { ...state, build: msg.build ?? state.build, structural: msg.structural ?? state.structural,
        problems: msg.problems ?? state.problems };
    }
    broadcast(msg);
  });
  source.addEventListener("error", () => {
    state = null; // until the next hello: a restarted server is a new session
    broadcast({ type: "offline" });
    // EventSource retries a dropped stream by itself; a refused one (too many streams) it gives up on.
    if (source.readyState === EventSource.CLOSED) setTimeout(open, Math.min(5000, 200 * 2 ** retries++));
  });
}

self.addEventListener("connect", (e) => {
  const port = e.ports[0];
  ports.add(port);
  port.addEventListener("message", (m) => { if (m.data === "bye") ports.delete(port); });
  port.start();
  if (state) post(port, state);
  if (!source) open();
});
