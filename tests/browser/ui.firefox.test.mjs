// nbhub's web UI in Debian's Firefox ESR, against the server that
// tests/blackbox/test_ui_browser.py started.  Environment: NBHUB_URL,
// NBHUB_USER, NBHUB_PASSWORD, NBHUB_TOKEN (an admin API token), NBHUB_SHOTS,
// FIREFOX.
//
// Why puppeteer-core and not playwright-core as in ui.test.mjs: playwright
// drives Firefox only through its own patched build, which it downloads and
// this project cannot (browsers come from Debian).  Stock Firefox speaks
// WebDriver BiDi, and puppeteer-core drives it with nothing downloaded.
//
// What is checked here is what depends on the browser engine: the login
// form, the flows list, a run page that follows the server-sent events, the
// output notebook in its sandboxed iframe (and a hostile one running
// nothing), a phone-sized screen, the keyboard, the browser's time zone, and
// that Firefox's enforcement of the strict Content-Security-Policy blocks
// nothing the UI needs.  Cancelling, Spark progress and the admin pages stay
// in the chromium test: they test the server's answers more than the engine.
// The steps share one browser and run in order; each leaves a screenshot in
// $NBHUB_SHOTS.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";

const URL = process.env.NBHUB_URL;
const SHOTS = process.env.NBHUB_SHOTS;
// Not the machine's zone: times must follow the browser's.  Firefox takes
// its zone from TZ like any program; the chromium test sets it through
// playwright instead.
const TZ = "Asia/Tokyo";
const OK_GREEN = "rgb(26, 127, 55)";  // --ok in app.css: a finished task and run are this colour
let browser, page;
const requests = [];                  // every URL the page asked for (the event stream among them)
const problems = [];                  // console errors, page errors and CSP violations, checked at the end
const blocked = [];                   // the same, from the hostile notebook's document: its defences at work
let shot = 0;
let failedRun = null;                 // ui-demo, started through the API before the browser (its boom task fails)
let evilRun = null;                   // evil, a notebook whose outputs try script injection, started likewise
let greenRun = null;                  // plot-on-demand, triggered through the page

