// Fails when src/gen is not what `buf generate` makes from proto/ now, or when `buf lint` fails.
// Generates into a temporary copy so the working tree is never touched.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const buf = join(root, 'node_modules', '.bin', 'buf');
const env = { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` };
const work = mkdtempSync(join(tmpdir(), 'heimdall-gen-'));

/** Lists every file below dir, relative to it. */
function files(dir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

try {
  execFileSync(buf, ['lint'], { cwd: join(root, 'proto'), stdio: 'inherit', env });
  cpSync(join(root, 'proto'), join(work, 'proto'), { recursive: true });
  execFileSync(buf, ['generate'], { cwd: join(work, 'proto'), stdio: 'inherit', env });
  const fresh = join(work, 'src', 'gen');
  const committed = join(root, 'src', 'gen');
  const want = files(fresh);
  const have = files(committed);
  const stale = [
    ...want.filter((f) => !have.includes(f)).map((f) => `missing: src/gen/${f}`),
    ...have.filter((f) => !want.includes(f)).map((f) => `not generated from proto/: src/gen/${f}`),
    ...want
      .filter((f) => have.includes(f))
      .filter((f) => !readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f))))
      .map((f) => `stale: src/gen/${f}`),
  ];
  if (stale.length > 0) {
    console.error(`Generated code is out of date; run \`npm run generate\` and commit:\n  ${stale.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`src/gen is fresh (${want.length} files); buf lint passed`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
