// Checking a log's blocks against the canister's certified tip, as the Rust
// client's `verified_events` does: the tip certificate (signed by the
// subnet, under the network's root key) certifies the tip tree, whose root
// hash is the canister's certified data and which holds the last block's
// index and hash; each block holds the hash of the block before it. So the
// blocks from a page's first event up to the tip, hashed the ICRC-3 way and
// linked back from the certified hash, are the canister's own, wherever
// they were read (the canister, an archive, a replica that lies).

import { Certificate, Cbor, lookup_path, lookupResultToBuffer, reconstruct, type HashTree } from "@icp-sdk/core/agent";
import type { Principal } from "@icp-sdk/core/principal";
import type { ICRC3Value, ICRC3DataCertificate } from "@icp-compute-market/bindings/matcher/matcher.did";

/** The certified end of a log. */
export interface Tip {
  /** Blocks in the log: the last one's index plus one. */
  length: bigint;
  /** The last block's hash. */
  hash: Uint8Array;
}

/** A block and its index, as `icrc3_get_blocks` returns them. */
export interface IndexedBlock {
  id: bigint;
  block: ICRC3Value;
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Unsigned LEB128. */
function leb128(n: bigint): Uint8Array {
  const out: number[] = [];
  do {
    let byte = Number(n & 0x7fn);
    n >>= 7n;
    if (n !== 0n) byte |= 0x80;
    out.push(byte);
  } while (n !== 0n);
  return Uint8Array.from(out);
}

/** Signed LEB128. */
function sleb128(n: bigint): Uint8Array {
  const out: number[] = [];
  for (;;) {
    const byte = Number(n & 0x7fn);
    n >>= 7n;
    const done = (n === 0n && (byte & 0x40) === 0) || (n === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return Uint8Array.from(out);
  }
}

/** Reads an unsigned LEB128 number that fills `bytes` exactly. */
function readLeb128(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = 0; i < bytes.length; i++) {
    n |= BigInt(bytes[i] & 0x7f) << BigInt(7 * i);
    if ((bytes[i] & 0x80) === 0) {
      if (i + 1 !== bytes.length) break;
      return n;
    }
  }
  throw new Error("the tip's index is not a LEB128 number");
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** The ICRC-3 hash of a value (its representation-independent hash). */
export async function valueHash(v: ICRC3Value): Promise<Uint8Array> {
  if ("Blob" in v) return sha256(Uint8Array.from(v.Blob));
  if ("Text" in v) return sha256(new TextEncoder().encode(v.Text));
  if ("Nat" in v) return sha256(leb128(v.Nat));
  if ("Int" in v) return sha256(sleb128(v.Int));
  if ("Array" in v) return sha256(concat(await Promise.all(v.Array.map(valueHash))));
  const pairs = await Promise.all(
    v.Map.map(async ([key, value]) => concat([await sha256(new TextEncoder().encode(key)), await valueHash(value)])),
  );
  return sha256(concat(pairs.sort(compare)));
}

/**
 * Checks a tip certificate: its signature under `rootKey`, that it is the
 * `canister`'s, that the tip tree's root hash is the canister's certified
 * data; returns the tip the tree holds. `checkTime`: whether the
 * certificate must be recent by this machine's clock (not on a devnet
 * whose clock runs fast).
 */
export async function verifyTip(
  tip: ICRC3DataCertificate,
  canister: Principal,
  rootKey: Uint8Array,
  checkTime: boolean,
): Promise<Tip> {
  const certificate = await Certificate.create({
    certificate: Uint8Array.from(tip.certificate),
    rootKey,
    principal: { canisterId: canister },
    disableTimeVerification: !checkTime,
  });
  const certified = lookupResultToBuffer(certificate.lookup_path(["canister", canister.toUint8Array(), "certified_data"]));
  if (!certified) throw new Error("the certificate holds no certified data of the canister");
  const tree = Cbor.decode<HashTree>(Uint8Array.from(tip.hash_tree));
  if (compare(await reconstruct(tree), certified) !== 0) throw new Error("the tip tree is not the certified one");
  const index = lookupResultToBuffer(lookup_path(["last_block_index"], tree));
  const hash = lookupResultToBuffer(lookup_path(["last_block_hash"], tree));
  if (!index || !hash) throw new Error("the tip tree has no last block");
  return { length: readLeb128(index) + 1n, hash };
}

/**
 * Checks that `blocks` are the blocks from `from` to the certified tip, in
 * order: the last hashes to the tip's hash, and each holds the hash of the
 * one before it as its `phash`. Throws at the first that does not.
 */
export async function verifyChain(tip: Tip, from: bigint, blocks: IndexedBlock[]): Promise<void> {
  if (BigInt(blocks.length) !== tip.length - from) {
    throw new Error(`${blocks.length} blocks served for the ${tip.length - from} from ${from} to the tip`);
  }
  let expected: Uint8Array | undefined = tip.hash;
  for (let i = blocks.length - 1; i >= 0; i--) {
    const { id, block } = blocks[i];
    if (id !== from + BigInt(i)) throw new Error(`block ${id} served in the place of ${from + BigInt(i)}`);
    if (!expected || compare(await valueHash(block), expected) !== 0) throw new Error(`block ${id} is not the one the chain names`);
    const phash = "Map" in block ? block.Map.find(([k]) => k === "phash")?.[1] : undefined;
    expected = phash && "Blob" in phash ? Uint8Array.from(phash.Blob) : undefined;
  }
  if (from === 0n && expected !== undefined) throw new Error("block 0 names a block before it");
}
