// nbhub's web UI in Debian's chromium (playwright-core), against the server
// that tests/blackbox/test_ui_browser.py started.  The steps share one
// browser session and run in order; every step leaves a screenshot in
// $NBHUB_SHOTS.  Environment: NBHUB_URL, NBHUB_USER, NBHUB_PASSWORD, CHROMIUM.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const URL = process.env.NBHUB_URL;
const SHOTS = process.env.NBHUB_SHOTS;
const TZ = "Asia/Tokyo";            // not the machine's zone: times must follow the browser's
let browser, ctx, page;
const problems = [];                // console errors and page errors, checked at the end
const blocked = [];                 // what the browser refused to run or load in a notebook view
let shot = 0;

async function snap(name, p = page) {
  shot += 1;
  await p.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
  ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: TZ, locale: "en-GB" });
  page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const t = m.text();
    // The first GET /api/v1/me before logging in answers 401 by design.
    if (/401/.test(t)) return;
    // The sandbox and the CSP at work on a notebook's own content.
    if (/output\.html|tasks\/[^/]+\/x'/.test(t) && /Blocked script execution|violates the following Content Security Policy/.test(t)) {
      blocked.push(t);
      return;
    }
    problems.push(`console: ${t}`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e}`));
  page.on("dialog", (d) => {
    // Only our own confirm() is expected; an alert() would be injected script.
    if (d.type() !== "confirm") problems.push(`unexpected ${d.type()}: ${d.message()}`);
    d.accept();
  });
});

after(async () => {
  await browser?.close();
});

test("log in with the keyboard", async () => {
  await page.goto(URL + "/");
  await page.waitForSelector("#user");
  await snap("login");
  await page.focus("#user");
  await page.keyboard.type(process.env.NBHUB_USER);
  await page.keyboard.press("Tab");
  await page.keyboard.type(process.env.NBHUB_PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForSelector("table.list");
  assert.equal(await page.locator("#who").textContent(), process.env.NBHUB_USER);
});

test("the flows list shows the example flows with schedules in words", async () => {
  for (const name of ["daily-report", "every-30s", "plot-on-demand", "ui-demo", "slow", "evil"])
    await page.locator(`a:text-is("${name}")`).waitFor();
  const row = page.locator("tr", { has: page.locator('a:text-is("daily-report")') });
  assert.match(await row.textContent(), /every day at 05:00 \(Europe\/Berlin\)/);
  assert.match(await row.textContent(), /0 5 \* \* \*/);
  // The next run is shown in the browser's zone (Tokyo), from the ISO time in <time datetime>.
  const t = row.locator("time").first();
  const iso = await t.getAttribute("datetime");
  const shown = await t.textContent();
  const expect = await page.evaluate((i) => new Date(i).toLocaleString(), iso);
  assert.equal(shown, expect);
  assert.equal(await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone), TZ);
  // The flow description with markup is text, not an element.
  assert.equal(await page.locator("td img").count(), 0);
  await snap("flows");
});

test("trigger ui-demo with a parameter changed and watch it turn green live", async () => {
  await page.click('a:text-is("ui-demo")');
  await page.waitForSelector(".dag svg g.node");
  assert.equal(await page.locator(".dag g.node").count(), 2);
  assert.equal(await page.locator(".dag path.edge").count(), 1);
  const freq = page.locator("#p-freq");
  assert.equal(await freq.inputValue(), "2");
  await snap("flow-detail");
  await freq.fill("3.5");
  // Mark the document: if the page reloads, the mark is gone.
  await page.evaluate(() => { window.__noReload = true; });
  await page.click('button:text-is("Trigger")');
  await page.waitForURL(/\/runs\/\d+$/);
  await page.waitForSelector('tr[data-task="plot"]');
  await snap("run-started");
  await page.waitForSelector('tr[data-task="plot"][data-state="success"]', { timeout: 120000 });
  await page.waitForSelector('tr[data-task="boom"][data-state="failed"]', { timeout: 120000 });
  await page.locator('.head .state:text-is("failed")').waitFor({ timeout: 30000 });
  assert.equal(await page.evaluate(() => window.__noReload), true, "the run page reloaded");
  assert.match(await page.locator("p.small").textContent(), /"freq":3\.5/);
  assert.ok(await page.locator(".timeline .bar").count() >= 2);
  await snap("run-done");
});

test("the output notebook shows the plot image; the failed one its traceback", async () => {
  const runUrl = page.url();
  await page.click('tr[data-task="plot"] a:text-is("notebook")');
  const frame = page.frameLocator("iframe.nb");
  const img = frame.locator('img[src^="data:image/png;base64,"]').first();
  await img.waitFor({ timeout: 30000 });
  const size = await img.evaluate((el) => [el.naturalWidth, el.naturalHeight]);
  assert.ok(size[0] > 100 && size[1] > 100, `plot image decoded at ${size}`);
  assert.equal(await page.locator("iframe.nb").getAttribute("sandbox"), "allow-popups allow-popups-to-escape-sandbox");
  await snap("output-plot");
  await page.goto(runUrl);
  await page.click('tr[data-task="boom"] a:text-is("notebook")');
  const tb = page.frameLocator("iframe.nb").locator("pre.out.error");
  await tb.waitFor({ timeout: 30000 });
  assert.match(await tb.textContent(), /ZeroDivisionError/);
  // The traceback keeps IPython's colours as spans.
  assert.ok(await page.frameLocator("iframe.nb").locator("pre.out.error span[class^=ansi-]").count() > 0);
  assert.equal(await page.frameLocator("iframe.nb").locator("section.cell.failed").count(), 1);
  await snap("output-error");
});

test("cancel a long run", async () => {
  await page.goto(URL + "/flows/slow");
  await page.click('button:text-is("Trigger")');
  await page.waitForURL(/\/runs\/\d+$/);
  await page.waitForSelector('tr[data-task="count"][data-state="running"]', { timeout: 60000 });
  // The log follows the running task.
  await page.waitForFunction(() => /\n5\n/.test(document.querySelector("pre.log").textContent), null, { timeout: 30000 });
  await snap("long-run");
  await page.click('button:text-is("Cancel run")');
  await page.waitForSelector('tr[data-task="count"][data-state="cancelled"]', { timeout: 60000 });
  await page.locator('.head .state:text-is("cancelled")').waitFor({ timeout: 30000 });
  await snap("cancelled");
});

test("a Spark task's jobs appear on the run page while it runs", async () => {
  await page.goto(URL + "/flows/spark-demo");
  await page.click('button:text-is("Trigger")');
  await page.waitForURL(/\/runs\/\d+$/);
  await page.evaluate(() => { window.__noReload = true; });
  // A finished job shows while the task still runs: the panel follows the
  // task.spark events without a reload.
  await page.waitForSelector('.spark tr[data-status="SUCCEEDED"]', { timeout: 120000 });
  assert.equal(await page.locator('tr[data-task="jobs"]').getAttribute("data-state"), "running");
  // The running task's duration keeps counting (seconds by now, not the ms of the first draw).
  await page.waitForFunction(() => / s$/.test(document.querySelector('tr[data-task="jobs"] [data-since]')?.textContent || ""),
    null, { timeout: 10000 });
  await snap("spark-live");
  await page.waitForSelector('tr[data-task="jobs"][data-state="success"]', { timeout: 120000 });
  await page.waitForFunction(() => document.querySelectorAll('.spark tr[data-status="SUCCEEDED"]').length === 4,
    null, { timeout: 30000 });
  assert.equal(await page.evaluate(() => window.__noReload), true, "the run page reloaded");
  const bar = page.locator(".spark progress").first();
  assert.equal(await bar.getAttribute("value"), await bar.getAttribute("max"));
  await snap("spark-done");
});

test("script injection through outputs, SVG and markdown runs nothing", async () => {
  await page.goto(URL + "/flows/evil");
  await page.click('button:text-is("Trigger")');
  await page.waitForURL(/\/runs\/\d+$/);
  await page.waitForSelector('tr[data-task="evil"][data-state="success"]', { timeout: 120000 });
  await page.click('tr[data-task="evil"] a:text-is("notebook")');
  const frame = page.frameLocator("iframe.nb");
  await frame.locator("#evil-html").waitFor({ timeout: 30000 });
  await frame.locator('img[src^="data:image/svg+xml"]').waitFor();
  await page.waitForTimeout(500);   // give any injected handler its chance
  // The browser says it refused the notebook's scripts (the sandbox) and its
  // image from the network (the CSP): the defences were exercised, not idle.
  // (The console message can come late on a loaded machine: wait for it.)
  for (let i = 0; i < 50 && !blocked.some((t) => /Blocked script execution/.test(t)); i++) await page.waitForTimeout(200);
  assert.ok(blocked.some((t) => /Blocked script execution/.test(t)), JSON.stringify(blocked));
  assert.equal(await page.evaluate(() => document.body.dataset.pwned), undefined);
  assert.equal(await frame.locator("body").getAttribute("data-pwned"), null);
  // The frame has an opaque origin: it cannot read the app's cookies or DOM.
  const origin = await frame.locator("body").evaluate(() => { try { return window.origin; } catch { return "error"; } });
  assert.equal(origin, "null");
  await snap("hostile-notebook");
});

test("admins manage users and tokens", async () => {
  await page.goto(URL + "/admin/users");
  await page.fill("#nu-name", "bob");
  await page.fill("#nu-pass", "bob-password-1");
  await page.click('button:text-is("Add")');
  await page.locator('td:text-is("bob")').waitFor();
  await page.locator("tr", { has: page.locator('td:text-is("bob")') }).locator('button:text-is("Tokens")').click();
  await page.fill("#tok-name", "laptop");
  await page.click('button:text-is("Create")');
  const tok = page.locator("code.token");
  await tok.waitFor();
  assert.match(await tok.textContent(), /^nbh_/);
  await snap("users");
});

test("a user without flows sees how to add the first one, and no admin pages", async () => {
  const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const p = await other.newPage();
  await p.goto(URL + "/");
  await p.fill("#user", "bob");
  await p.fill("#pass", "bob-password-1");
  await p.click('button[type="submit"]');
  await p.locator('h2:text-is("No flows yet")').waitFor();
  assert.match(await p.locator(".empty").textContent(), /nbhub flow apply hello\.yaml/);
  assert.equal(await p.locator("#nav-users").isVisible(), false);
  // The admins' flows are not his: the API says 404, the page says so.
  await p.goto(URL + "/flows/ui-demo");
  await p.locator(".error-box").waitFor();
  assert.match(await p.locator(".error-box").textContent(), /Not found/);
  await snap("empty-state", p);
  await other.close();
});

test("a narrow screen gets the same pages without horizontal scrolling", async () => {
  const narrow = await ctx.newPage();
  await narrow.setViewportSize({ width: 390, height: 844 });
  await narrow.goto(URL + "/flows");
  await narrow.waitForSelector("table.list");
  const over = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(over <= 1, `page is ${over}px wider than the screen`);
  await snap("narrow-flows", narrow);
  await narrow.goto(URL + "/flows/daily-report");
  await narrow.waitForSelector(".dag svg");
  await snap("narrow-flow", narrow);
  await narrow.close();
});

test("the flow list and a run show before any script runs: the server wrote them", async () => {
  // The logged-in session's cookie, in a context that runs no JavaScript at all.
  const still = await browser.newContext({ viewport: { width: 1280, height: 900 }, javaScriptEnabled: false,
    storageState: await ctx.storageState() });
  const p = await still.newPage();
  await p.goto(URL + "/flows");
  const row = p.locator("table.list tbody tr", { hasText: "daily-report" });
  assert.match(await row.textContent(), /every day at 05:00 \(Europe\/Berlin\)/);
  assert.equal(await p.locator("#who").textContent(), process.env.NBHUB_USER);
  const square = row.locator("a.sq").first();
  const href = await square.getAttribute("href");
  assert.match(href, /^\/runs\/\d+$/);
  await snap("server-written-flows", p);
  // A plain link, followed by the browser: the run's page comes written too.
  await square.click();
  await p.waitForURL(URL + href);
  assert.ok(await p.locator("table.list tbody tr[data-task]").count() > 0);
  await snap("server-written-run", p);
  await still.close();
  // With script, the page is drawn over the server's: times in the browser's zone, not UTC.
  const live = await ctx.newPage();
  await live.goto(URL + "/flows");
  await live.waitForFunction(() => document.querySelector("table.list time")?.textContent.indexOf("UTC") === -1);
  assert.doesNotMatch(await live.locator("table.list").textContent(), / UTC/);
  await live.close();
});

test("no console errors, no unexpected dialogs", () => {
  assert.deepEqual(problems, []);
});
