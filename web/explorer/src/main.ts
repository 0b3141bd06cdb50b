// The market explorer: reads the registry, escrow and matcher from the
// browser through @icp-sdk/core and the generated bindings, and shows the
// market's public state. Every canister answer is a query anyone may make;
// job contents are never shown (anonymous callers get them hidden).

import { Actor, HttpAgent, type ActorSubclass, type Agent } from "@icp-sdk/core/agent";
import type { IDL } from "@icp-sdk/core/candid";
import { Principal } from "@icp-sdk/core/principal";
import {
  idlFactory as registryIdl,
  RegistryEvent,
  type _SERVICE as Registry,
  type Provider,
  type ProviderPage,
} from "@icp-compute-market/bindings/registry/registry.did";
import {
  idlFactory as escrowIdl,
  EscrowEvent,
  type _SERVICE as Escrow,
  type LedgerInfo,
} from "@icp-compute-market/bindings/escrow/escrow.did";
import {
  idlFactory as matcherIdl,
  MatcherEvent,
  type _SERVICE as Matcher,
  type JobView,
  type ServiceView,
  type Trade,
} from "@icp-compute-market/bindings/matcher/matcher.did";
import { el, link, table, section, amount, when, principalText, variantName, render as renderValue } from "./view";
import { depthChart } from "./chart";
import { archivedEvents, eventOf, readBlocks, type LogEvent } from "./archive";
import { verifyChain, verifyTip } from "./verify";

/** `/config.json`, served by the explorer canister from its init argument. */
interface Config {
  registry: string;
  escrow: string;
  matcher: string;
  fetch_root_key: boolean;
}

interface Market {
  agent: Agent;
  registry: ActorSubclass<Registry>;
  escrow: ActorSubclass<Escrow>;
  matcher: ActorSubclass<Matcher>;
  ids: Config;
}

/** How many of the newest matcher events the overview reads for ids. */
const SCAN_EVENTS = 500n;
/** Newest jobs and services shown on the overview. */
const SHOWN = 50;
/** Events per page of a log. */
const EVENTS_PAGE = 50n;
/** How often the overview reloads, in ms. */
const REFRESH_MS = 3000;

/** The API host: the page's own origin (the devnet, a local replica), or
 * the IC's API domain when the page is served from a mainnet gateway. */
function apiHost(): string {
  const h = location.hostname;
  if (h.endsWith(".icp0.io") || h.endsWith(".ic0.app") || h.endsWith(".icp.io")) {
    return "https://icp-api.io";
  }
  return location.origin;
}

async function connect(): Promise<Market> {
  const ids = (await (await fetch("/config.json")).json()) as Config;
  // On a local network (the root key fetched) query signatures are not
  // checked: reading the node keys takes a certificate, whose time a
  // devnet running its clock fast puts minutes ahead of the browser's, and
  // agent-js refuses such certificates once it has synced its clock. On
  // mainnet every answer is verified.
  const agent = await HttpAgent.create({
    host: apiHost(),
    shouldFetchRootKey: ids.fetch_root_key,
    verifyQuerySignatures: !ids.fetch_root_key,
  });
  return {
    agent,
    registry: Actor.createActor<Registry>(registryIdl, { agent, canisterId: ids.registry }),
    escrow: Actor.createActor<Escrow>(escrowIdl, { agent, canisterId: ids.escrow }),
    matcher: Actor.createActor<Matcher>(matcherIdl, { agent, canisterId: ids.matcher }),
    ids,
  };
}

/** The one ICRC-1 query the page needs of a ledger. */
const ledgerIdl: IDL.InterfaceFactory = ({ IDL }) => IDL.Service({ icrc1_symbol: IDL.Func([], [IDL.Text], ["query"]) });

/** A ledger's token symbol: as the escrow last read it, else the ledger's
 * own answer, else its id. */
async function symbolOf(m: Market, l: LedgerInfo): Promise<string> {
  if (l.symbol.length) return l.symbol[0];
  try {
    const ledger = Actor.createActor<{ icrc1_symbol(): Promise<string> }>(ledgerIdl, { agent: m.agent, canisterId: l.ledger });
    return `${await ledger.icrc1_symbol()} (${l.ledger.toText()})`;
  } catch {
    return l.ledger.toText();
  }
}

/** Every provider, page by page (the registry bounds each page). */
async function allProviders(m: Market): Promise<Provider[]> {
  const out: Provider[] = [];
  let after: [] | [Principal] = [];
  for (let i = 0; i < 100; i++) {
    const page: ProviderPage = await m.registry.list_providers({
      start_after: after,
      limit: [],
      filter: { region: [], min_stake: [], active_only: false },
    });
    out.push(...page.providers);
    if (page.next.length === 0) break;
    after = page.next;
  }
  return out;
}

