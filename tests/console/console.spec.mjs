// End-to-end tests of the callbackd console in Debian's Chromium, headless, through
// playwright-core. Run by .ci/console, which starts a daemon on its own database and seeds
// it; the environment says where (BASE) and with which tokens.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// axe-core, injected into each page (the console's CSP refuses it: the context checking
// accessibility bypasses the CSP).
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

async function accessible(page, label) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }));
  const bad = result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ")}`);
  assert.deepEqual(bad, [], `${label}: no serious or critical accessibility violation`);
}

const { BASE, ADMIN_TOKEN, READER_TOKEN, EXPECT_PENDING, FAILED_ID, DISPATCHED_DAY, SHOTS } = process.env;
const launch = {
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
};

async function api(path) {
  const r = await fetch(BASE + path, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(r.status, 200, `${path}: ${r.status}`);
  return r.json();
}

async function signIn(browser, token, viewport = { width: 1280, height: 800 }, options = {}) {
  const context = await browser.newContext({ viewport, ...options });
  const page = await context.newPage();
  const problems = [];
  // Script errors and CSP refusals (an answer the test provokes, such as a 422, is not one).
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  await page.goto(BASE + "/console/");
  assert.match(page.url(), /\/console\/login$/, "without a session: the sign-in form");
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForURL(BASE + "/console/");
  return { context, page, problems };
}

const results = [];
async function step(name, body) {
  const started = Date.now();
  await body();
  results.push(`${name} (${Date.now() - started} ms)`);
  console.log(`console: ok  ${name}`);
}

const browser = await chromium.launch(launch);
try {
  await step("a wrong token is refused at sign-in", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(BASE + "/console/login");
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/login.png` });
    await page.fill("#token", "cbd_not-a-token");
    await page.click("button[type=submit]");
    assert.match(await page.textContent(".error"), /unknown or disabled/);
    await context.close();
  });

  const admin = await signIn(browser, ADMIN_TOKEN);
  const page = admin.page;

  await step("the overview shows the counts per state, refreshed in place", async () => {
    await page.waitForSelector(".card[data-state=pending] .n");
    assert.equal(Number(await page.textContent(".card[data-state=pending] .n")), Number(EXPECT_PENDING));
    assert.equal(Number(await page.textContent(".card[data-state=cancelled] .n")), 0);
    assert.equal((await page.textContent("#database .n")).trim(), "up");
    // htmx polls every 5 s: a cancellation made elsewhere shows without a reload.
    const list = await api("/v1/callbacks?state=pending&limit=1");
    const gone = list.items[0].callbackId;
    const r = await fetch(`${BASE}/v1/callbacks/${gone}?reason=elsewhere`, {
      method: "DELETE", headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(r.status, 200);
    // (Polled from here: the page's CSP rightly refuses Playwright's in-page evaluation.)
    const until = Date.now() + 12000;
    while ((await page.textContent(".card[data-state=cancelled] .n")) !== "1") {
      assert.ok(Date.now() < until, "the overview refreshed itself within 12 s");
      await new Promise((r) => setTimeout(r, 250));
    }
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/overview.png` });
  });

  let busiest;
  await step("the load chart's bars count the pending callbacks per hour", async () => {
    await page.goto(BASE + "/console/load?skillId=101");
    const bars = await page.$$eval("#load rect.bar", (rs) =>
      rs.map((r) => ({ hour: r.dataset.hour, skill: r.dataset.skill, count: Number(r.dataset.count) })));
    const total = bars.reduce((sum, b) => sum + b.count, 0);
    assert.equal(total, Number(EXPECT_PENDING) - 1, "every pending callback in some hour");
    assert.ok(bars.every((b) => b.skill === "101"));
    // Seeded 61 over ten hours of tomorrow, one of them cancelled: 7 in one hour at most.
    assert.equal(Math.max(...bars.map((b) => b.count)), 7);
    assert.ok((await page.$$("#load rect.closed")).length === 0, "skill 101 has no calling hours: nothing shaded");
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/load.png` });
    // A bar leads to its hour's callbacks.
    const tallest = bars.reduce((a, b) => (b.count > a.count ? b : a));
    await page.click(`#load rect.bar[data-hour="${tallest.hour}"]`);
    await page.waitForURL(/\/console\/callbacks\?/);
    assert.equal((await page.$$("#callbacks tbody tr")).length, tallest.count);
    busiest = { ...tallest, url: page.url() };
  });

  await step("bulk-cancel a filtered set after a confirmation stating how many", async () => {
    await page.goto(busiest.url);
    const ids = await page.$$eval("#callbacks tbody tr", (rows) => rows.map((r) => r.dataset.id));
    await page.click("#change-many");
    assert.match(await page.textContent("#selection"), /of Outbound Sales \(101\) due from/);
    await page.selectOption("#action", "cancel");
    await page.fill("#reason", "storm warning");
    await page.click("#bulk button");
    assert.equal(Number(await page.getAttribute("#confirm-count", "data-count")), busiest.count);
    for (const id of ids) assert.equal((await api(`/v1/callbacks/${id}`)).state, "pending", "nothing before confirming");
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/bulk-confirm.png` });
    await page.click("#bulk-confirm button");
    assert.equal(Number(await page.getAttribute("#outcome", "data-changed")), busiest.count);
    for (const id of ids) {
      assert.equal((await api(`/v1/callbacks/${id}`)).state, "cancelled");
      const events = await api(`/v1/callbacks/${id}/events`);
      assert.ok(events.items.some((e) => e.kind === "cancelled" && e.details.reason === "storm warning"));
    }
  });

  let first;
  await step("the list filters by state and pages with a cursor", async () => {
    await page.goto(BASE + "/console/callbacks?state=pending");
    const rows = await page.$$("#callbacks tbody tr");
    assert.equal(rows.length, 50, "a full page");
    first = await rows[0].getAttribute("data-id");
    assert.ok(await page.$("#next"), "a next page");
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/callbacks.png` });
    await page.click("#next");
    const more = await page.$$("#callbacks tbody tr");
    assert.equal(more.length, Number(EXPECT_PENDING) - 1 - busiest.count - 50, "the rest on the next page");
    const ids = new Set([first, ...(await Promise.all(more.map((r) => r.getAttribute("data-id"))))]);
    assert.equal(ids.size, more.length + 1, "no row twice");
    await page.goto(BASE + "/console/callbacks?state=cancelled");
    assert.equal((await page.$$("#callbacks tbody tr")).length, 1 + busiest.count);
  });

  await step("search by phone number (as typed) or the start of a last name", async () => {
    for (const q of ["(415) 555-2671", "+1 415 555 2671", "hop", "HOPPER"]) {
      await page.goto(`${BASE}/console/callbacks?q=${encodeURIComponent(q)}`);
      const names = await page.$$eval("#callbacks tbody td:nth-child(3)", (tds) => tds.map((t) => t.textContent.trim()));
      assert.deepEqual(names, ["Grace Hopper"], q);
    }
    await page.goto(`${BASE}/console/callbacks?q=nobody`);
    assert.equal((await page.$$("#callbacks tbody tr")).length, 0);
  });

  await step("a detail shows every field and the history as a timeline", async () => {
    await page.goto(`${BASE}/console/callbacks/${first}`);
    assert.equal((await page.textContent("#state")).trim(), "pending");
    assert.match(await page.textContent("#detail"), /\+442079460958/);
    const kinds = await page.$$eval("#events li", (lis) => lis.map((li) => li.dataset.kind));
    assert.deepEqual(kinds, ["created"]);
    assert.ok(await page.$("time + .viewer-time"), "times also in the viewer's zone");
    // Names, not numbers; the contact's own time first; the history in sentences.
    assert.equal((await page.textContent("#skill")).trim(), "Outbound Sales (101)");
    assert.match(await page.textContent("#due-local"), /^\w{3} \d{1,2} \w{3} \d{4} \d\d:\d\d \(London, (GMT|BST)\)/);
    assert.match(await page.textContent("#zone"), /Europe\/London \(its skill's\)/);
    assert.match(await page.textContent("#events li"), /^Booked for \w{3} \d{1,2} \w{3} \d\d:\d\d \(London\) on Outbound Sales \(101\) — by admin/);
    // The reschedule field reads the contact's time and starts at the current due time.
    assert.match(await page.textContent("label[for=when]"), /contact's time \(Europe\/London\)/);
    assert.match(await page.inputValue("#when"), /^\d{4}-\d\d-\d\dT\d\d:\d\d$/);
    // The agent picker offers active agents by name, the skill's own first.
    const offered = await page.$$eval("#agent-options option", (os) => os.map((o) => [o.value, o.textContent]));
    assert.deepEqual(offered.map(([v]) => v), ["7", "9"], "active agents only, the skill's first");
    assert.match(offered[0][1], /Jane Doe — jdoe · takes this skill/);
    const icon = await page.request.get(`${BASE}/favicon.ico`);
    assert.equal(icon.status(), 200);
    assert.equal(icon.headers()["content-type"], "image/svg+xml");
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/callback.png` });
  });

  await step("cancel with a reason: the database and the API agree", async () => {
    await page.fill("#reason", "customer called in");
    await page.click("#cancel button");
    await page.waitForURL(`${BASE}/console/callbacks/${first}`);
    assert.equal((await page.textContent("#state")).trim(), "cancelled");
    const callback = await api(`/v1/callbacks/${first}`);
    assert.equal(callback.state, "cancelled");
    const events = await api(`/v1/callbacks/${first}/events`);
    const cancelled = events.items.find((e) => e.kind === "cancelled");
    assert.equal(cancelled.details.reason, "customer called in");
    assert.equal(cancelled.actor, "admin");
    assert.equal(await page.$("#cancel"), null, "no cancel button once cancelled");
  });

  await step("reschedule in the contact's zone, and reassign to an agent and back", async () => {
    const target = (await api("/v1/callbacks?state=pending&limit=1")).items[0].callbackId;
    await page.goto(`${BASE}/console/callbacks/${target}`);
    const day = new Date(Date.now() + 3 * 86400000).toISOString().slice(0, 10);
    await page.fill("#when", `${day}T10:15`);
    await page.fill("#reschedule-reason", "asked for Monday");
    await page.click("#reschedule button");
    await page.waitForURL(`${BASE}/console/callbacks/${target}`);
    const moved = await api(`/v1/callbacks/${target}`);
    // Skill 101 is in Europe/London: 10:15 there.
    const local = new Date(moved.dueAt).toLocaleString("en-GB", { timeZone: "Europe/London", hour: "2-digit", minute: "2-digit" });
    assert.equal(local, "10:15");
    await page.fill("#agent", "7");
    await page.fill("#reassign-reason", "Jane knows the account");
    await page.click("#reassign button");
    await page.waitForURL(`${BASE}/console/callbacks/${target}`);
    assert.equal((await api(`/v1/callbacks/${target}`)).targetAgentId, 7);
    // An inactive agent is refused with the API's result code.
    assert.equal((await page.textContent("#routed-agent")).trim(), "Jane Doe (7)");
    assert.ok((await page.textContent("#events")).includes("Reassigned from the skill's queue to Jane Doe (7) — by admin: Jane knows the account"));
    await page.fill("#agent", "8");
    await page.fill("#reassign-reason", "try the inactive one");
    await page.click("#reassign button");
    assert.match(await page.textContent(".error"), /InvalidTargetAgentId/);
    await page.goto(`${BASE}/console/callbacks/${target}`);
    await page.fill("#agent", "");
    await page.fill("#reassign-reason", "back to the queue");
    await page.click("#reassign button");
    await page.waitForURL(`${BASE}/console/callbacks/${target}`);
    const back = await api(`/v1/callbacks/${target}`);
    assert.equal(back.route, "skill");
    const events = await api(`/v1/callbacks/${target}/events`);
    assert.ok(events.items.some((e) => e.kind === "updated" && e.details.reason === "asked for Monday"));
  });

  const list = await api("/v1/callbacks?state=pending&limit=2");
  const [victim, other] = list.items.map((c) => c.callbackId);
  const csrf = await page.getAttribute("input[name=csrf]", "value");

  await step("a cancel without a reason is refused, naming the rule", async () => {
    const r = await page.request.post(`${BASE}/console/callbacks/${victim}/cancel`, {
      form: { csrf, reason: "  " },
    });
    assert.equal(r.status(), 422);
    assert.match(await r.text(), /reason is required/);
    assert.equal((await api(`/v1/callbacks/${victim}`)).state, "pending");
  });

  await step("a post without the CSRF token, or without a session, is refused", async () => {
    const forged = await page.request.post(`${BASE}/console/callbacks/${victim}/cancel`, {
      form: { reason: "forged" },
    });
    assert.equal(forged.status(), 403);
    const stranger = await browser.newContext();
    const anonymous = await stranger.request.post(`${BASE}/console/callbacks/${victim}/cancel`, {
      form: { csrf, reason: "anonymous" },
    });
    assert.equal(anonymous.status(), 401);
    await stranger.close();
    assert.equal((await api(`/v1/callbacks/${victim}`)).state, "pending");
  });

  await step("a read-only user sees no action and a forged post is refused", async () => {
    const reader = await signIn(browser, READER_TOKEN);
    await reader.page.goto(`${BASE}/console/callbacks/${other}`);
    assert.equal((await reader.page.textContent("#state")).trim(), "pending");
    assert.equal(await reader.page.$("#cancel"), null, "no cancel form");
    const readerCsrf = await reader.page.getAttribute("input[name=csrf]", "value");
    const r = await reader.page.request.post(`${BASE}/console/callbacks/${other}/cancel`, {
      form: { csrf: readerCsrf, reason: "not mine to cancel" },
    });
    assert.equal(r.status(), 403);
    assert.equal((await api(`/v1/callbacks/${other}`)).state, "pending");
    assert.deepEqual(reader.problems, [], "no errors in the browser console");
    await reader.context.close();
  });

  await step("the directory draws calling hours as a week grid; a writer may switch an agent on", async () => {
    const put = await fetch(`${BASE}/v1/skills/102`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "Renewals", mediaType: "phone", direction: "outbound", active: true,
        timeZone: "Europe/Paris", callingHours: { mon: ["09:00-17:00"], sat: ["10:00-12:00"] } }),
    });
    assert.equal(put.status, 200);
    await page.goto(BASE + "/console/directory");
    assert.equal((await page.$$("section.skill[data-id='102'] td.open")).length, 8 + 2);
    assert.match(await page.textContent("section.skill[data-id='101']"), /any time/);
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/directory.png`, fullPage: true });
    await page.click("#agents tr[data-id='8'] button");
    await page.waitForURL(BASE + "/console/directory");
    const agent = await api("/v1/agents/8");
    assert.equal(agent.active, true);
  });

  await step("pause a skill's dispatch after a confirmation stating what is due, then resume", async () => {
    await page.goto(BASE + "/console/directory");
    await page.click("section.skill[data-id='101'] a.pause");
    assert.match(await page.textContent("#pause-due"), /due within the next hour/);
    await page.fill("#reason", "storm");
    await page.click("#confirm-pause");
    await page.waitForURL(BASE + "/console/directory");
    assert.match(await page.textContent("section.skill[data-id='101'] .paused"), /Dispatch paused.*storm/);
    const paused = await api("/v1/skills/101");
    assert.equal(paused.paused.reason, "storm");
    // Due now while paused: held, not published.
    const r = await fetch(BASE + "/v1/callbacks", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ firstName: "Held", lastName: "Back", phoneNumber: "+442079460555", skillId: 101,
        scheduleDate: new Date().toISOString() }),
    });
    assert.equal(r.status, 201);
    const held = (await r.json()).callbackId;
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await api(`/v1/callbacks/${held}`)).state, "pending", "nothing published while paused");
    await page.click("section.skill[data-id='101'] button.resume");
    await page.waitForURL(BASE + "/console/directory");
    const resumed = await api("/v1/skills/101");
    assert.equal(resumed.paused, undefined);
    const until = Date.now() + 15000;
    while ((await api(`/v1/callbacks/${held}`)).state !== "dispatched") {
      assert.ok(Date.now() < until, "published once resumed");
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  await step("readable on a phone", async () => {
    const phone = await signIn(browser, ADMIN_TOKEN, { width: 390, height: 844 });
    await phone.page.goto(BASE + "/console/callbacks?state=pending");
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.equal(overflow, false, "no sideways scrolling");
    if (SHOTS) await phone.page.screenshot({ path: `${SHOTS}/callbacks-phone.png` });
    await phone.context.close();
  });

  await step("a customer's own link, at a phone's width: see, move, cancel", async () => {
    const due = new Date(Date.now() + 3 * 86400e3).toISOString().slice(0, 10) + "T15:00:00";
    const r = await fetch(BASE + "/v1/callbacks", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ firstName: "Mary", phoneNumber: "+442079460958", skillId: 101,
        scheduleDate: due, timeZone: "Europe/London" }),
    });
    assert.equal(r.status, 201);
    const created = await r.json();
    assert.ok(created.manageUrl.startsWith(BASE + "/c/"), created.manageUrl);
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const phone = await context.newPage();
    const problems = [];
    phone.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(m.text());
    });
    await phone.goto(created.manageUrl);
    assert.match(await phone.textContent("#when"), /at 15:00.*Europe\/London/);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.equal(overflow, false, "no sideways scrolling");
    if (SHOTS) await phone.screenshot({ path: `${SHOTS}/customer-phone.png` });
    const chosen = await phone.$eval("#at option:nth-child(2)", (o) => o.value);
    await phone.selectOption("#at", chosen);
    await phone.click("#move");
    assert.match(await phone.textContent("#done"), /We will call you on/);
    const moved = await api(`/v1/callbacks/${created.callbackId}`);
    assert.equal(new Date(moved.dueAt).getTime(), new Date(chosen).getTime());
    await phone.goto(created.manageUrl);
    await phone.click("#cancel");
    assert.match(await phone.textContent("#done"), /will not call you/);
    await phone.goto(created.manageUrl);
    assert.match(await phone.textContent("#link-dead"), /not valid any more/);
    assert.deepEqual(problems, [], "no errors in the browser console (CSP included)");
    await context.close();
  });

  await step("failed work is listed with why, and retried with a reason", async () => {
    await page.goto(BASE + "/console/");
    await page.click("header nav a[href='/console/failed']");
    await page.waitForURL(BASE + "/console/failed");
    const rows = await page.$$eval("#failed tbody tr", (trs) => trs.map((tr) => [tr.dataset.id, tr.textContent]));
    assert.deepEqual(rows.map(([id]) => id), [FAILED_ID]);
    assert.match(rows[0][1], /Alan Turing.*Outbound Sales \(101\).*unanswered 3 times/);
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/failed.png` });
    await page.click(`#failed tr[data-id='${FAILED_ID}'] a`);
    await page.fill("#retry-reason", "number fixed by the customer");
    await page.click("#retry button");
    await page.waitForURL(`${BASE}/console/callbacks/${FAILED_ID}`);
    // Due at once: it may be published already.
    assert.match((await page.textContent("#state")).trim(), /^(pending|dispatched)$/);
    assert.match(await page.textContent("#events"), /Retried \(it had failed\): due again .* — by admin: number fixed by the customer/);
    const events = await api(`/v1/callbacks/${FAILED_ID}/events`);
    assert.ok(events.items.some((e) => e.kind === "retried" && e.details.reason === "number fixed by the customer"));
    await page.goto(BASE + "/console/failed");
    assert.equal((await page.$$("#failed tbody tr")).length, 0, "nothing failed any more");
  });

  await step("lists and the throughput chart refresh in place, without a reload", async () => {
    await page.goto(`${BASE}/console/callbacks?q=babbage`);
    assert.equal((await page.$$("#callbacks tbody tr")).length, 0);
    const r = await fetch(BASE + "/v1/callbacks", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ firstName: "Charles", lastName: "Babbage", phoneNumber: "+442079460777",
        skillId: 101, scheduleDate: new Date(Date.now() + 5 * 86400e3).toISOString().slice(0, 10) + "T11:00:00" }),
    });
    assert.equal(r.status, 201);
    const until = Date.now() + 15000;
    while ((await page.$$("#callbacks tbody tr")).length !== 1) {
      assert.ok(Date.now() < until, "the list refreshed itself within 15 s");
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.match(await page.textContent("#callbacks tbody"), /Charles Babbage/);
    await page.goto(BASE + "/console/load");
    await page.waitForSelector("#throughput-chart polyline[data-kind=dispatched]");
    // The seeded day, and whatever this run dispatched meanwhile.
    const total = Number(await page.getAttribute("#throughput-legend li[data-kind=dispatched]", "data-total"));
    assert.ok(total >= Number(DISPATCHED_DAY) && total <= Number(DISPATCHED_DAY) + 5, `${total}`);
    assert.equal((await page.$$("#throughput-chart polyline")).length, 4, "dispatched, completed, failed, expired");
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/load.png`, fullPage: true });
  });

  await step("every page passes axe-core: no serious or critical violation", async () => {
    const checker = await signIn(browser, ADMIN_TOKEN, undefined, { bypassCSP: true });
    const one = (await api("/v1/callbacks?state=pending&limit=1")).items[0].callbackId;
    for (const path of ["/console/", "/console/load", "/console/callbacks", `/console/callbacks/${one}`,
      `/console/callbacks/${FAILED_ID}`, "/console/failed", "/console/promises", "/console/directory",
      "/console/bulk?skillId=101", "/console/bulk?state=failed"]) {
      await checker.page.goto(BASE + path);
      if (path === "/console/") await checker.page.waitForSelector(".card");
      if (path === "/console/load") await checker.page.waitForSelector("#throughput-chart");
      await accessible(checker.page, path);
    }
    await checker.context.close();
    const anonymous = await browser.newContext({ bypassCSP: true });
    const login = await anonymous.newPage();
    await login.goto(BASE + "/console/login");
    await accessible(login, "/console/login");
    const r = await fetch(BASE + "/v1/callbacks", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ firstName: "Ada", phoneNumber: "+442079460958", skillId: 101,
        scheduleDate: new Date(Date.now() + 4 * 86400e3).toISOString().slice(0, 10) + "T15:00:00" }),
    });
    await login.goto((await r.json()).manageUrl);
    await accessible(login, "the customer's page");
    await anonymous.close();
  });

  await step("sign out ends the session", async () => {
    await page.goto(BASE + "/console/");
    await page.click("header form button");
    await page.waitForURL(BASE + "/console/login");
    await page.goto(BASE + "/console/callbacks");
    assert.match(page.url(), /\/console\/login$/);
    assert.deepEqual(admin.problems, [], "no errors in the browser console (CSP included)");
  });
} finally {
  await browser.close();
}
console.log(`console: ${results.length} steps passed`);
