// The admin console and the public passport page in a real browser (Debian's chromium, headless,
// driven by playwright-core), against a real origin and the real local edge that the Rust test
// `console_in_a_real_browser` (tests/edge/console_browser.rs) starts and passes in:
//   VOUCH_ORIGIN, VOUCH_EDGE, VOUCH_ADMIN_TOKEN, VOUCH_VIEWER_TOKEN, VOUCH_ORG_ID,
//   VOUCH_CHROMIUM (default /usr/bin/chromium), VOUCH_ARTIFACTS (where screenshots go).
// Every page is checked with axe (0 serious or critical violations) and screenshotted.
// Exits non-zero on the first failed check, saying which.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import AxeBuilderModule from "@axe-core/playwright";

const AxeBuilder = AxeBuilderModule.default ?? AxeBuilderModule;
const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const ORIGIN = env("VOUCH_ORIGIN");
const EDGE = env("VOUCH_EDGE");
const ADMIN = env("VOUCH_ADMIN_TOKEN");
const VIEWER = env("VOUCH_VIEWER_TOKEN");
const ORG = env("VOUCH_ORG_ID");
const ARTIFACTS = env("VOUCH_ARTIFACTS", "browser-artifacts");
/** The local propagation target is 1 s at p95; the page must flip well within this. */
const BOUND_MS = 3000;
mkdirSync(ARTIFACTS, { recursive: true });

let checks = 0;
function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
  checks += 1;
}

async function audit(page, name) {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of bad) {
    console.error(`axe ${name}: ${v.impact} ${v.id}: ${v.help}`);
    for (const node of v.nodes.slice(0, 3)) console.error(`   at ${node.target.join(" ")}: ${node.failureSummary}`);
  }
  check(bad.length === 0, `${name}: ${bad.length} serious or critical accessibility violations`);
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  // Reflow: nothing wider than the viewport (200 % zoom and phone widths rely on it).
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `${name}: the page is ${overflow}px wider than the viewport`);
}