/** What the newest matcher events name: jobs, reservations, owners, slashes. */
interface Scan {
  jobIds: bigint[];
  reservationIds: bigint[];
  owners: Set<string>;
  slashes: { kind: string; provider: string; job: bigint; amount: bigint; time: bigint }[];
}

/** A canister's event log: its typed page query, its ICRC-3 blocks and
 * the Candid type of its events. */
function logOf(m: Market, canister: string) {
  switch (canister) {
    case "registry":
      return { actor: m.registry, type: RegistryEvent };
    case "escrow":
      return { actor: m.escrow, type: EscrowEvent };
    default:
      return { actor: m.matcher, type: MatcherEvent };
  }
}

/** Up to `limit` events of a log from `start` on (at most 100): from the
 * canister itself, which answers from its oldest local event on, and,
 * only when that is past `start`, the part before it from the archives. */
async function readLog(m: Market, canister: string, start: bigint, limit: bigint) {
  const { actor, type } = logOf(m, canister);
  const local = await actor.get_events({ start: [start], limit: [Number(limit)] });
  const events = local.events as LogEvent[];
  let next = local.next.length ? local.next[0] : undefined;
  const firstLocal = events.length ? events[0].seq : local.total;
  if (firstLocal <= start) return { events, next, total: local.total, archives: [] as Principal[], archived: 0 };
  const gap = firstLocal - start < limit ? firstLocal - start : limit;
  const old = await archivedEvents(m.agent, actor.icrc3_get_blocks, type, start, gap);
  const all = [...old.archived, ...events].slice(0, Number(limit));
  if (all.length && all.length < old.archived.length + events.length) next = all[all.length - 1].seq + 1n;
  return { events: all, next, total: local.total, archives: old.archives, archived: old.archived.length };
}

async function scanEvents(m: Market): Promise<Scan> {
  const head = await m.matcher.get_events({ start: [], limit: [1] });
  const from = head.total > SCAN_EVENTS ? head.total - SCAN_EVENTS : 0n;
  const scan: Scan = { jobIds: [], reservationIds: [], owners: new Set(), slashes: [] };
  const jobs = new Set<bigint>();
  const reservations = new Set<bigint>();
  let start: bigint | undefined = from;
  while (start !== undefined) {
    const page = await readLog(m, "matcher", start, 100n);
    for (const rec of page.events) {
      const [kind, body] = Object.entries(rec.event)[0] as [string, Record<string, unknown>];
      if (typeof body.job_id === "bigint") jobs.add(body.job_id);
      if (kind === "ReservationMade" && typeof body.reservation === "bigint") reservations.add(body.reservation);
      if (body.owner instanceof Principal) scan.owners.add(body.owner.toText());
      if ((kind === "DeadlineMissed" || kind === "ResultRejected") && typeof body.slashed === "bigint" && body.slashed > 0n) {
        scan.slashes.push({
          kind,
          provider: (body.provider as Principal).toText(),
          job: body.job_id as bigint,
          amount: body.slashed,
          time: rec.time_ns,
        });
      }
    }
    start = page.next;
    if (page.events.length === 0) break;
  }
  scan.jobIds = [...jobs].sort((a, b) => (a < b ? 1 : -1));
  scan.reservationIds = [...reservations].sort((a, b) => (a < b ? 1 : -1));
  return scan;
}

function jobRow(v: JobView): (Node | string)[] {
  const j = v.job;
  return [
    link(`#/job/${j.id}`, `job ${j.id}`),
    variantName(j.status),
    variantName(j.kind),
    link(`#/account/${j.owner.toText()}`, principalText(j.owner)),
    j.provider.length ? link(`#/provider/${j.provider[0].toText()}`, principalText(j.provider[0])) : "—",
    amount(j.paid),
    when(j.submitted_at_ns),
  ];
}

function serviceRow(s: ServiceView): (Node | string)[] {
  return [
    link(`#/service/${s.id}`, `service ${s.id}`),
    variantName(s.status),
    link(`#/account/${s.owner.toText()}`, principalText(s.owner)),
    String(s.replicas.length),
    s.replicas
      .map((r) => `${r.slot}: ${variantName(r.status)}${r.provider.length ? " on " + principalText(r.provider[0]) : ""}`)
      .join("; "),
    amount(s.paid),
  ];
}

