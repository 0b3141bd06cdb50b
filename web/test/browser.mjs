// The explorer in a real browser: headless Chromium (Debian's, driven by
// playwright-core) loads the page from the devnet's gateway and checks what
// a person sees. Driven by tests/tests/explorer.rs over stdin and stdout:
//
//   node test/browser.mjs --url http://<explorer>.localhost:PORT/ \
//     --providers provider-1,provider-2 --account <buyer principal> \
//     --slashed provider-2 --archives registry=<id>,escrow=<id>,matcher=<id> \
//     --screenshots DIR
//
// 1. The overview lists the providers and draws the order book's depth
//    (free slots as bars); it prints "ready".
// 2. It reads a job id from stdin (the test then runs `market run`), waits
//    for that job to appear on the overview with its buyer among the
//    accounts and, with --slashed, that provider among the slashes for
//    missing the job's deadline; it opens the job's page and the matcher's
//    event log (with --archives, each named log's oldest page too, which
//    must start at event 0 and say it was read from that log's archive);
//    each events page must say its events were checked against the log's
//    certified tip. Last, the search box finds the job by its id and the
//    buyer's account by its principal. It prints "ok".
// Screenshots of each step go to DIR. Any failure exits non-zero.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

function flags(argv) {
  const out = new Map();
  for (let i = 0; i < argv.length; i += 2) out.set(argv[i].replace(/^--/, ""), argv[i + 1]);
  return out;
}

const f = flags(process.argv.slice(2));
const url = f.get("url");
const providers = (f.get("providers") ?? "").split(",").filter(Boolean);
const shots = f.get("screenshots") ?? ".";
const account = f.get("account");
const slashed = f.get("slashed");
const archives = (f.get("archives") ?? "")
  .split(",")
  .filter(Boolean)
  .map((pair) => pair.split("="));
const executablePath = f.get("chromium") ?? "/usr/bin/chromium";
mkdirSync(shots, { recursive: true });

// The events page says its events were checked against the log's
// certified tip, or fails with what it says instead.
async function checked(page, log) {
  await page
    .locator("[data-testid=verified]")
    .waitFor({ timeout: 30_000 })
    .catch(async () => {
      throw new Error(`the ${log} events are not checked against the certified tip: ${await page.textContent("main")}`);
    });
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (line) => process.stdout.write(`${line}\n`);

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let page;
try {
  page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));

  // 1. The overview: providers and the depth chart.
  await page.goto(url);
  await page.waitForSelector("body[data-loaded=true]", { timeout: 30_000 });
  const status = await page.textContent("#status");
  if (status?.startsWith("error")) throw new Error(`the page says ${status}`);
  const table = await page.textContent("[data-testid=providers]");
  for (const name of providers) {
    if (!table?.includes(name)) throw new Error(`provider ${name} is not listed: ${table}`);
  }
  const asks = await page.locator("[data-testid=depth-chart] rect.ask").count();
  if (asks === 0) throw new Error("the depth chart shows no free slots");
  await page.screenshot({ path: join(shots, "overview.png"), fullPage: true });
  say(`ready: ${providers.length} providers, ${asks} price levels of free slots`);

  // 2. A job appears once it is submitted.
  const { value: job } = await lines.next();
  const id = String(job).trim();
  const row = page.locator("[data-testid=jobs] a", { hasText: new RegExp(`^job ${id}$`) });
  await row.first().waitFor({ timeout: 60_000 });
  if (account) {
    await page
      .locator("[data-testid=accounts] a", { hasText: account })
      .first()
      .waitFor({ timeout: 30_000 })
      .catch(() => {
        throw new Error(`the buyer ${account} is not among the accounts`);
      });
  }
  if (slashed) {
    const slash = page
      .locator("[data-testid=slashes] tr")
      .filter({ hasText: slashed })
      .filter({ hasText: "missed a deadline" })
      .filter({ has: page.locator("a", { hasText: new RegExp(`^job ${id}$`) }) });
    await slash
      .first()
      .waitFor({ timeout: 30_000 })
      .catch(async () => {
        throw new Error(`no slash of ${slashed} for job ${id}: ${await page.textContent("[data-testid=slashes]")}`);
      });
  }
  await page.screenshot({ path: join(shots, "overview-with-job.png"), fullPage: true });
  await row.first().click();
  await page.waitForFunction((id) => document.querySelector("h2")?.textContent === `Job ${id}`, id, { timeout: 30_000 });
  const jobText = await page.textContent("main");
  if (!/Succeeded|Reported|Running|Assigned|Open/.test(jobText ?? "")) throw new Error(`job ${id}'s page shows no status: ${jobText}`);
  await page.screenshot({ path: join(shots, "job.png"), fullPage: true });

  await page.goto(new URL("#/events/matcher", url).toString());
  await page.waitForFunction(() => document.querySelector("h2")?.textContent === "matcher events", null, { timeout: 30_000 });
  await page.waitForSelector("[data-testid=events] tr", { timeout: 30_000 });
  const events = await page.textContent("[data-testid=events]");
  if (!events?.includes("JobSubmitted")) throw new Error(`the matcher's log shows no JobSubmitted: ${events}`);
  await checked(page, "matcher");
  await page.screenshot({ path: join(shots, "events.png"), fullPage: true });
  for (const [log, archive] of archives) {
    await page.goto(new URL(`#/events/${log}/0`, url).toString());
    await page.waitForFunction((log) => document.querySelector("h2")?.textContent === `${log} events`, log, { timeout: 30_000 });
    await page
      .locator("[data-testid=archived]", { hasText: archive })
      .waitFor({ timeout: 30_000 })
      .catch(async () => {
        throw new Error(`the oldest ${log} events are not read from the archive ${archive}: ${await page.textContent("main")}`);
      });
    await checked(page, log);
    const first = await page.textContent("[data-testid=events] tbody tr td");
    if (first?.trim() !== "0") throw new Error(`the oldest page of the ${log}'s log starts at event ${first}, not 0`);
    await page.screenshot({ path: join(shots, `archived-${log}-events.png`), fullPage: true });
  }
  // The search box: a job id opens the job, a principal its account.
  const find = async (query, heading) => {
    await page.fill("#search input", query);
    await page.press("#search input", "Enter");
    await page.waitForFunction((h) => document.querySelector("h2")?.textContent === h, heading, { timeout: 30_000 }).catch(async () => {
      throw new Error(`searching ${query} did not open "${heading}": ${await page.textContent("main")}`);
    });
  };
  await find(id, `Job ${id}`);
  if (account) await find(account, `Account ${account}`);
  if (problems.length) throw new Error(problems.join("; "));
  say(`ok: job ${id} listed${slashed ? `, ${slashed} slashed for it` : ""}, its page and the matcher's log shown${archives.length ? `, the oldest events of ${archives.map(([log]) => log).join(", ")} from their archives` : ""}`);
} catch (e) {
  if (page) await page.screenshot({ path: join(shots, "failure.png"), fullPage: true }).catch(() => {});
  console.error(`browser test failed: ${e instanceof Error ? e.message : e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
process.exit(process.exitCode ?? 0);
