// Bundles the explorer page into dist/explorer/ (index.html, explorer.js,
// explorer.css: what dist/tools/upload-explorer.mjs uploads to the explorer
// canister), the TypeScript example into dist/examples/ and the upload tool
// into dist/tools/ and the unit tests into dist/test/, with esbuild.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(web, "dist", "explorer");
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: [join(web, "explorer", "src", "main.ts")],
  outfile: join(out, "explorer.js"),
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync(join(web, "explorer", "index.html"), join(out, "index.html"));
copyFileSync(join(web, "explorer", "style.css"), join(out, "explorer.css"));

for (const [src, dst] of [
  ["examples/submit-and-watch.ts", "examples/submit-and-watch.mjs"],
  ["tools/upload-explorer.ts", "tools/upload-explorer.mjs"],
  ["test/verify.test.ts", "test/verify.test.mjs"],
]) {
  await esbuild.build({
    entryPoints: [join(web, src)],
    outfile: join(web, "dist", dst),
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning",
  });
}