function providerRows(providers: Provider[]): (Node | string)[][] {
  return providers.map((p) => [
    link(`#/provider/${p.id.toText()}`, p.profile.display_name),
    principalText(p.id),
    p.profile.region,
    String(p.profile.total_slots),
    amount(p.stake.free + p.stake.bonded),
    String(p.record.jobs_completed),
    String(p.record.deadlines_missed),
    amount(p.slashed_total),
    p.deregistered ? "deregistered" : p.jailed ? "jailed" : "active",
  ]);
}

function tradeRows(trades: Trade[]): (Node | string)[][] {
  return trades.map((t) => [
    link(`#/job/${t.job_id}`, `job ${t.job_id}`),
    amount(t.price),
    `per ${variantName(t.unit) === "Gfuel" ? "billion fuel" : "interval"}`,
    when(t.time_ns),
  ]);
}

async function overview(m: Market): Promise<HTMLElement> {
  const [providers, ledgers, scan] = await Promise.all([allProviders(m), m.escrow.ledgers(), scanEvents(m)]);
  const ledgerViews = await Promise.all(
    ledgers.map(async (l: LedgerInfo) => {
      const [depth, trades, symbol] = await Promise.all([
        m.matcher.book_depth(l.ledger, []),
        m.matcher.recent_prices(l.ledger),
        symbolOf(m, l),
      ]);
      return { symbol, depth, trades };
    }),
  );
  // A reservation's own record is shown as its service, not as a job.
  const jobs = (await Promise.all(scan.jobIds.slice(0, SHOWN).map((id) => m.matcher.job_view(id))))
    .flatMap((o) => o)
    .filter((v) => !("Reservation" in v.job.kind));
  const services = (await Promise.all(scan.reservationIds.slice(0, SHOWN).map((id) => m.matcher.get_service(id)))).flatMap((o) => o);
  const accounts = new Set<string>([...scan.owners, ...providers.map((p) => p.id.toText())]);
  const balances = await Promise.all(
    [...accounts].map(async (a) => ({ a, b: await m.escrow.balances_of(Principal.fromText(a)) })),
  );
  const names = new Map(providers.map((p) => [p.id.toText(), p.profile.display_name]));

  return el(
    "div",
    {},
    section(
      "Market",
      el(
        "p",
        {},
        "Event logs: ",
        link(`#/events/registry`, "registry"),
        ", ",
        link(`#/events/escrow`, "escrow"),
        ", ",
        link(`#/events/matcher`, "matcher"),
        ".",
      ),
    ),
    ...ledgerViews.map(({ symbol, depth, trades }) =>
      section(
        `Order book: ${symbol}`,
        depthChart("per billion fuel", depth.bids, depth.asks),
        depthChart("per interval", depth.slot_bids, depth.slot_asks),
        el("h3", {}, "Recent trades"),
        table(["job", "price", "unit", "when"], tradeRows(trades), "trades"),
      ),
    ),
    section(
      "Providers",
      table(["name", "principal", "region", "slots", "stake", "jobs completed", "deadlines missed", "slashed", "status"], providerRows(providers), "providers"),
    ),
    section("Jobs", table(["job", "status", "kind", "owner", "provider", "paid", "submitted"], jobs.map(jobRow), "jobs")),
    section("Services", table(["service", "status", "owner", "replicas", "where", "paid"], services.map(serviceRow), "services")),
    section(
      "Slashes",
      table(
        ["provider", "why", "job", "amount", "when"],
        scan.slashes.map((s) => [
          link(`#/provider/${s.provider}`, names.get(s.provider) ?? s.provider),
          s.kind === "DeadlineMissed" ? "missed a deadline" : "result rejected",
          link(`#/job/${s.job}`, `job ${s.job}`),
          amount(s.amount),
          when(s.time),
        ]),
        "slashes",
      ),
    ),
    section(
      "Accounts",
      table(
        ["account", "free", "locked", "pending", "claimable"],
        balances.map(({ a, b }) => {
          const sum = (f: "free" | "locked" | "pending" | "claimable") => b.reduce((s, x) => s + x[f], 0n);
          return [link(`#/account/${a}`, names.get(a) ?? a), amount(sum("free")), amount(sum("locked")), amount(sum("pending")), amount(sum("claimable"))];
        }),
        "accounts",
      ),
    ),
  );
}

