// Unit tests of the explorer's check of a log against its certified tip
// (`explorer/src/verify.ts`): a chain of blocks the way the canisters build
// them verifies, and a tampered, missing or reordered block does not.
// Bundled to dist/test/ and run with `node --test` by scripts/web.sh.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { ICRC3Value } from "@icp-compute-market/bindings/matcher/matcher.did";
import { valueHash, verifyChain, type IndexedBlock, type Tip } from "../explorer/src/verify";

/** A block as `market_api::blocks::block` makes it. */
function block(phash: Uint8Array | undefined, ts: bigint, ev: ICRC3Value): ICRC3Value {
  const map: [string, ICRC3Value][] = [
    ["ts", { Nat: ts }],
    ["btype", { Text: "market.test" }],
    ["ev", ev],
  ];
  if (phash) map.unshift(["phash", { Blob: phash }]);
  return { Map: map };
}

/** A chain of `n` blocks, each naming the hash of the one before, and its tip. */
async function chain(n: number): Promise<{ blocks: IndexedBlock[]; tip: Tip }> {
  const blocks: IndexedBlock[] = [];
  let phash: Uint8Array | undefined;
  for (let i = 0; i < n; i++) {
    const b = block(phash, BigInt(1_000 + i), { Map: [["Noted", { Map: [["n", { Int: BigInt(-i) }], ["who", { Blob: new Uint8Array([i, 1]) }]] }]] });
    blocks.push({ id: BigInt(i), block: b });
    phash = await valueHash(b);
  }
  return { blocks, tip: { length: BigInt(n), hash: phash! } };
}

test("a chain linked to the tip verifies, from its first block or a later one", async () => {
  const { blocks, tip } = await chain(4);
  await verifyChain(tip, 0n, blocks);
  await verifyChain(tip, 2n, blocks.slice(2));
});

test("a tampered block breaks the chain where the next block names it", async () => {
  const { blocks, tip } = await chain(4);
  const tampered = [...blocks];
  tampered[1] = { id: 1n, block: block(undefined, 1_001n, { Text: "forged" }) };
  await assert.rejects(verifyChain(tip, 0n, tampered), /block 1 is not the one the chain names/);
});

test("a tampered last block does not hash to the certified tip", async () => {
  const { blocks, tip } = await chain(3);
  await assert.rejects(verifyChain({ ...tip, hash: await valueHash({ Text: "another" }) }, 0n, blocks), /block 2 is not/);
});

test("a missing or misplaced block is refused", async () => {
  const { blocks, tip } = await chain(4);
  await assert.rejects(verifyChain(tip, 0n, blocks.slice(1)), /3 blocks served for the 4/);
  const swapped = [blocks[0], blocks[2], blocks[1], blocks[3]];
  await assert.rejects(verifyChain(tip, 0n, swapped), /served in the place of/);
});

test("values hash as ICRC-3 has it: map order does not matter, content does", async () => {
  const a: ICRC3Value = { Map: [["x", { Nat: 1n }], ["y", { Text: "z" }]] };
  const b: ICRC3Value = { Map: [["y", { Text: "z" }], ["x", { Nat: 1n }]] };
  assert.deepEqual(await valueHash(a), await valueHash(b));
  assert.notDeepEqual(await valueHash(a), await valueHash({ Map: [["x", { Nat: 2n }], ["y", { Text: "z" }]] }));
  assert.notDeepEqual(await valueHash({ Int: -1n }), await valueHash({ Int: 1n }));
});
