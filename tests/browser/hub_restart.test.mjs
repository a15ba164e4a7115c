// kill -9 of nbhub serve while alice's JupyterLab tab is open (issue 17 item 8),
// in Debian's chromium (playwright-core), driven by
// tests/blackbox/test_hub_restart_ui.py, which has already started alice's
// server (jupyterhub-singleuser + JupyterLab) through the API.
//
// The two processes meet through files in $NBHUB_SIGNALS: this script writes
// `ready-for-restart` once the first cell has answered 42; pytest then kills
// nbhub serve with SIGKILL, starts it again on the same port and writes
// `restarted` (JSON: the epoch ms of the kill and of the new daemon
// answering).  The same tab, never reloaded, then runs `x + 1`: JupyterLab
// reconnects its kernel's websocket through nbhub's proxy by itself, and the
// kernel still knows x.  That takes 10-30 s: JupyterLab's own wait after it
// found the server unreachable (see the last test).  The measured times go to `result` (JSON) for pytest
// to print.  Environment: NBHUB_URL, NBHUB_ALICE_PASSWORD, NBHUB_SHOTS,
// NBHUB_SIGNALS, CHROMIUM.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const URL = process.env.NBHUB_URL;
const SHOTS = process.env.NBHUB_SHOTS;
const SIGNALS = process.env.NBHUB_SIGNALS;
let browser, ctx, lab;
const sockets = [];       // kernel websockets JupyterLab opened, in order
const requests = [];      // HTTP requests the tab made
let shot = 0;