async function providerPage(m: Market, id: string): Promise<HTMLElement> {
  const p = Principal.fromText(id);
  const [provider, offers, balances] = await Promise.all([m.registry.get_provider(p), m.matcher.offers_of(p), m.escrow.balances_of(p)]);
  if (!provider.length) return section(`Provider ${id}`, el("p", {}, "No such provider."));
  const v = provider[0];
  return el(
    "div",
    {},
    section(
      `Provider ${v.profile.display_name}`,
      el("p", {}, principalText(v.id), " — region ", v.profile.region, ", ", String(v.profile.total_slots), " slots"),
      el("h3", {}, "Stake"),
      renderValue({ stake: v.stake, slashed_total: v.slashed_total, jailed: v.jailed }),
      el("h3", {}, "Track record"),
      renderValue(v.record),
      el("h3", {}, "Offers"),
      renderValue(offers),
      el("h3", {}, "Escrow balances"),
      renderValue(balances),
    ),
  );
}

async function jobPage(m: Market, id: string): Promise<HTMLElement> {
  const v = await m.matcher.job_view(BigInt(id));
  if (!v.length) return section(`Job ${id}`, el("p", {}, "No such job (or pruned after its retention)."));
  return section(`Job ${id}`, table(["job", "status", "kind", "owner", "provider", "paid", "submitted"], [jobRow(v[0])], "job"), renderValue(v[0]));
}

async function servicePage(m: Market, id: string): Promise<HTMLElement> {
  const s = await m.matcher.get_service(BigInt(id));
  if (!s.length) return section(`Service ${id}`, el("p", {}, "No such service."));
  return section(`Service ${id}`, renderValue(s[0]));
}

async function accountPage(m: Market, id: string): Promise<HTMLElement> {
  const p = Principal.fromText(id);
  const [balances, jobs, reservations] = await Promise.all([
    m.escrow.balances_of(p),
    m.matcher.list_jobs(p, { start: [], limit: [50] }),
    m.matcher.list_reservations(p, { start: [], limit: [50] }),
  ]);
  return section(
    `Account ${id}`,
    el("h3", {}, "Escrow balances"),
    renderValue(balances),
    el("h3", {}, "Jobs"),
    table(
      ["job", "status", "kind", "provider", "paid"],
      jobs.map((j) => [
        link(`#/job/${j.id}`, `job ${j.id}`),
        variantName(j.status),
        variantName(j.kind),
        j.provider.length ? link(`#/provider/${j.provider[0].toText()}`, principalText(j.provider[0])) : "—",
        amount(j.paid),
      ]),
      "account-jobs",
    ),
    el("h3", {}, "Reservations"),
    table(
      ["reservation", "status", "locked"],
      reservations.map((r) => [link(`#/service/${r.id}`, `reservation ${r.id}`), variantName(r.status), amount(r.locked)]),
      "account-reservations",
    ),
  );
}

/** Blocks the check of a page reads at most: from its first event to the
 * log's certified tip. */
const VERIFY_MAX = 1000n;

/** A page of a log's events, where they were read, and whether they were
 * checked against the log's certified tip (or why not). */
interface EventsPage {
  events: LogEvent[];
  next: bigint | undefined;
  archived: number;
  archives: Principal[];
  check: { tip: bigint } | { why: string };
}

/**
 * Up to `limit` events of a log from `start` on, checked against the
 * log's certified tip (see `verify.ts`): decoded from the blocks that link
 * the page to the certified hash, so what is shown is what was checked.
 * Where they can't be checked, the events as `readLog` reads them, with
 * the reason.
 */
async function checkedPage(m: Market, canister: string, start: bigint, limit: bigint): Promise<EventsPage> {
  const { actor, type } = logOf(m, canister);
  let why: string;
  try {
    why = "the canister serves no tip certificate";
    const certificate = await actor.icrc3_get_tip_certificate();
    const rootKey = m.agent.rootKey;
    if (certificate.length && rootKey) {
      const id = Principal.fromText(m.ids[canister as "registry" | "escrow" | "matcher"]);
      const tip = await verifyTip(certificate[0], id, rootKey, !m.ids.fetch_root_key);
      why = `the page is ${tip.length - start} blocks from the certified tip; it checks at most ${VERIFY_MAX}`;
      if (tip.length - start <= VERIFY_MAX) {
        const blocks = [];
        const archives = new Set<string>();
        let archived = 0;
        for (let at = start; at < tip.length; ) {
          const want = tip.length - at < 100n ? tip.length - at : 100n;
          const read = await readBlocks(m.agent, actor.icrc3_get_blocks, at, want);
          const got = read.blocks.filter((b) => b.id < tip.length);
          if (!got.length) break;
          read.archives.forEach((a) => archives.add(a.toText()));
          archived += got.slice(0, read.archived).filter((b) => b.id < start + limit).length;
          blocks.push(...got);
          at += BigInt(got.length);
        }
        await verifyChain(tip, start, blocks);
        return {
          events: blocks.slice(0, Number(limit)).map((b) => eventOf(b.id, b.block, type)),
          next: start + limit < tip.length ? start + limit : undefined,
          archived,
          archives: [...archives].map((a) => Principal.fromText(a)),
          check: { tip: tip.length },
        };
      }
    } else if (!rootKey) {
      why = "the agent has no root key";
    }
  } catch (e) {
    why = e instanceof Error ? e.message : String(e);
  }
  return { ...(await readLog(m, canister, start, limit)), check: { why } };
}