async function snap(name) {
  shot += 1;
  await page.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

// The first element matching sel whose text is exactly text, once there is one.
async function byText(sel, text, timeout = 30000) {
  const h = await page.waitForFunction((s, t) =>
    [...document.querySelectorAll(s)].find((e) => e.textContent.trim() === t), { timeout }, sel, text);
  return h.asElement();
}

const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

// The elements that reach past the window's right edge (outermost first),
// for the message of a failed width check.
const wideElements = () => page.evaluate(() => [...document.querySelectorAll("main *")]
  .filter((e) => e.getBoundingClientRect().right > innerWidth + 1)
  .slice(0, 6).map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().width)}px`));

// What has the keyboard focus, and whether the user can see that it has:
// :focus-visible matches and the outline the stylesheet gives it is drawn.
const focused = () => page.evaluate(() => {
  const el = document.activeElement;
  const cs = getComputedStyle(el);
  const r = el.getBoundingClientRect();
  return {
    tag: el.tagName.toLowerCase(), id: el.id, text: el.textContent.trim().slice(0, 40),
    fv: el.matches(":focus-visible"), outline: `${cs.outlineStyle} ${cs.outlineWidth}`, rect: [r.left, r.top, r.right, r.width],
    visible: el.matches(":focus-visible") && cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) >= 1
      && r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth,
  };
});

// A run of flow started through the API; its id.
async function trigger(flow) {
  const r = await fetch(`${URL}/api/v1/flows/${flow}/runs`, {
    method: "POST", body: "{}",
    headers: { Authorization: `Bearer ${process.env.NBHUB_TOKEN}`, "Content-Type": "application/json" },
  });
  const body = await r.text();
  assert.equal(r.status, 201, body);
  return JSON.parse(body).id;
}

// What the browser refused in the hostile notebook is expected; anything else is a problem.
const report = (msg) => (/\/tasks\/evil\//.test(msg) ? blocked : problems).push(msg);

before(async () => {
  // The runs whose outputs are only looked at start now, through the API,
  // so that they run while Firefox starts (the budget of this file is a minute).
  [failedRun, evilRun] = await Promise.all([trigger("ui-demo"), trigger("evil")]);

  browser = await puppeteer.launch({
    browser: "firefox", executablePath: process.env.FIREFOX, headless: true,
    env: { ...process.env, TZ }, defaultViewport: { width: 1280, height: 900 },
  });
  // A tab of our own: the window's first tab never gets the focus in
  // headless Firefox (document.hasFocus() stays false, so neither autofocus
  // nor :focus-visible would ever apply there); a new one has it.
  const [first] = await browser.pages();
  page = await browser.newPage();
  await first.close();
  page.setDefaultTimeout(30000);
  page.on("request", (r) => requests.push(r.url()));
  page.on("console", (m) => { if (m.type() === "error") report(`console: ${m.text()}`); });
  // Firefox reports what its CSP blocked as page errors too, in every frame.
  page.on("pageerror", (e) => report(`pageerror: ${e.message}`));
  page.on("dialog", (d) => { problems.push(`unexpected ${d.type()}: ${d.message()}`); d.dismiss(); });
  // securitypolicyviolation in every document, the sandboxed notebook frames
  // included (the preload script runs there although the page's own scripts
  // may not).
  await page.exposeFunction("__nbhubCspViolation", (v) => { report(`csp: ${v}`); });
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__nbhubCspViolation(`${e.violatedDirective} blocked ${e.blockedURI} in ${e.documentURI}`));
  });
});

after(async () => {
  await browser?.close();
});

test("Firefox ESR from Debian, in the test's time zone, its CSP reports heard", async () => {
  assert.match(await browser.version(), /^firefox\/\d+/);
  // The last step's "nothing blocked" means something only if a blocked
  // load is heard: a page whose policy refuses its own image.
  await page.goto(`data:text/html,<meta http-equiv="Content-Security-Policy" content="img-src 'none'"><img src="data:,x">`);
  const heard = (re) => problems.some((p) => re.test(p));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < 50 && !heard(/^csp: img-src/); i++) await sleep(100);
  assert.ok(heard(/^csp: img-src/), `no violation report: ${JSON.stringify(problems)}`);
  // Firefox also logs it as a page error; let that one arrive before the slate is wiped.
  for (let i = 0; i < 10 && !heard(/^pageerror: Content-Security-Policy/); i++) await sleep(100);
  problems.length = 0;
  await page.goto(URL + "/");
  assert.equal(await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone), TZ);
});

test("log in through the form with the keyboard", async () => {
  await page.waitForSelector("#user");
  // The field has the focus from the start (autofocus on a node the page inserted).
  await page.waitForFunction(() => document.activeElement?.id === "user");
  await snap("login");
  await page.keyboard.type(process.env.NBHUB_USER);
  await page.keyboard.press("Tab");
  await page.keyboard.type(process.env.NBHUB_PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForSelector("table.list");
  assert.equal(await page.$eval("#who", (e) => e.textContent), process.env.NBHUB_USER);
});

test("the flows list shows the example flows, times in the browser's zone", async () => {
  for (const name of ["daily-report", "every-30s", "plot-on-demand", "ui-demo"]) await byText("table.list a", name);
  const row = await page.evaluate(() => {
    const a = [...document.querySelectorAll("table.list a")].find((e) => e.textContent === "daily-report");
    const tr = a.closest("tr"), t = tr.querySelector("time");
    return { text: tr.textContent, iso: t.getAttribute("datetime"), shown: t.textContent };
  });
  assert.match(row.text, /every day at 05:00 \(Europe\/Berlin\)/);
  assert.match(row.text, /0 5 \* \* \*/);
  // The next run as Tokyo's clock shows it (the machine's zone is another).
  const tokyo = await page.evaluate((i, tz) => new Date(i).toLocaleString(undefined, { timeZone: tz }), row.iso, TZ);
  assert.equal(row.shown, tokyo);
  assert.equal(await overflow() <= 1, true, "the flows page is wider than the window");
  await snap("flows");
});

test("trigger plot-on-demand and watch the run turn green live", async () => {
  await (await byText("table.list a", "plot-on-demand")).click();
  await page.waitForSelector(".dag svg g.node");
  assert.equal(await page.$$eval(".dag g.node", (n) => n.length), 3);
  const freq = await page.waitForSelector("#p-freq");
  assert.equal(await freq.evaluate((e) => e.value), "2");
  await freq.click({ count: 3 });
  await freq.type("3.5");
  await snap("flow-detail");
  // Mark the document: a reload would lose the mark.
  await page.evaluate(() => { window.__noReload = true; });
  await (await byText("button", "Trigger")).click();
  await page.waitForFunction(() => /^\/runs\/\d+$/.test(location.pathname));
  greenRun = await page.evaluate(() => location.pathname.split("/")[2]);
  await page.waitForSelector('tr[data-task="plot"]');
  await snap("run-started");
  // Only the event stream re-draws the task table (the page polls no state).
  await page.waitForSelector('tr[data-task="plot"][data-state="success"]', { timeout: 60000 });
  await page.waitForSelector('tr[data-task="tags"][data-state="success"]', { timeout: 60000 });
  await page.waitForSelector('tr[data-task="alert"][data-state="skipped"]', { timeout: 30000 });
  const head = await byText(".head .state", "success");
  assert.equal(await head.evaluate((e) => getComputedStyle(e).backgroundColor), OK_GREEN);
  assert.equal(await page.$eval('tr[data-task="plot"] .state', (e) => getComputedStyle(e).backgroundColor), OK_GREEN);
  assert.equal(await page.evaluate(() => window.__noReload), true, "the run page reloaded");
  assert.ok(requests.some((u) => u.endsWith("/api/v1/events")), "the page never opened /api/v1/events");
  assert.match(await page.$eval("p.small", (e) => e.textContent), /"freq":3\.5/);
  assert.ok(await page.$$eval(".timeline .bar", (b) => b.length) >= 2);
  await snap("run-green");
});

// The frame that shows one task's output notebook, once its document is there.
async function notebookFrame(task) {
  const f = await page.waitForFrame((fr) => fr.url().includes(`/tasks/${task}/output.html`));
  await f.waitForSelector("body section.cell");
  return f;
}

test("the output notebook shows the plot inside the sandboxed iframe", async () => {
  await (await page.waitForSelector('tr[data-task="plot"] td a')).click();
  const frame = await notebookFrame("plot");
  const img = await frame.waitForSelector('img[src^="data:image/png;base64,"]');
  await img.evaluate((el) => el.decode());
  const [w, hgt] = await img.evaluate((el) => [el.naturalWidth, el.naturalHeight]);
  assert.ok(w > 100 && hgt > 100, `plot image decoded at ${w}x${hgt}`);
  assert.equal(await page.$eval("iframe.nb", (e) => e.getAttribute("sandbox")), "allow-popups allow-popups-to-escape-sandbox");
  // An opaque origin: nothing in the notebook can act as the viewer.
  assert.equal(await frame.evaluate(() => window.origin), "null");
  await snap("output-plot");
});

test("the failed notebook shows its traceback with colours", async () => {
  await page.goto(`${URL}/runs/${failedRun}`);
  await page.waitForSelector('tr[data-task="boom"][data-state="failed"]', { timeout: 60000 });
  await (await page.waitForSelector('tr[data-task="boom"] td a')).click();
  const frame = await notebookFrame("boom");
  const tb = await frame.waitForSelector("pre.out.error");
  assert.match(await tb.evaluate((e) => e.textContent), /ZeroDivisionError/);
  assert.ok(await frame.$$eval("pre.out.error span[class^=ansi-]", (s) => s.length) > 0, "the traceback lost its colours");
  assert.equal(await frame.$$eval("section.cell.failed", (s) => s.length), 1);
  await snap("output-error");
});

test("script injection through outputs, SVG and markdown runs nothing", async () => {
  await page.goto(`${URL}/runs/${evilRun}`);
  await page.waitForSelector('tr[data-task="evil"][data-state="success"]', { timeout: 60000 });
  await (await page.waitForSelector('tr[data-task="evil"] td a')).click();
  const frame = await notebookFrame("evil");
  await frame.waitForSelector("#evil-html");
  await frame.waitForSelector('img[src^="data:image/svg+xml"]');
  await new Promise((r) => setTimeout(r, 500));   // give any injected handler its chance
  assert.equal(await page.evaluate(() => document.body.dataset.pwned), undefined);
  assert.equal(await frame.$eval("body", (b) => b.getAttribute("data-pwned")), null);
  assert.equal(await frame.evaluate(() => window.origin), "null");
  // The markdown's <img src=x> was refused by the notebook's CSP: the
  // defences were exercised, not idle.
  assert.ok(blocked.some((m) => /^csp: img-src/.test(m)), JSON.stringify(blocked));
  await snap("hostile-notebook");
});

test("a 390 px screen: every page fits without horizontal scrolling", async () => {
  await page.setViewport({ width: 390, height: 844 });
  try {
    for (const [hash, sel, name] of [["flows", "table.list", "flows"], ["flows/daily-report", ".dag svg", "flow"],
      [`runs/${greenRun}`, 'tr[data-task="plot"]', "run"], [`runs/${greenRun}/tasks/plot/output`, "iframe.nb", "output"]]) {
      await page.goto(URL + "/" + hash);
      await page.waitForSelector(sel);
      const over = await overflow();
      assert.ok(over <= 1, `${hash} is ${over}px wider than the screen: ${await wideElements()}`);
      await snap(`narrow-${name}`);
    }
  } finally {
    await page.setViewport({ width: 1280, height: 900 });
  }
});

test("the keyboard reaches the links and buttons, with a visible focus", async () => {
  // A fresh document: the focus starts at the top.
  await page.goto("about:blank");
  await page.goto(URL + "/flows");
  await page.waitForSelector("table.list");
  const seen = [];
  const nav = ["Skip to content", "nbhub", "Flows", "Runs", "Server", "Servers", "Users", "Log out"];
  for (let i = 0; i <= nav.length; i++) {
    await page.keyboard.press("Tab");
    const f = await focused();
    assert.ok(f.visible, `no visible focus on ${JSON.stringify(f)}`);
    seen.push(f.text);
    if (i === 0) await snap("focus-skip-link");
  }
  assert.deepEqual(seen.slice(0, nav.length), nav);
  // The next stop is the first link of the page's own content.
  assert.ok(await page.evaluate(() => document.getElementById("main").contains(document.activeElement)), seen[nav.length]);

  // The skip link takes the focus to the content and leaves the page as it was.
  await page.keyboard.down("Shift");
  for (let i = 0; i < nav.length; i++) await page.keyboard.press("Tab");
  await page.keyboard.up("Shift");
  assert.equal((await focused()).text, "Skip to content");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.activeElement?.id === "main");
  assert.equal(await page.evaluate(() => location.pathname), "/flows");
  assert.ok(await page.$("table.list"), "the skip link replaced the page");
  await page.keyboard.press("Tab");
  const first = await focused();
  assert.ok(first.visible && first.tag === "a", JSON.stringify(first));

  // Enter follows a flow link; Tab then reaches the flow's Trigger button.
  await page.keyboard.press("Enter");
  await page.waitForSelector(".dag svg");
  let f = null;
  for (let i = 0; i < 60 && !(f && f.tag === "button" && f.text === "Trigger"); i++) {
    await page.keyboard.press("Tab");
    f = await focused();
    assert.ok(f.visible, `no visible focus on ${JSON.stringify(f)}`);
  }
  assert.equal(f.text, "Trigger", "Tab never reached the Trigger button");
  await snap("focus-trigger");
});

test("after logging out, the login page has its field focused again", async () => {
  await (await byText("button", "Log out")).click();
  await page.waitForSelector("#user");
  // autofocus acts once per document: the router focuses the field itself.
  await page.waitForFunction(() => document.activeElement?.id === "user");
  assert.equal(await page.$("#nav:not([hidden])"), null, "the navigation is still shown");
  await snap("logged-out");
});

test("no console errors, no page errors, nothing blocked by the CSP", () => {
  console.log("refused in the hostile notebook (expected):\n  " + blocked.join("\n  "));
  assert.deepEqual(problems, []);
});
