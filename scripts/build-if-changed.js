// Runs `npm run build` only when a source is newer than the last build this
// script made, so the tools (npm run cli, simulate, conformance...) and
// `npm start` start at once when nothing changed. The stamp, dist/.build-stamp,
// holds the time that build started: a file saved while it ran is newer, so the
// next call builds again. Directories count too: deleting or renaming a file
// changes its directory's time. A build run directly (npm run build) writes no
// stamp, so the next call here builds once more.
const { spawnSync } = require('node:child_process');
const { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } = require('node:fs');
const { join, relative } = require('node:path');

const root = join(__dirname, '..');
const stamp = join(root, 'dist', '.build-stamp');
// What the build compiles or reads (tsconfig.build.json's include, the compiler settings, the asset copier), and contracts/, which the tools read.
const INPUTS = ['src', 'libs', 'tools', 'contracts', 'tsconfig.json', 'tsconfig.build.json', 'scripts/copy-assets.js'];
// Unit and end-to-end specs are not part of the build.
const NOT_BUILT = /\.(e2e-)?spec\.ts$/;

/** The most recently changed path under `path`, with its time in ms. */
function newest(path) {
  const stats = statSync(path);
  let found = { path, time: stats.mtimeMs };
  if (!stats.isDirectory()) return found;
  for (const name of readdirSync(path)) {
    if (NOT_BUILT.test(name)) continue;
    const inner = newest(join(path, name));
    if (inner.time > found.time) found = inner;
  }
  return found;
}

const built = existsSync(stamp) ? Number(readFileSync(stamp, 'utf8')) : 0;
const changed = INPUTS.map((input) => join(root, input))
  .filter((path) => existsSync(path))
  .map(newest)
  .reduce((a, b) => (b.time > a.time ? b : a));
if (built > 0 && changed.time <= built && existsSync(join(root, 'dist/src/main.js'))) process.exit(0);

const reason = built > 0 ? `${relative(root, changed.path)} changed since the last build` : 'no build yet';
process.stderr.write(`build-if-changed: ${reason}; building (npm run build)\n`);
const started = Date.now();
const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
mkdirSync(join(root, 'dist'), { recursive: true });
writeFileSync(stamp, String(started));
