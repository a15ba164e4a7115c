// Single sign-on in Debian's chromium (playwright-core) through Keycloak's
// real login page, against the nbhub and Keycloak that
// tests/blackbox/test_sso.py (test_sso_in_chromium) started.  Environment:
// NBHUB_URL, NBHUB_SSO_USER, NBHUB_SSO_PASSWORD, NBHUB_SHOTS, CHROMIUM.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const URL = process.env.NBHUB_URL;
const USER = process.env.NBHUB_SSO_USER;
const SHOTS = process.env.NBHUB_SHOTS;
let browser, page;
const problems = [];
let shot = 0;

async function snap(name) {
  shot += 1;
  await page.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB" });
  page = await ctx.newPage();
  page.on("pageerror", (e) => problems.push(`pageerror: ${e}`));
});

after(async () => {
  await browser?.close();
});

test("the login page offers the provider and Keycloak's page logs the user in", async () => {
  await page.goto(URL + "/login?next=/runs");
  const sso = page.locator("#sso");
  await sso.waitFor();
  assert.equal((await sso.textContent()).trim(), "Log in with Keycloak");
  await snap("login-page");
  await sso.click();
  // Keycloak's own form, on Keycloak's origin
  await page.waitForSelector("#username");
  assert.ok(!page.url().startsWith(URL), page.url());
  await snap("keycloak-form");
  await page.fill("#username", USER);
  await page.fill("#password", process.env.NBHUB_SSO_PASSWORD);
  await page.click("#kc-login");
  await page.waitForFunction((u) => location.href.startsWith(u) && location.pathname === "/runs", URL);
  await page.locator("#who").filter({ hasText: USER }).waitFor();
  await snap("logged-in");
});

test("logout ends nbhub's session and the provider's: the next login asks again", async () => {
  await page.click("#logout");
  // through Keycloak's end-session endpoint and back to /login
  await page.waitForFunction((u) => location.href.startsWith(u + "/login"), URL, { timeout: 30000 });
  await page.locator("#sso").waitFor();
  await snap("logged-out");
  const me = await page.evaluate(async () => (await fetch("/api/v1/me")).status);
  assert.equal(me, 401);
  await page.click("#sso");
  await page.waitForSelector("#username");     // not logged straight back in
  await snap("asked-again");
  assert.deepEqual(problems, []);
});
