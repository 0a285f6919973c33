// Builds the dashboard (dashboard/) into dashboard/dist, the Worker's static assets
// (wrangler.toml [assets]): the script and the style sheet bundled by esbuild under content-hashed
// names in dist/assets/, index.html pointing at them, and _headers. Run by scripts/build.sh.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "dashboard");
const dist = join(source, "dist");

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
const { metafile } = await build({
  entryPoints: [join(source, "src", "main.ts"), join(source, "src", "style.css")],
  outdir: join(dist, "assets"),
  entryNames: "[name]-[hash]",
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: ["chrome120", "firefox120", "safari17"],
  metafile: true,
  logLevel: "warning",
});

/** The public path of the output built from `entry` (dashboard/src/...). */
function output(entry) {
  const [path] = Object.entries(metafile.outputs).find(
    ([, out]) => out.entryPoint && basename(out.entryPoint) === entry,
  );
  return `/${relative(dist, join(root, path))}`;
}

const html = readFileSync(join(source, "index.html"), "utf8")
  .replace("%SCRIPT%", output("main.ts"))
  .replace("%STYLE%", output("style.css"));
writeFileSync(join(dist, "index.html"), html);
copyFileSync(join(source, "_headers"), join(dist, "_headers"));
console.log(`dashboard: ${relative(root, dist)} (${output("main.ts")}, ${output("style.css")})`);
