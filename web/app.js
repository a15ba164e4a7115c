// nbhub web UI — entry point: the API client, the live event stream, the
// router and the DOM helper every page uses.
//
// Design: plain ES modules, no bundler, no framework (the server puts the
// three into the page as one script: api_ui.c).  Pages build DOM
// nodes with h() (textContent and attributes only, never innerHTML), so a
// flow name, a log line or a parameter value can never become markup.  The
// session is the cookie set by POST /api/v1/login; writes carry the CSRF
// token that login (or GET /me after a reload) returned.  Live updates come
// from one EventSource on /api/v1/events that pages subscribe to.

import { login, flows, flow, runs, run, output, users, server, servers } from "./pages.js";

// ---- DOM ------------------------------------------------------------------

// h("a.btn", {href: "/x", onclick: f}, "text", child, ...) -> element
export function h(spec, attrs, ...kids) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    kids.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, kids);
  return el;
}

// Replace el's children (null/false kids are skipped, unlike replaceChildren).
export function fill(el, ...kids) {
  el.replaceChildren();
  return append(el, kids);
}

export function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === undefined || k === null || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

// SVG elements (the DAG), attributes only.
export function s(tag, attrs, ...kids) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  append(el, kids);
  return el;
}

// ---- formatting -------------------------------------------------------------

