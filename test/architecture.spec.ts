import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * The shape the code keeps (docs/architecture.md, "Modules and repositories"), checked on the sources:
 * repositories are the only code that talks to PostgreSQL, and the libraries' entry points carry only
 * what the gateway uses, the client sides staying in files of their own.
 */
const ROOT = join(__dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return sources(path);
    return path.endsWith('.ts') && !path.endsWith('.spec.ts') ? [path] : [];
  });
}

/** Where SQL may be written: the repositories, and the store itself (migrations, the data source, transactions). */
const MAY_WRITE_SQL = (path: string) => path.endsWith('.repository.ts') || path === 'src/registry/registration-read-model.ts' || path === 'src/outbox/relay-slot-locks.ts' || path.startsWith('src/database/');

it('no class outside the repositories and the store writes SQL', () => {
  const offenders = sources('src')
    .filter((path) => !MAY_WRITE_SQL(path))
    .filter((path) => /\.query\(\s*[`'"]/.test(readFileSync(join(ROOT, path), 'utf8')));
  expect(offenders).toEqual([]);
});

it('no class outside the repositories and the store holds a DataSource; modules only hand it to repositories', () => {
  const offenders = sources('src')
    .filter((path) => !MAY_WRITE_SQL(path) && !path.endsWith('.module.ts'))
    .filter((path) => /\bDataSource\b/.test(readFileSync(join(ROOT, path), 'utf8')));
  expect(offenders).toEqual([]);
});

it("the libraries' entry points carry no client side or test helper, and the gateway never imports one", () => {
  /* eslint-disable @typescript-eslint/no-require-imports */
  expect(Object.keys(require('../libs/iso8583'))).not.toContain('AtmSwitchClient');
  expect(Object.keys(require('../libs/pki'))).not.toContain('issueCertificate');
  expect(Object.keys(require('../libs/jws'))).not.toContain('signBankRequest');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const importers = sources('src').filter((path) => /libs\/(iso8583\/atm-switch-client|pki\/certificate-builder|jws\/request-signing)'/.test(readFileSync(join(ROOT, path), 'utf8')));
  expect(importers.map((path) => relative(ROOT, join(ROOT, path)))).toEqual([]);
});
