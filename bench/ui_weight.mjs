// Page weight and first render of the web UI (run by bench_render.py from
// tests/browser, where playwright-core is installed).  For each page and
// repetition: a fresh browser context (empty cache), log in through the API,
// load the page, and record the time from navigation start until the page's
// content exists (a MutationObserver installed before any script runs), and
// the first contentful paint (the browser's own
// paint entry: for the app pages that is the header, drawn before the data), and
// the bytes of every response (Resource Timing transferSize: headers + body
// as sent).  Prints JSON {page: {kb, requests, ms, fcp}} with medians.  The login
// page is the reference: the same shell, stylesheet and modules with no data
// to fetch.  The flow list and the run page come with their first view
// written in by the server (src/api/api_ssr.c); each has an anchor beside
// it, the same HTML without its script served as a static file.
import http from "node:http";
import { chromium } from "../tests/browser/node_modules/playwright-core/index.mjs";   // installed by scripts/install-deps.sh

const URL = process.env.NBHUB_URL, REPS = +process.env.REPS || 5;
const median = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
async function session() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const r = await ctx.request.post(URL + "/api/v1/login", { data: { username: "admin", password: process.env.NBHUB_PASSWORD } });
  if (!r.ok()) throw new Error("login failed " + r.status());
  return ctx;
}
// A run to show: trigger the 8-task demo flow and wait for its end.
const c0 = await session();
const csrf = (await (await c0.request.get(URL + "/api/v1/me")).json()).csrf_token;
const run = await (await c0.request.post(URL + "/api/v1/flows/demo/runs", { data: {}, headers: { "X-CSRF-Token": csrf } })).json();
for (let i = 0; i < 300; i++) {
  const r = await (await c0.request.get(`${URL}/api/v1/runs/${run.id}`)).json();
  if (["success", "failed"].includes(r.state)) break;
  await new Promise((f) => setTimeout(f, 100));
}
await c0.close();

// The anchor: each app page's HTML as nbhub sent it, without its script,
// from a static file server (node's http module) on 127.0.0.1: what this
// browser needs to show that content at all, whoever serves it.
const statics = {};
{
  const c = await session();
  for (const [k, path] of [["flows", "/flows"], ["run", `/runs/${run.id}`]]) {
    const html = await (await c.request.get(URL + path)).text();
    statics[k] = html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/g, "");
  }
  await c.close();
}
statics.healthz = "ok";
const files = http.createServer((req, res) => {
  const body = statics[req.url.slice(1)];
  res.writeHead(body === undefined ? 404 : 200, { "Content-Type": "text/html; charset=utf-8" });
  res.end(body || "");
});
await new Promise((f) => files.listen(0, "127.0.0.1", f));
const FILES = `http://127.0.0.1:${files.address().port}`;

const pages = {
  "login page (shell only, reference)": ["/login", "#user"],
  "flow list": ["/flows", "table.list tbody tr"],
  "flow list as a static file (anchor)": [FILES + "/flows", "table.list tbody tr"],
  "run page": [`/runs/${run.id}`, "table.list tbody tr[data-task]"],
  "run page as a static file (anchor)": [FILES + "/run", "table.list tbody tr[data-task]"],
};
const out = {};
for (const [name, [target, sel]] of Object.entries(pages)) {
  const origin = target.startsWith("http") ? FILES : URL, path = target.startsWith("http") ? target.slice(FILES.length) : target;
  const kb = [], ms = [], reqs = [], fcp = [];
  for (let i = 0; i < REPS + 1; i++) {
    const ctx = await session();
    const page = await ctx.newPage();
    // A same-origin JSON page first, so the renderer process exists (its
    // start is Chromium's cost, not the page's); the UI's files stay uncached.
    await page.goto(origin + "/healthz");
    await page.addInitScript((s) => {
      new MutationObserver((_, obs) => {
        if (document.querySelector(s)) { window.__rendered = performance.now(); obs.disconnect(); }
      }).observe(document, { childList: true, subtree: true });
    }, sel);
    await page.goto(origin + path);
    await page.waitForFunction(() => window.__rendered !== undefined, null, { timeout: 30000 });
    await page.waitForTimeout(300);   // the rest (an open SSE stream never ends: no networkidle)
    const m = await page.evaluate(() => {
      const e = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
      const fcp = performance.getEntriesByName("first-contentful-paint")[0];
      return { bytes: e.reduce((a, x) => a + (x.transferSize || 0), 0), n: e.length, t: window.__rendered, fcp: fcp ? fcp.startTime : null };
    });
    if (i > 0) { kb.push(m.bytes / 1024); ms.push(m.t); reqs.push(m.n); if (m.fcp !== null) fcp.push(m.fcp); }   // first load warms the server
    await ctx.close();
  }
  out[name] = { kb: median(kb), ms: median(ms), requests: median(reqs), fcp: fcp.length ? median(fcp) : null, samples_ms: ms };
}
await browser.close();
files.close();
console.log(JSON.stringify(out));
