// Uploads the built explorer page (dist/explorer/) to an explorer canister,
// as one of its controllers:
//
//   node dist/tools/upload-explorer.mjs --network http://127.0.0.1:4943 \
//     --canister <explorer id> --identity controller.pem [--dir dist/explorer]
//
// On mainnet pass --network https://icp-api.io (the root key is then not
// fetched). Files are sent in pieces of at most 1 MiB; the page is served,
// and certified, as it stands after each piece.

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Actor, HttpAgent } from "@icp-sdk/core/agent";
import { idlFactory, type _SERVICE } from "@icp-compute-market/bindings/explorer/explorer.did";
import { flags, identityFromPem, need } from "../node/identity";

const PIECE = 1024 * 1024;
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  json: "application/json",
};

async function main() {
  const f = flags(process.argv.slice(2));
  const network = need(f, "network");
  const dir = f.get("dir") ?? join(import.meta.dirname, "..", "explorer");
  const agent = await HttpAgent.create({
    host: network,
    identity: identityFromPem(need(f, "identity")),
    shouldFetchRootKey: !network.startsWith("https://icp-api.io"),
  });
  const explorer = Actor.createActor<_SERVICE>(idlFactory, { agent, canisterId: need(f, "canister") });
  for (const name of readdirSync(dir).sort()) {
    const type = TYPES[name.split(".").pop() ?? ""];
    if (!type) continue;
    const bytes = readFileSync(join(dir, name));
    for (let at = 0; at === 0 || at < bytes.length; at += PIECE) {
      const r = await explorer.upload_asset({
        path: `/${name}`,
        content_type: type,
        content: bytes.subarray(at, at + PIECE),
        append: at > 0,
      });
      if ("Err" in r) throw new Error(`upload of ${name} refused: ${JSON.stringify(r.Err, (_, v) => (typeof v === "bigint" ? String(v) : v))}`);
    }
    console.log(`uploaded /${name} (${bytes.length} bytes, ${type})`);
  }
}

main().catch((e) => {
  console.error(`upload-explorer: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
