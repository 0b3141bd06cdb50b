// Submits a job to the market and watches it to its end, with the
// generated bindings and @icp-sdk/core: what `market run` does, in
// TypeScript.
//
//   npm run build
//   node dist/examples/submit-and-watch.mjs --network http://127.0.0.1:4943 \
//     --ledger <id> --escrow <id> --matcher <id> --identity buyer.pem \
//     --module sha256sum.wasm --input input.txt [--deposit-e8s 10000000]
//
// The buyer's account on the ledger pays: the example approves the escrow,
// deposits, uploads the module (paying its storage fee from the deposit),
// submits the job and prints each status it sees, then the job's output.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Actor, HttpAgent, type Agent } from "@icp-sdk/core/agent";
import { IDL } from "@icp-sdk/core/candid";
import { Principal } from "@icp-sdk/core/principal";
import { idlFactory as escrowIdl, type _SERVICE as Escrow } from "@icp-compute-market/bindings/escrow/escrow.did";
import {
  idlFactory as matcherIdl,
  type _SERVICE as Matcher,
  type JobSpec,
  type JobStatus,
} from "@icp-compute-market/bindings/matcher/matcher.did";
import { flags, identityFromPem, need } from "../node/identity";

/** The one ICRC-2 method the example needs; errors are shown, not matched. */
const ledgerIdl: IDL.InterfaceFactory = ({ IDL }) => {
  const Account = IDL.Record({ owner: IDL.Principal, subaccount: IDL.Opt(IDL.Vec(IDL.Nat8)) });
  return IDL.Service({
    icrc2_approve: IDL.Func(
      [
        IDL.Record({
          from_subaccount: IDL.Opt(IDL.Vec(IDL.Nat8)),
          spender: Account,
          amount: IDL.Nat,
          expected_allowance: IDL.Opt(IDL.Nat),
          expires_at: IDL.Opt(IDL.Nat64),
          fee: IDL.Opt(IDL.Nat),
          memo: IDL.Opt(IDL.Vec(IDL.Nat8)),
          created_at_time: IDL.Opt(IDL.Nat64),
        }),
      ],
      [IDL.Variant({ Ok: IDL.Nat, Err: IDL.Reserved })],
      [],
    ),
  });
};
interface Ledger {
  icrc2_approve(args: {
    from_subaccount: [];
    spender: { owner: Principal; subaccount: [] };
    amount: bigint;
    expected_allowance: [];
    expires_at: [];
    fee: [];
    memo: [];
    created_at_time: [];
  }): Promise<{ Ok: bigint } | { Err: unknown }>;
}

/** The ledger's transfer fee here (the devnet's ICP ledger). */
const LEDGER_FEE = 10_000n;
const CHUNK = 1024 * 1024;
const FINAL: JobStatus[] = [{ Succeeded: null }, { Failed: null }, { Cancelled: null }, { Expired: null }];

const statusName = (s: JobStatus) => Object.keys(s)[0];
const show = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? String(x) : x));

function ok<T>(what: string, r: { Ok: T } | { Err: unknown }): T {
  if ("Err" in r) throw new Error(`${what}: ${show(r.Err)}`);
  return r.Ok;
}

async function main() {
  const f = flags(process.argv.slice(2));
  const network = need(f, "network");
  const identity = identityFromPem(need(f, "identity"));
  const agent: Agent = await HttpAgent.create({
    host: network,
    identity,
    shouldFetchRootKey: !network.startsWith("https://icp-api.io"),
  });
  const ledgerId = Principal.fromText(need(f, "ledger"));
  const escrowId = Principal.fromText(need(f, "escrow"));
  const ledger = Actor.createActor<Ledger>(ledgerIdl, { agent, canisterId: ledgerId });
  const escrow = Actor.createActor<Escrow>(escrowIdl, { agent, canisterId: escrowId });
  const matcher = Actor.createActor<Matcher>(matcherIdl, { agent, canisterId: need(f, "matcher") });
  const module = readFileSync(need(f, "module"));
  const input = readFileSync(need(f, "input"));
  const deposit = BigInt(f.get("deposit-e8s") ?? "10000000");
  console.log(`buyer ${identity.getPrincipal().toText()}`);

  // 1. Deposit into the escrow: an allowance, then a pull.
  ok("icrc2_approve", await ledger.icrc2_approve({
    from_subaccount: [],
    spender: { owner: escrowId, subaccount: [] },
    amount: deposit + LEDGER_FEE,
    expected_allowance: [],
    expires_at: [],
    fee: [],
    memo: [],
    created_at_time: [],
  }));
  ok("deposit", await escrow.deposit({ from_subaccount: [], ledger: ledgerId, amount: deposit }));
  console.log(`deposited ${deposit} e8s`);

  // 2. Store the module, addressed by its sha256.
  const sha256 = createHash("sha256").update(module).digest();
  const info = await matcher.module_info_of(sha256);
  if (!info.length || !info[0].committed) {
    ok("begin_module_upload", await matcher.begin_module_upload({ sha256, size: BigInt(module.length) }));
    for (let i = 0; i * CHUNK < module.length; i++) {
      ok("put_module_chunk", await matcher.put_module_chunk(sha256, i, module.subarray(i * CHUNK, (i + 1) * CHUNK)));
    }
    ok("commit_module", await matcher.commit_module(sha256));
    console.log(`module ${sha256.toString("hex")} stored (${module.length} bytes)`);
  }

  // 3. Submit the job.
  const spec: JobSpec = {
    module: { Stored: { sha256 } },
    input,
    args: [],
    env: [],
    ledger: ledgerId,
    currency: [],
    max_price_per_gfuel: 200_000n,
    limits: { fuel: 1_000_000_000n, memory_mib: 64 },
    interval_secs: 20n,
    max_retries: 2,
    min_provider_stake: 0n,
    audit_ppm: [],
    min_record: [],
    sealed: [],
    callback: [],
    deadline_secs: [],
  };
  const id = ok("submit_job", await matcher.submit_job(spec));
  console.log(`job ${id} submitted`);

  // 4. Watch it: print every status change until it is final.
  let last = "";
  for (;;) {
    const view = await matcher.job_view(id);
    if (!view.length) throw new Error(`job ${id} vanished`);
    const job = view[0].job;
    const where = job.provider.length ? ` on ${job.provider[0].toText()}` : "";
    const now = `${statusName(job.status)}${where}`;
    if (now !== last) console.log(`job ${id}: ${now}`);
    last = now;
    if (FINAL.some((s) => statusName(s) === statusName(job.status))) break;
    await new Promise((r) => setTimeout(r, 250));
  }

  // 5. Its output, read by its owner.
  const chunk = ok("job_chunk", await matcher.job_chunk({ job_id: id, part: { Output: null }, offset: 0n }));
  process.stdout.write(`output: ${Buffer.from(chunk.bytes).toString("utf8")}`);
  if (!last.startsWith("Succeeded")) process.exit(2);
}

main().catch((e) => {
  console.error(`submit-and-watch: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