// Times are shown in the browser's time zone and locale, as toLocaleString()
// shows them (one formatter for the page: creating one per call costs more
// than building the table row); the ISO time is the title.  The formatter
// is made on first use, or by the router while a page's data is on its way:
// the first Intl object of a renderer process costs 25-60 ms (ICU starting;
// measured in chromium), which the login page need not pay at all and the
// other pages should not pay after their data came.
let localFormat = null;
function timeFormat() {
  return localFormat ||= new Intl.DateTimeFormat(undefined, { year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric" });
}
export function when(iso) {
  if (!iso) return "—";
  return h("time", { datetime: iso, title: iso }, timeFormat().format(new Date(iso)));
}

export function ago(iso) {
  if (!iso) return "—";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  const f = (n, u) => `${Math.round(n)} ${u}${Math.round(n) === 1 ? "" : "s"}`;
  const txt = Math.abs(s) < 60 ? f(Math.abs(s), "second") : Math.abs(s) < 3600 ? f(Math.abs(s) / 60, "minute")
    : Math.abs(s) < 86400 ? f(Math.abs(s) / 3600, "hour") : f(Math.abs(s) / 86400, "day");
  return h("time", { datetime: iso, title: new Date(iso).toLocaleString() }, s >= 0 ? `${txt} ago` : `in ${txt}`);
}

export function duration(a, b) {
  if (!a) return "—";
  const ms = (b ? new Date(b) : new Date()) - new Date(a);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60000), sec = Math.round((ms % 60000) / 1000);
  return m < 60 ? `${m} min ${sec} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function state(st) {
  return h("span.state.st-" + String(st).replace(/[^a-z_]/g, ""), { title: st }, st.replace(/_/g, " "));
}

// A flow's schedule in words is the server's (schedule_words of
// FlowSummary, from cron_describe), so the page and the first view the
// server writes (api_ssr.c) say the same.
export function scheduleWords(f) {
  return f.schedule_words || (f.schedule ? "cron schedule" : "on demand");
}

// ---- API --------------------------------------------------------------------

export const session = { user: null, csrf: null };

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const r = await fetch("/api/v1" + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 204) return null;
  const type = r.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await r.json().catch(() => null) : await r.text();
  if (r.status === 401 && path !== "/login") {
    session.user = null;
    go("/login");
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// ---- live events --------------------------------------------------------------

const KINDS = ["run.queued", "run.running", "run.success", "run.failed", "run.cancelled",
  "task.queued", "task.running", "task.success", "task.failed", "task.up_for_retry",
  "task.upstream_failed", "task.skipped", "task.cancelled", "task.pending",
  "flow.created", "flow.updated", "flow.paused", "flow.unpaused", "flow.deleted", "flow.invalid",
  "task.spark"];   // a Spark task's progress: not a stored event, no id
let source = null;
const listeners = new Set();

// fn(event) for every event until the returned function is called.  Pages
// subscribe on render and are unsubscribed when the route changes.
export function subscribe(fn) {
  listeners.add(fn);
  if (!source) {
    source = new EventSource("/api/v1/events");
    const deliver = (ev) => {
      let data = null;
      try { data = JSON.parse(ev.data); } catch { return; }
      for (const l of [...listeners]) l(data);
    };
    for (const k of KINDS) source.addEventListener(k, deliver);
    source.addEventListener("message", deliver);
    source.onopen = () => document.body.classList.remove("offline");
    source.onerror = () => document.body.classList.add("offline");
  }
  return () => listeners.delete(fn);
}

function closeEvents() {
  if (source) source.close();
  source = null;
  listeners.clear();
}

// ---- router -------------------------------------------------------------------

// Paths, not #fragments: a fragment never reaches the server, and the
// server writes the first view of / , /flows and /runs/ID into the page
// itself (api_ssr.c).  Links are ordinary <a href="/runs/5">: a click on one
// of ours is turned into history.pushState and a route() here, and a link
// opened in a new tab, or a reload, asks the server, which answers every
// one of these paths with this page (api.c).
const routes = [
  [/^\/login$/, login, true],
  [/^\/$|^\/flows$/, flows],
  [/^\/flows\/([^/]+)$/, flow],
  [/^\/runs$/, runs],
  [/^\/runs\/(\d+)$/, run],
  [/^\/runs\/(\d+)\/tasks\/([^/]+)\/output$/, output],
  [/^\/admin\/users$/, users],
  [/^\/server$/, server],
  [/^\/admin\/servers$/, servers],
];

let cleanup = [];
export function onLeave(fn) { cleanup.push(fn); }

export function go(path) {
  if (location.pathname !== path) history.pushState(null, "", path);
  route();
}

async function route() {
  for (const fn of cleanup) try { fn(); } catch { /* a page's cleanup must not stop the next page */ }
  cleanup = [];
  const main = document.getElementById("main");
  const path = location.pathname;
  for (const [re, page, open] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    // The page's requests and GET /me go out together (no extra round trip
    // before the data); a 401 on either sends us to the login page.
    const me = !open && !session.user ? whoami() : Promise.resolve(true);
    const args = m.slice(1).map(decodeURIComponent);
    const shown = page(...args).catch((e) => e);
    // The requests are out: start ICU now, in a task of its own, while the
    // main thread would otherwise wait for them (see timeFormat).
    if (!open && !localFormat) setTimeout(timeFormat, 0);
    try {
      const [view, ok] = await Promise.all([shown, me]);
      if (!ok) { go("/login"); return; }
      if (view instanceof Error) throw view;
      if (location.pathname !== path) return;   // navigated away meanwhile
      showNav();
      // The first view may be the server's (api_ssr.c), and someone may
      // already have tabbed into it: the link they were on keeps the focus.
      const was = main.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
      fill(main, view);
      const again = was && [...main.querySelectorAll("a[href]")].find((a) => a.getAttribute("href") === was);
      // autofocus acts once per document (the HTML spec's "autofocus
      // processed" flag) and the whole UI is one document: the login page
      // after a logout, or drawn a second time, would leave its field
      // unfocused (Firefox showed it), so the page's field is focused here.
      if (again) again.focus();
      else main.querySelector("[autofocus]")?.focus();
      const h1 = main.querySelector("h1");
      document.title = (h1 ? h1.textContent + " · " : "") + "nbhub";
    } catch (e) {
      fill(main, errorBox(e));
    }
    return;
  }
  fill(main, h("section", h("h1", "Not found"), h("p", h("a", { href: "/flows" }, "Back to the flows"))));
}

// A plain click on a link to one of the routes stays in the page; other
// links (the API's downloads, the Spark UIs, a new tab) go to the browser.
document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest && ev.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download") || a.getAttribute("href").startsWith("#")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !routes.some(([re]) => re.test(url.pathname))) return;
  ev.preventDefault();
  go(url.pathname);
});

export function errorBox(e) {
  const msg = e instanceof ApiError ? e.message : String(e && e.message || e);
  return h("div.error-box", { role: "alert" }, h("strong", e.status === 404 ? "Not found: " : "Error: "), msg);
}

async function whoami() {
  try {
    const me = await api("GET", "/me");
    session.user = me;
    session.csrf = me.csrf_token || null;
    return true;
  } catch {
    return false;
  }
}

function showNav() {
  const nav = document.getElementById("nav");
  nav.hidden = !session.user;
  document.getElementById("nav-users").hidden = !(session.user && session.user.admin);
  document.getElementById("nav-servers").hidden = !(session.user && session.user.admin);
  document.getElementById("who").textContent = session.user ? session.user.name : "";
  for (const a of nav.querySelectorAll("a")) {
    const cur = location.pathname.startsWith(a.getAttribute("href"));
    if (cur) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

document.getElementById("logout").addEventListener("click", async () => {
  let r = null;
  try { r = await api("POST", "/logout"); } catch { /* the session may be gone already */ }
  session.user = null;
  session.csrf = null;
  closeEvents();
  // A session from the identity provider: end the provider's session too
  // (it comes back to /login), else "log in" would let us straight back in.
  if (r && r.logout_url) { location.assign(r.logout_url); return; }
  go("/login");
});

// The skip link moves the focus to the content (without adding "#main" to
// the address).
document.querySelector("a.skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  document.getElementById("main").focus();
});

window.addEventListener("popstate", route);
// Addresses of the UI before it had paths (/#/runs/5) still work.
if (location.hash.startsWith("#/")) history.replaceState(null, "", location.hash.slice(1));
route();
