import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** `npm test` runs on the project's runtime (scripts/node24 fetches it when the machine's Node is older). */
it('runs on Node.js 24 LTS or later, the engine package.json asks for', () => {
  const engine = JSON.parse(readFileSync(join(__dirname, '../package.json'), 'utf8')).engines.node as string;
  const wanted = Number(/^>=(\d+)/.exec(engine)![1]);
  expect(wanted).toBe(24);
  expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(wanted);
});