async function eventsPage(m: Market, canister: string, startText: string | undefined): Promise<HTMLElement> {
  const head = await logOf(m, canister).actor.get_events({ start: [], limit: [1] });
  const total = head.total;
  // Newest page by default.
  const start = startText !== undefined ? BigInt(startText) : total > EVENTS_PAGE ? total - EVENTS_PAGE : 0n;
  const page = await checkedPage(m, canister, start, EVENTS_PAGE);
  const nav = el(
    "p",
    { class: "pager" },
    start > 0n ? link(`#/events/${canister}/${start > EVENTS_PAGE ? start - EVENTS_PAGE : 0n}`, "« older") : "",
    ` events ${start}–${start + BigInt(page.events.length)} of ${total} `,
    page.next !== undefined ? link(`#/events/${canister}/${page.next}`, "newer »") : "",
  );
  const archived = page.archived
    ? el(
        "p",
        { "data-testid": "archived" },
        `${page.archived} of these events were read from the archive ${page.archives.map((a) => a.toText()).join(", ")}.`,
      )
    : "";
  const verdict =
    "tip" in page.check
      ? el(
          "p",
          { class: "verified", "data-testid": "verified" },
          `✓ Checked: events ${start}–${page.check.tip - 1n} hash-link to the tip the ${canister} certified (its certified data, signed by its subnet).`,
        )
      : el("p", { class: "unverified", "data-testid": "unverified" }, `Not checked against the certified tip: ${page.check.why}.`);
  return section(
    `${canister} events`,
    nav,
    archived,
    verdict,
    table(
      ["seq", "when", "event", "details"],
      page.events.map((e) => {
        const [kind, body] = Object.entries(e.event)[0];
        return [String(e.seq), when(e.time_ns), kind, renderValue(body)];
      }),
      "events",
    ),
  );
}

async function route(m: Market): Promise<HTMLElement> {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  switch (parts[0]) {
    case "provider":
      return providerPage(m, parts[1]);
    case "job":
      return jobPage(m, parts[1]);
    case "service":
      return servicePage(m, parts[1]);
    case "account":
      return accountPage(m, parts[1]);
    case "events":
      return eventsPage(m, parts[1] ?? "matcher", parts[2]);
    default:
      return overview(m);
  }
}

/** Where a search goes: a number is a job; a principal is a provider if
 * the registry knows it, an account otherwise. */
async function searchTarget(m: Market, query: string): Promise<string | undefined> {
  const q = query.trim();
  if (/^\d+$/.test(q)) return `#/job/${q}`;
  let p: Principal;
  try {
    p = Principal.fromText(q);
  } catch {
    return undefined;
  }
  const provider = await m.registry.get_provider(p);
  return provider.length ? `#/provider/${p.toText()}` : `#/account/${p.toText()}`;
}

async function main(): Promise<void> {
  const root = document.getElementById("app")!;
  const status = document.getElementById("status")!;
  let market: Market;
  try {
    market = await connect();
  } catch (e) {
    status.textContent = `cannot reach the market: ${e}`;
    return;
  }
  let generation = 0;
  const show = async () => {
    const mine = ++generation;
    try {
      const view = await route(market);
      if (mine !== generation) return;
      root.replaceChildren(view);
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      document.body.dataset.loaded = "true";
    } catch (e) {
      if (mine === generation) status.textContent = `error: ${e}`;
    }
  };
  window.addEventListener("hashchange", () => void show());
  const search = document.getElementById("search") as HTMLFormElement;
  search.addEventListener("submit", (e) => {
    e.preventDefault();
    const query = String(new FormData(search).get("q") ?? "");
    void searchTarget(market, query).then((target) => {
      if (target) location.hash = target;
      else status.textContent = `not a job id or a principal: ${query}`;
    });
  });
  await show();
  setInterval(() => {
    // The overview and the newest page of each log follow the market as it
    // moves; an older page of a log stays as it was read and checked.
    const h = location.hash;
    if (h === "" || h === "#/" || (h.startsWith("#/events") && h.split("/").filter(Boolean).length <= 3)) void show();
  }, REFRESH_MS);
}

void main();