async function waitFor(what, probe, ms = BOUND_MS) {
  const started = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`check failed: ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Signs in with the keyboard only: skip link, Tab to the token field, type, Enter. */
async function signIn(page, token) {
  await page.goto(`${ORIGIN}/console`);
  check(page.url().endsWith("/console/sign-in"), `an anonymous visit lands on the sign-in page (${page.url()})`);
  await page.keyboard.press("Tab");
  const skip = await page.evaluate(() => document.activeElement?.textContent);
  check(skip === "Skip to content", `the first Tab reaches the skip link (${skip})`);
  let focused = "";
  for (let presses = 0; presses < 5 && focused !== "token"; presses += 1) {
    await page.keyboard.press("Tab");
    focused = await page.evaluate(() => document.activeElement?.id);
  }
  check(focused === "token", `Tab reaches the token field (${focused})`);
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(outline !== "none", "the focused field shows its focus");
  await page.keyboard.type(token);
  await Promise.all([page.waitForURL(`${ORIGIN}/console/agents`), page.keyboard.press("Enter")]);
}

const rowOf = (page, id) => page.locator(`tr[data-agent="${id}"]`);
const statusIn = async (page, id) => (await page.locator(`tr[data-agent="${id}"] [data-status-of]`).textContent())?.trim();

async function publicStatus(page, id) {
  await page.goto(`${EDGE}/agents/${id}`);
  return (await page.locator("#status").textContent())?.trim();
}

const browser = await chromium.launch({
  executablePath: env("VOUCH_CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const admin = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await admin.newPage();

  // Sign in (keyboard only).
  await page.goto(`${ORIGIN}/console/sign-in`);
  await audit(page, "01-sign-in");
  await signIn(page, ADMIN);
  check((await page.textContent("header")).includes("Signed in as platform"), "signed in as the platform admin");

  // Register an agent through the form.
  const name = `Browser Bot ${Date.now()}`;
  await page.click("text=Register an agent");
  await audit(page, "02-register");
  await page.fill("#org_id", ORG);
  await page.fill("#name", name);
  await page.fill("#owner_display_name", "Acme Support Team");
  await page.fill("#owner_contact", "security@acme.com");
  await page.fill("#role", "Tier-2 Support");
  await page.fill("#capabilities", 'payments.refund {"max_amount": 100, "currency": "USD"}\ndata.export');
  await page.fill("#limits", '{"refund_usd_daily_cap": 1000, "max_export_rows": 1000, "allow_pii": false}');
  await page.fill("#regions", "US-NY, US-CA");
  await page.selectOption("#assurance_level", "L2");
  await page.selectOption("#status", "active");
  await page.click("button:has-text('Register')");
  check((await page.textContent("h1")) === "Agent registered", "the registration succeeded");
  check((await page.textContent("code.secret")).startsWith("vk_agent_"), "the API key is shown once");
  await audit(page, "03-registered");
  await page.click(`text=Open ${name}`);
  const id = page.url().split("/").pop();
  check(/^ap_[0-9a-f]{32}$/.test(id), `the passport page names the agent (${id})`);
  check((await page.textContent("main")).includes("at most 1,000.00 USD per day"), "limits are said in words");
  await audit(page, "04-passport");

  // Find it by search.
  await page.goto(`${ORIGIN}/console/agents`);
  await page.fill("#q", name);
  await page.click("button:has-text('Search')");
  check((await page.locator("tbody tr").count()) === 1, "the search finds exactly the new agent");
  check((await statusIn(page, id)) === "Active", "it is active");

  // A second tab watches the list: the row must change there without a reload.
  const watcher = await admin.newPage();
  await watcher.goto(page.url());
  await watcher.waitForTimeout(300);

  // Suspend in one click (with a reason), and watch the change propagate.
  const reason = "Browser test: suspected fraud";
  await rowOf(page, id).locator(".when-active input[name=reason]").fill(reason);
  const clicked = Date.now();
  await rowOf(page, id).locator(".when-active button").click();
  const live = await waitFor("the watching tab shows Suspended", async () => (await statusIn(watcher, id)) === "Suspended");
  console.log(`live row update after ${live} ms`);
  await page.waitForSelector("#change-result .propagation");
  const answered = Date.now();
  // The public page at the edge says Suspended, with the reason, within the bound.
  const pub = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const publicPage = await pub.newPage();
  const flipped = await waitFor("the public page shows Suspended", async () => (await publicStatus(publicPage, id)) === "Status: Suspended");
  console.log(`the console answered ${answered - clicked} ms after the click; the public page showed Suspended ${flipped} ms later`);
  const result = await page.textContent("#change-result");
  console.log(`propagation as the console showed it: ${result.replace(/\s+/g, " ").trim()}`);
  check(/Journal stored[^:]*: \S+Z \(\+\d+ ms\)/.test(result), `the journal's store time is shown (${result})`);
  check(/KV written: \S+Z \(\+\d+ ms\)/.test(result), `the KV write time is shown (${result})`);
  check((await statusIn(page, id)) === "Suspended", "the clicked tab's row changed too");
  await audit(page, "05-agents-suspended");
  check((await publicPage.textContent("main")).includes(`Reason: ${reason}`), "the public page shows the reason");
  const csp = (await publicPage.goto(`${EDGE}/agents/${id}`)).headers()["content-security-policy"] ?? "";
  check(csp.startsWith("default-src 'none'"), `the public page has a strict CSP (${csp})`);
  await audit(publicPage, "06-public-suspended");

  // Reactivate.
  await rowOf(page, id).locator(".when-suspended button").click();
  await waitFor("the watching tab shows Active", async () => (await statusIn(watcher, id)) === "Active");
  await waitFor("the public page shows Active", async () => (await publicStatus(publicPage, id)) === "Status: Active");
  await audit(publicPage, "07-public-active");

  // Phone width and 200 % zoom (half the CSS pixels): everything reflows.
  for (const [label, width, path] of [["08-phone", 390, "/console/agents"], ["09-zoom-200", 640, `/console/agents/${id}`]]) {
    const narrow = await admin.newPage();
    await narrow.setViewportSize({ width, height: 800 });
    await narrow.goto(`${ORIGIN}${path}`);
    await audit(narrow, label);
    await narrow.close();
  }

  // Revoke, with its confirmation.
  await rowOf(page, id).locator("a:has-text('Revoke')").click();
  check((await page.textContent("h1")).startsWith("Revoke "), "revoking asks for confirmation");
  await audit(page, "10-revoke-confirm");
  await page.fill("#reason", "Browser test: retired");
  await page.click("button.danger");
  check((await page.textContent("main")).includes("is now Revoked"), "the agent is revoked");
  await waitFor("the public page shows Revoked", async () => (await publicStatus(publicPage, id)) === "Status: Revoked");
  await audit(publicPage, "11-public-revoked");

  // Audit log, webhooks and tokens pages.
  await page.goto(`${ORIGIN}/console/audit?org_id=${ORG}`);
  check((await page.textContent("main")).includes("Intact:"), "the audit chain checks out");
  await audit(page, "12-audit");
  await page.goto(`${ORIGIN}/console/webhooks`);
  await audit(page, "13-webhooks");
  await page.goto(`${ORIGIN}/console/tokens`);
  await audit(page, "14-tokens");

  // Partners: add one (its key shown once), then revoke it with confirmation.
  await page.click("nav >> text=Partners");
  check((await page.textContent("h1")) === "Partners", "the partners page opens from the navigation");
  await audit(page, "15-partners");
  const partner = `Browser Partner ${Date.now()}`;
  await page.fill("#name", partner);
  await page.fill("#contact", "security@partner.example");
  await page.click("button:has-text('Add partner')");
  check((await page.textContent("h1")) === "Partner added", "the partner was added");
  const partnerKey = (await page.textContent("code.secret")).trim();
  check(partnerKey.startsWith("vk_partner_"), "the partner's key is shown once");
  await audit(page, "16-partner-added");
  await page.click("text=Back to partners");
  const partnerRow = page.locator("tbody tr", { hasText: partner });
  check((await partnerRow.count()) === 1, "the new partner is listed");
  check(!(await page.content()).includes(partnerKey), "the key is not shown again");
  await partnerRow.locator("a:has-text('Revoke')").click();
  check((await page.textContent("h1")) === `Revoke ${partner}?`, "revoking a partner asks for confirmation");
  await audit(page, "17-partner-revoke-confirm");
  await page.click("button.danger");
  check((await page.textContent("h1")) === "Partner revoked", "the partner is revoked");
  await page.click("text=Back to partners");
  check((await partnerRow.textContent()).includes("revoked"), "the list shows it revoked");

  // A request without the CSRF token is refused (and says so as a page).
  const noCsrf = await page.request.post(`${ORIGIN}/console/agents/${id}/status`, { form: { status: "active" }, maxRedirects: 0 });
  check(noCsrf.status() === 403, `a POST without the CSRF token is refused (${noCsrf.status()})`);
  check((await noCsrf.text()).includes("This form has expired"), "the refusal is a page");

  // A viewer sees no write controls, and a forged POST is refused.
  const viewerContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const viewer = await viewerContext.newPage();
  await signIn(viewer, VIEWER);
  await viewer.goto(`${ORIGIN}/console/agents`);
  await audit(viewer, "18-viewer-agents");
  check((await viewer.locator("form[action$='/status'], a:has-text('Register an agent'), a:has-text('Revoke')").count()) === 0, "a viewer sees no write controls");
  const victim = await viewer.locator("tbody tr[data-agent]").first().getAttribute("data-agent");
  const viewerCsrf = await viewer.locator("input[name=csrf]").first().inputValue();
  const forged = await viewer.request.post(`${ORIGIN}/console/agents/${victim}/status`, {
    form: { csrf: viewerCsrf, status: "suspended", reason: "forged" }, maxRedirects: 0,
  });
  check(forged.status() === 403, `a viewer's forged POST is refused (${forged.status()})`);
  check((await forged.text()).includes("A viewer token cannot make changes"), "the viewer's refusal is a page");
  await viewer.goto(`${ORIGIN}/console/partners`);
  check((await viewer.textContent("main")).includes("managed by the platform admin"), "an org session is told who manages partners");
  check((await viewer.locator("main form").count()) === 0, "an org session sees no partner controls");

  // Sign out ends the session (the old cookie no longer works either).
  const cookies = await admin.cookies();
  await page.goto(`${ORIGIN}/console/agents`);
  await Promise.all([page.waitForURL(`${ORIGIN}/console/sign-in`), page.click("button:has-text('Sign out')")]);
  await page.goto(`${ORIGIN}/console/agents`);
  check(page.url().endsWith("/console/sign-in"), "after sign-out the console asks to sign in");
  const replay = await browser.newContext();
  await replay.addCookies(cookies);
  const replayed = await replay.newPage();
  await replayed.goto(`${ORIGIN}/console/agents`);
  check(replayed.url().endsWith("/console/sign-in"), "the signed-out session's cookie is dead");

  console.log(`console browser test: ${checks} checks passed; screenshots in ${ARTIFACTS}`);
} finally {
  await browser.close();
}
