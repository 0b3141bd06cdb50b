// Identities for the Node.js tools: an Ed25519 key from a PKCS#8 PEM file,
// as `provider-node identity new`, `market` and dfx write them.

import { readFileSync } from "node:fs";
import { Ed25519KeyIdentity } from "@icp-sdk/core/identity";

/** The Ed25519 PKCS#8 algorithm identifier (OID 1.3.101.112) and the
 * OCTET STRING header of the 32-byte seed that follows it. */
const ED25519_SEED_PREFIX = [0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/** The identity in an Ed25519 PKCS#8 PEM file (v1 or v2). */
export function identityFromPem(path: string): Ed25519KeyIdentity {
  const pem = readFileSync(path, "utf8");
  const body = pem.match(/-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/);
  if (!body) throw new Error(`${path}: no PKCS#8 "PRIVATE KEY" block (only Ed25519 keys are read)`);
  const der = Buffer.from(body[1].replace(/\s+/g, ""), "base64");
  const at = indexOf(der, ED25519_SEED_PREFIX);
  if (at < 0) throw new Error(`${path}: not an Ed25519 key`);
  const seed = der.subarray(at + ED25519_SEED_PREFIX.length, at + ED25519_SEED_PREFIX.length + 32);
  return Ed25519KeyIdentity.generate(new Uint8Array(seed));
}

function indexOf(haystack: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** `--name value` pairs of the command line. */
export function flags(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${a} needs a value`);
    out.set(a.slice(2), value);
    i++;
  }
  return out;
}

/** A required flag. */
export function need(f: Map<string, string>, name: string): string {
  const v = f.get(name);
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}
