// The run page of a failed task whose kernel is kept (post_mortem:), in
// Debian's chromium (playwright-core), against the server that
// tests/blackbox/test_post_mortem.py started with one failed run.
// Environment: NBHUB_URL, NBHUB_USER, NBHUB_PASSWORD, NBHUB_RUN, CHROMIUM, NBHUB_SHOTS.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const URL = process.env.NBHUB_URL;
let browser, page;
const problems = [];

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB" });
  page = await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error" && !/401/.test(m.text())) problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));
});

after(async () => { await browser?.close(); });

test("the run page says until when the kernel is kept, and ends it", async () => {
  await page.goto(URL + "/");
  await page.fill("#user", process.env.NBHUB_USER);
  await page.fill("#pass", process.env.NBHUB_PASSWORD);
  await page.press("#pass", "Enter");
  await page.waitForSelector("table.list");
  await page.goto(`${URL}/runs/${process.env.NBHUB_RUN}`);
  const kept = page.locator('tr[data-task="t"] .kept');
  await kept.waitFor({ timeout: 30000 });
  assert.match(await kept.textContent(), /kernel kept until \d\d:\d\d/);
  assert.match(await kept.textContent(), new RegExp(`nbhub runs debug ${process.env.NBHUB_RUN} t`));
  await page.screenshot({ path: `${process.env.NBHUB_SHOTS}/postmortem-kept.png`, fullPage: true });
  await kept.locator('button:text-is("End kernel")').click();
  await page.locator('tr[data-task="t"] .kept').waitFor({ state: "detached", timeout: 30000 });
  assert.deepEqual(problems, []);
});