async function snap(name, p = lab) {
  shot += 1;
  await p.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

// Text of the visible notebook's outputs, in order.
const outputs = () => lab.evaluate(() =>
  [...document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output")]
    .map((e) => e.textContent.trim()));

async function waitOutput(text, timeout) {
  await lab.waitForFunction((t) => [...document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output")]
    .some((e) => e.textContent.trim() === t), text, { timeout, polling: 50 });
}

async function waitFile(name, timeout) {
  const deadline = Date.now() + timeout;
  while (!existsSync(`${SIGNALS}/${name}`)) {
    if (Date.now() > deadline) throw new Error(`no ${name} from pytest after ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return JSON.parse(readFileSync(`${SIGNALS}/${name}`, "utf8"));
}

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
  ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB" });
  lab = await ctx.newPage();
  lab.on("websocket", (ws) => {
    if (!ws.url().includes("/user/alice/api/kernels/")) return;
    const s = { url: ws.url(), at: Date.now(), frames: 0 };
    sockets.push(s);
    ws.on("framereceived", () => { s.frames += 1; s.first ??= Date.now(); });
    ws.on("socketerror", (e) => { s.error = String(e); });
    ws.on("close", () => { s.closed = Date.now(); });
  });
  // What JupyterLab asked of the server around the restart (for the report).
  lab.on("requestfinished", async (rq) => {
    const rs = await rq.response().catch(() => null);
    requests.push({ at: Date.now(), url: rq.url().replace(URL, ""), status: rs?.status() });
  });
  lab.on("requestfailed", (rq) => requests.push({ at: Date.now(), url: rq.url().replace(URL, ""), failed: rq.failure()?.errorText }));
});

after(async () => {
  await browser?.close();
});

test("alice logs in and opens her JupyterLab through nbhub's proxy", async () => {
  await lab.goto(URL + "/login");
  await lab.fill("#user", "alice");
  await lab.fill("#pass", process.env.NBHUB_ALICE_PASSWORD);
  await lab.click('button[type="submit"]');
  await lab.waitForFunction(() => location.pathname === "/flows");
  await lab.goto(URL + "/user/alice/lab");
  await lab.locator('.jp-LauncherCard[data-category="Notebook"]').first().waitFor({ timeout: 150000 });
  assert.ok(lab.url().startsWith(URL + "/user/alice/"), lab.url());
});

test("she creates a notebook and runs x = 6*7; x: 42", async () => {
  try {
    await lab.locator('.jp-LauncherCard[data-category="Notebook"]').first().click();
    const panel = lab.locator(".jp-NotebookPanel:not(.lm-mod-hidden)");
    const cell = panel.locator(".jp-Cell .cm-content").first();
    await cell.waitFor({ timeout: 60000 });
    await lab.locator('.jp-StatusBar-TextItem:has-text("| Idle")').first().waitFor({ timeout: 120000 });
    await cell.click();
    await lab.keyboard.type("x = 6*7; x");
    await lab.keyboard.press("Shift+Enter");
    await waitOutput("42", 90000);
    assert.equal(sockets.length, 1, JSON.stringify(sockets));
    // Gone if anything reloads the page from here on.
    await lab.evaluate(() => { window.nbhubSameTab = 1; });
    await snap("before-restart");
  } catch (e) {
    await snap("before-restart-failed").catch(() => {});
    throw e;
  }
});

test("nbhub serve is killed with -9 and restarted: the same tab runs x + 1 in the same kernel: 43", async () => {
  writeFileSync(`${SIGNALS}/ready-for-restart`, JSON.stringify({ at: Date.now() }));
  const r = await waitFile("restarted", 120000);
  const seen = Date.now();
  try {
    // The new cell is the one Shift+Enter moved to; type into it, no reload.
    const cells = lab.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content");
    await cells.nth(1).waitFor({ timeout: 10000 });
    await cells.nth(1).click();
    await lab.keyboard.type("x + 1");
    await lab.keyboard.press("Shift+Enter");
    await waitOutput("43", 120000);
    const done = Date.now();
    await snap("after-restart");
    assert.equal(await lab.evaluate(() => window.nbhubSameTab), 1, "the tab was reloaded");
    const out = await outputs();
    assert.deepEqual(out.slice(0, 2), ["42", "43"]);
    // The same kernel: every websocket JupyterLab opened is to one kernel id.
    const ids = new Set(sockets.map((s) => s.url.replace(/.*\/api\/kernels\/([^/?]+).*/, "$1")));
    assert.equal(ids.size, 1, JSON.stringify(sockets));
    // The websocket that answered after the kill (the first tries meet nbhub down).
    const reconnect = sockets.find((s) => s.at >= r.killed && s.frames > 0);
    const result = {
      from_kill_ms: done - r.killed,
      from_ready_ms: done - r.ready,           // the new daemon answering -> 43 on the page
      typed_at_ms: seen - r.ready,             // when this script noticed the restart
      websocket_reconnected_ms: reconnect ? reconnect.at - r.ready : null,
      websockets: sockets.length,
      timeline: sockets.map((s) => ({ opened: s.at - r.ready, first_frame: s.first && s.first - r.ready,
        closed: s.closed && s.closed - r.ready, frames: s.frames, error: s.error })),
      requests: requests.filter((q) => q.at >= r.killed).map((q) => ({ ...q, at: q.at - r.ready })),
    };
    writeFileSync(`${SIGNALS}/result`, JSON.stringify(result));
    console.log(`reconnect: ${JSON.stringify(result)}`);
    assert.ok(reconnect, `JupyterLab opened no new kernel websocket after the kill: ${JSON.stringify(sockets)}`);
    // JupyterLab (4.x, @jupyterlab/services) asks for the kernel's model when
    // its websocket closes; a network error (nbhub is down for ~0.2 s) makes
    // it wait a random 10-30 s before asking again, then it reconnects at
    // once.  So 43 comes 10-33 s after the restart (measured up to 32.6 s),
    // whatever nbhub does; more than 90 s (load) would be something of ours.
    assert.ok(result.from_ready_ms < 90000, JSON.stringify(result));
  } catch (e) {
    await snap("after-restart-failed").catch(() => {});
    throw e;
  }
});
