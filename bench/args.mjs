// The command line of the bench scripts (serve.mjs, profile.mjs).

/** The arguments after the script's path. */
export const args = process.argv.slice(2);

/** The value after `--name` on the command line, or `fallback` when it is not given. */
export function opt(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
}
