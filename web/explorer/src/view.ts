// Small DOM helpers: every text goes in through text nodes, never HTML, so
// names and other text providers choose can't inject markup.

import { Principal } from "@icp-sdk/core/principal";

type Child = Node | string;

/** An element with attributes and children. */
export function el(tag: string, attrs: Record<string, string>, ...children: Child[]): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** A link within the explorer. */
export function link(href: string, text: string): HTMLElement {
  return el("a", { href }, text);
}

/** A titled section. */
export function section(title: string, ...children: Child[]): HTMLElement {
  return el("section", {}, el("h2", {}, title), ...children);
}

/** A table; `testid` names it for tests and styles. */
export function table(head: string[], rows: Child[][], testid: string): HTMLElement {
  if (rows.length === 0) return el("p", { class: "empty", "data-testid": testid }, "none yet");
  return el(
    "table",
    { "data-testid": testid },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))),
  );
}

/** Token amounts in the ledger's smallest unit, shown in whole tokens
 * (8 decimals, as ICP and ICRC tokens here have). */
export function amount(n: bigint): string {
  const whole = n / 100_000_000n;
  const frac = (n % 100_000_000n).toString().padStart(8, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}

/** IC time (ns since the epoch) as a local date and time. */
export function when(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toLocaleString();
}

/** A principal shortened to its first and last groups. */
export function principalText(p: Principal): string {
  const t = p.toText();
  return t.length > 20 ? `${t.slice(0, 11)}…${t.slice(-3)}` : t;
}

/** The name of a Candid variant value. */
export function variantName(v: object): string {
  return Object.keys(v)[0] ?? "?";
}

const JOB_KEYS = new Set(["job_id", "job"]);
const ACCOUNT_KEYS = new Set(["owner", "provider", "caller", "uploader", "node", "beneficiary", "payer"]);

/** Any Candid value as nested lists, principals and job ids as links. */
export function render(v: unknown, key = ""): Child {
  if (v instanceof Principal) {
    const t = v.toText();
    return ACCOUNT_KEYS.has(key) ? link(`#/${key === "provider" ? "provider" : "account"}/${t}`, t) : t;
  }
  if (typeof v === "bigint") {
    return JOB_KEYS.has(key) ? link(`#/job/${v}`, String(v)) : key === "reservation" ? link(`#/service/${v}`, String(v)) : String(v);
  }
  if (v === null || v === undefined) return "—";
  if (typeof v !== "object") return String(v);
  if (v instanceof Uint8Array || Array.isArray(v) && v.length > 0 && typeof v[0] === "number") {
    const bytes = Array.from(v as ArrayLike<number>);
    const hex = bytes.map((b) => b.toString(16).padStart(2, "0")).join("");
    return hex.length > 16 ? `${hex.slice(0, 16)}…` : hex || "(empty)";
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return "—";
    // Candid options are [] or [value].
    if (v.length === 1 && !Array.isArray(v[0])) return render(v[0], key);
    return el("ol", {}, ...v.map((x) => el("li", {}, render(x, key))));
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 1 && (entries[0][1] === null || typeof entries[0][1] === "object" && entries[0][1] !== null && Object.keys(entries[0][1] as object).length === 0)) {
    return entries[0][0];
  }
  return el("dl", {}, ...entries.flatMap(([k, x]) => [el("dt", {}, k), el("dd", {}, render(x, k))]));
}
