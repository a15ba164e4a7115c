// The hub in Debian's chromium (playwright-core), against the server that
// tests/blackbox/test_hub_ui.py started (profiles "small": the real
// jupyterhub-singleuser + JupyterLab; "broken": a server that cannot start).
// The steps run in order in one browser; each leaves a screenshot in
// $NBHUB_SHOTS.  Environment: NBHUB_URL, NBHUB_ADMIN, NBHUB_ADMIN_PASSWORD,
// NBHUB_ALICE_PASSWORD, CHROMIUM.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const URL = process.env.NBHUB_URL;
const SHOTS = process.env.NBHUB_SHOTS;
let browser, ctx, page, lab;
const problems = [];      // console errors and page errors of nbhub's own pages
const sockets = [];       // websockets JupyterLab opened
let shot = 0;

async function snap(name, p = page) {
  shot += 1;
  await p.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

function watch(p) {
  p.on("console", (m) => {
    // The first GET /api/v1/me before logging in answers 401 by design.
    if (m.type() === "error" && !/401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  p.on("pageerror", (e) => problems.push(`pageerror: ${e}`));
  p.on("dialog", (d) => {
    // Only our own confirm() is expected; an alert() would be injected script.
    if (d.type() !== "confirm") problems.push(`unexpected ${d.type()}: ${d.message()}`);
    d.accept();
  });
}

async function logIn(p, user, password) {
  await p.goto(URL + "/login");
  await p.fill("#user", user);
  await p.fill("#pass", password);
  await p.click('button[type="submit"]');
  await p.waitForFunction(() => location.pathname === "/flows");
  await p.locator("#who").filter({ hasText: user }).waitFor();
}

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
  ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB" });
  page = await ctx.newPage();
  watch(page);
});

after(async () => {
  await browser?.close();
});

test("alice logs in and opens the Server page: profiles with what they give, her flows", async () => {
  await logIn(page, "alice", process.env.NBHUB_ALICE_PASSWORD);
  await page.click('nav a:text-is("Server")');
  await page.waitForSelector("fieldset.choices");
  assert.equal(await page.evaluate(() => location.pathname), "/server");
  const small = page.locator('label.choice:has(input[value="small"])');
  // The description's markup is text.
  assert.match(await small.textContent(), /<b>editing<\/b> notebooks <img src=x onerror=alert\(1\)>/);
  assert.equal(await page.locator("label.choice img, label.choice b").count(), 0);
  assert.match(await page.locator('label.choice:has(input[value="broken"])').textContent(), /cannot start/);
  // Her flow, which runs a notebook of her workspace, with its last run.
  const row = page.locator("table.flows tr", { has: page.locator('a:text-is("alice-daily")') });
  await row.waitFor();
  assert.match(await row.textContent(), /every day at 06:00/);
  assert.match(await row.textContent(), /success/);
  await snap("server-page");
});

test("a server that cannot start shows its own log tail", async () => {
  await page.check("#profile-broken");
  await page.click('form button[type="submit"]:text-is("Start")');
  const card = page.locator('.server[data-server="default"][data-state="failed"]');
  await card.waitFor({ timeout: 120000 });
  const text = await card.locator(".error-box").textContent();
  assert.match(text, /BROKEN-PROFILE-LOG-TAIL|the-server-said-no/, text);
  await snap("server-failed");
});

test("a named server is listed with its own card", async () => {
  await page.fill("#server-name", "scratch");
  await page.check("#profile-broken");
  await page.click('form button[type="submit"]:text-is("Start")');
  const card = page.locator('.server[data-server="scratch"][data-state="failed"]');
  await card.waitFor({ timeout: 120000 });
  assert.equal(await card.locator("h2").textContent(), "Server scratch");
  // The default server's card is still there, first.
  assert.equal(await page.locator(".server").first().getAttribute("data-server"), "default");
  await page.fill("#server-name", "");
  await snap("server-named");
  // Removed, its card goes.
  await card.locator('button:text-is("Remove")').click();
  await page.locator('.server[data-server="scratch"]').waitFor({ state: "detached", timeout: 30000 });
});

test("alice starts the small profile, sees the progress, then the JupyterLab link", async () => {
  await page.check("#profile-small");
  await page.click('form button[type="submit"]:text-is("Start")');
  // jupyterhub-singleuser takes seconds to answer: the progress is shown meanwhile.
  await page.locator('.server[data-state="starting"] progress').waitFor({ timeout: 30000 });
  await snap("server-starting");
  const link = page.locator('.server[data-state="running"] a:text-is("Open JupyterLab")');
  await link.waitFor({ timeout: 150000 });
  assert.equal(await link.getAttribute("href"), "/user/alice/lab");
  assert.equal(await link.getAttribute("rel"), "noopener");
  await snap("server-running");
});

test("the Server page fits a phone's screen", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(over <= 1, `the page is ${over}px wider than the screen`);
    await snap("server-narrow");
  } finally {
    await page.setViewportSize({ width: 1280, height: 900 });
  }
});

