// Console sign-in through a real OpenID provider (tests/console/oidc-provider.mjs, npm
// `oidc-provider`), in Debian's Chromium: the whole authorization-code + PKCE round trip,
// the groups claim mapped to permissions, a person in no mapped group refused, sign-out.
// Run by .ci/console after console.spec.mjs, against the same daemon.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const { BASE, ADMIN_TOKEN, ISSUER } = process.env;
const launch = {
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
};

async function api(path, init = {}) {
  const r = await fetch(BASE + path, {
    ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(init.headers ?? {}) },
  });
  assert.equal(r.status, 200, `${path}: ${r.status}`);
  return r.json();
}

/// From the console's sign-in page through the provider's own pages and back.
// Signs `login` in through the provider. `admitted`: the callback page moves itself on to
// the overview (a meta refresh), so wait until it has — a navigation started before it
// would be interrupted by it; a refused person stays on the callback's page.
async function signInAt(browser, login, admitted = true) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  await page.goto(BASE + "/console/");
  assert.match(page.url(), /\/console\/login$/);
  await page.click("#oidc");
  await page.waitForURL((url) => url.href.startsWith(ISSUER + "/interaction/"));
  await page.fill("input[name=login]", login);
  await page.fill("input[name=password]", "any password");
  await page.click("button[type=submit]");
  // The provider asks for consent to the scopes once per person.
  await page.waitForURL((url) => !url.href.startsWith(ISSUER) || /consent|interaction/.test(url.href));
  if (page.url().startsWith(ISSUER)) {
    await page.click("button[type=submit]");
  }
  await page.waitForURL((url) => url.href.startsWith(BASE + "/console/"));
  if (admitted) {
    await page.waitForURL(BASE + "/console/");
  }
  return { context, page, problems };
}

const results = [];
async function step(name, body) {
  const started = Date.now();
  await body();
  results.push(name);
  console.log(`console oidc: ok  ${name} (${Date.now() - started} ms)`);
}

const browser = await chromium.launch(launch);
try {
  const target = (await api("/v1/callbacks?state=pending&limit=2")).items.map((c) => c.callbackId);
  assert.equal(target.length, 2, "two pending callbacks to work on");

  await step("a supervisor signs in through the provider and may cancel", async () => {
    const sam = await signInAt(browser, "sam");
    // Set on the provider's cross-site return, sent on the follow-up despite SameSite=Strict.
    await sam.page.waitForURL(BASE + "/console/");
    assert.match(await sam.page.textContent(".who"), /Signed in as sam/);
    const cookies = await sam.context.cookies(BASE + "/console/oidc/callback");
    const session = cookies.find((c) => c.name === "callbackd_console");
    assert.ok(session, "a session cookie");
    assert.equal(session.sameSite, "Strict");
    assert.equal(session.httpOnly, true);
    assert.equal(cookies.find((c) => c.name === "callbackd_oidc"), undefined, "the sign-in cookie is gone");
    await sam.page.goto(`${BASE}/console/callbacks/${target[0]}`);
    await sam.page.fill("#reason", "signed in through the provider");
    await sam.page.click("#cancel button");
    await sam.page.waitForURL(`${BASE}/console/callbacks/${target[0]}`);
    assert.equal((await sam.page.textContent("#state")).trim(), "cancelled");
    const events = await api(`/v1/callbacks/${target[0]}/events`);
    assert.equal(events.items.find((e) => e.kind === "cancelled").actor, "sam", "recorded as the person");
    assert.deepEqual(sam.problems, [], "no errors in the browser console");

    await step("sign-out ends the session", async () => {
      await sam.page.goto(BASE + "/console/");
      await sam.page.click("header form button");
      await sam.page.waitForURL(BASE + "/console/login");
      await sam.page.goto(BASE + "/console/callbacks");
      assert.match(sam.page.url(), /\/console\/login$/);
    });
    await sam.context.close();
  });

  await step("a reader's group grants reading only: no cancel form, a forged post refused", async () => {
    const rita = await signInAt(browser, "rita");
    await rita.page.goto(`${BASE}/console/callbacks/${target[1]}`);
    assert.equal((await rita.page.textContent("#state")).trim(), "pending");
    assert.equal(await rita.page.$("#cancel"), null, "no cancel form");
    const csrf = await rita.page.getAttribute("input[name=csrf]", "value");
    const r = await rita.page.request.post(`${BASE}/console/callbacks/${target[1]}/cancel`, {
      form: { csrf, reason: "not mine to cancel" },
    });
    assert.equal(r.status(), 403);
    assert.equal((await api(`/v1/callbacks/${target[1]}`)).state, "pending");
    await rita.context.close();
  });

  await step("a person in no mapped group is refused", async () => {
    const olga = await signInAt(browser, "olga", false);
    assert.match(olga.page.url(), /\/console\/oidc\/callback/);
    assert.match(await olga.page.textContent(".error"), /not allowed into this console/);
    await olga.page.goto(BASE + "/console/");
    assert.match(olga.page.url(), /\/console\/login$/, "no session");
    await olga.context.close();
  });
} finally {
  await browser.close();
}
console.log(`console oidc: ${results.length} steps passed`);
