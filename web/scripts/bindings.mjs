// Regenerates bindings/src/<canister>/ from the checked-in .did files with
// @icp-sdk/bindgen: `npm run bindings` after a canister's interface changes.
// With a directory argument, writes there instead (scripts/web.sh compares
// that with the checked-in bindings).
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const bindgen = join(web, "node_modules", ".bin", "icp-bindgen");
const root = process.argv[2] ?? join(web, "bindings", "src");
for (const canister of ["registry", "escrow", "matcher", "explorer"]) {
  const out = join(root, canister);
  rmSync(out, { recursive: true, force: true });
  execFileSync(
    bindgen,
    [
      "--did-file", join(web, "..", "src", canister, `${canister}.did`),
      "--out-dir", out,
      "--declarations-typescript",
      "--declarations-flat",
      "--declarations-root-exports",
      "--force",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
}