test("JupyterLab loads through nbhub's proxy", async () => {
  const [p] = await Promise.all([ctx.waitForEvent("page"),
    page.click('.server[data-state="running"] a:text-is("Open JupyterLab")')]);
  lab = p;
  lab.on("websocket", (ws) => sockets.push(ws.url()));
  await lab.locator('.jp-LauncherCard[data-category="Notebook"]').first().waitFor({ timeout: 150000 });
  assert.ok(lab.url().startsWith(URL + "/user/alice/"), lab.url());
  await snap("jupyterlab", lab);
});

test("she creates a notebook and runs a cell: the kernel's websocket through the proxy", async () => {
  try {
    await lab.locator('.jp-LauncherCard[data-category="Notebook"]').first().click();
    const panel = lab.locator(".jp-NotebookPanel:not(.lm-mod-hidden)");
    const cell = panel.locator(".jp-Cell .cm-content").first();
    await cell.waitFor({ timeout: 60000 });
    // The kernel is connected (through the proxy's websocket) when the
    // status bar says Idle.
    await lab.locator('.jp-StatusBar-TextItem:has-text("| Idle")').first().waitFor({ timeout: 120000 });
    await cell.click();
    await lab.keyboard.type("x = 6*7; x");
    assert.equal((await cell.textContent()).trim(), "x = 6*7; x");
    await lab.keyboard.press("Shift+Enter");
    await lab.waitForFunction(() => [...document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output")]
      .some((e) => e.textContent.trim() === "42"), null, { timeout: 90000 });
    const prefix = URL.replace(/^http/, "ws") + "/user/alice/api/kernels/";
    assert.ok(sockets.some((u) => u.startsWith(prefix)), `no kernel websocket through the proxy: ${sockets.join(", ")}`);
    await snap("notebook-42", lab);
  } catch (e) {
    await snap("notebook-failed", lab).catch(() => {});
    throw e;
  }
});

test("a browser without a session is sent to log in, then straight back to JupyterLab", async () => {
  const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const p = await other.newPage();
  watch(p);
  await p.goto(URL + "/user/alice/lab");
  await p.waitForFunction(() => location.pathname === "/login");
  assert.equal(new globalThis.URL(p.url()).searchParams.get("next"), "/user/alice/lab");
  await p.fill("#user", "alice");
  await p.fill("#pass", process.env.NBHUB_ALICE_PASSWORD);
  await p.click('button[type="submit"]');
  // JupyterLab restores alice's workspace: the launcher or the notebook she
  // opened before, whichever is in front (hidden panels do not count).
  await p.waitForFunction(() => document.querySelector(
    ".jp-LabShell .jp-Launcher:not(.lm-mod-hidden), .jp-LabShell .jp-NotebookPanel:not(.lm-mod-hidden)"),
  null, { timeout: 150000 }).catch(async (e) => { await snap("login-next-failed", p).catch(() => {}); throw e; });
  assert.ok(p.url().startsWith(URL + "/user/alice/"), p.url());
  // A next= that leaves the origin is not followed.
  await p.goto(URL + "/login?next=//evil.example/x");
  await p.fill("#user", "alice");
  await p.fill("#pass", process.env.NBHUB_ALICE_PASSWORD);
  await p.click('button[type="submit"]');
  await p.waitForFunction(() => location.pathname === "/flows");
  assert.ok(p.url().startsWith(URL + "/"), p.url());
  await other.close();
});

test("a Spark profile's server shows its cluster and the Spark UI through nbhub",
  { skip: !process.env.SPARK && "no Java or pyspark" }, async () => {
  assert.match(await page.locator('label.choice:has(input[value="spark"])').textContent(), /Spark: 1 worker × 512 MiB/);
  await page.fill("#server-name", "sparky");
  await page.check("#profile-spark");
  await page.click('form button[type="submit"]:text-is("Start")');
  const card = page.locator('.server[data-server="sparky"][data-state="running"]');
  await card.waitFor({ timeout: 180000 });
  await page.fill("#server-name", "");
  const ui = card.locator('.spark a:text-is("Spark UI")');
  await ui.waitFor({ timeout: 60000 });
  const href = await ui.getAttribute("href");
  assert.match(href, /^\/spark\/.+\/ui\/$/);
  assert.match(await card.locator(".spark").textContent(), /Spark cluster \S+/);
  await snap("server-spark");
  // The master's UI through nbhub's proxy (the cluster may still be coming up).
  const [sp] = await Promise.all([ctx.waitForEvent("page"), ui.click()]);
  const deadline = Date.now() + 90000;
  while (!/Spark Master at spark:\/\//.test(await sp.textContent("body").catch(() => "")) && Date.now() < deadline) {
    await sp.waitForTimeout(2000);
    await sp.reload().catch(() => {});
  }
  assert.match(await sp.textContent("body"), /Spark Master at spark:\/\//);
  await snap("spark-ui", sp);
  await sp.close();
  // Stopped, the named server's card goes (its cluster with it: test_hub_spark.py).
  await card.locator('button:text-is("Stop")').click();
  await page.locator('.server[data-server="sparky"]').waitFor({ state: "detached", timeout: 90000 });
});

// Whatever a failed step left: no named server still running.
test("alice's named servers are stopped", async () => {
  for (const b of await page.locator('.server:not([data-server="default"]) button:text-is("Stop")').all()) await b.click();
  await page.waitForFunction(() => ![...document.querySelectorAll('.server:not([data-server="default"])')]
    .some((e) => ["running", "starting", "stopping"].includes(e.dataset.state)), null, { timeout: 90000 });
});

test("the admin sees alice's server on /admin/servers and stops it", async () => {
  const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const p = await other.newPage();
  watch(p);
  await logIn(p, process.env.NBHUB_ADMIN, process.env.NBHUB_ADMIN_PASSWORD);
  await p.click('nav a:text-is("Servers")');
  const row = p.locator('table.servers tr[data-owner="alice"][data-server="default"]');
  await row.waitFor();
  assert.equal(await row.getAttribute("data-state"), "running");
  const cells = await row.locator("td").allTextContents();
  assert.equal(cells[0], "alice");
  assert.equal(cells[2], "small");
  assert.match(cells[4], /ago/);                  // age
  assert.match(cells[6], /[KMG]iB|—/);            // memory
  await snap("admin-servers", p);
  await row.locator('button:text-is("Stop")').click();
  await p.locator('table.servers tr[data-owner="alice"][data-server="default"]:not([data-state="running"])')
    .waitFor({ timeout: 60000 });
  // once stopped (the list is looked at again every 10 s), the row says who stopped it
  const whyRow = p.locator('table.servers tr[data-owner="alice"][data-server="default"][data-state="stopped"] .stop-reason');
  await whyRow.waitFor({ timeout: 60000 });
  assert.equal(await whyRow.textContent(), "stopped by admin admin");
  await snap("admin-stopped", p);
  await other.close();
  // alice's page says so.
  await page.reload();
  await page.locator('.server[data-server="default"]:is([data-state="stopped"], [data-state="stopping"])').waitFor({ timeout: 60000 });
  // ... and why, once the stop is over (the card looks again while stopping).
  const why = page.locator('.server[data-server="default"][data-state="stopped"] .stop-reason');
  await why.waitFor({ timeout: 60000 });
  assert.match(await why.textContent(), /^Stopped: stopped by admin admin/);
  await snap("server-stopped");
});

test("no errors on nbhub's pages", () => {
  assert.deepEqual(problems, []);
});
