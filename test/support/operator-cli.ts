import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestEnvironment } from './test-environment';

const CLI = join(__dirname, '../../dist/tools/cli.js');

/** The operators' CLI, run as operators run it (`npm run cli`), against the store of an environment's gateway. */
export function runCli(env: TestEnvironment, operator: string, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args, '--operator', operator], {
    env: { PATH: process.env.PATH ?? '', ...env.gatewayEnv() },
    encoding: 'utf8',
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The CLI's output when it succeeds; otherwise an error with its exit code and what it said. */
export function cliOk(env: TestEnvironment, operator: string, ...args: string[]): string {
  const result = runCli(env, operator, ...args);
  if (result.code !== 0) throw new Error(`cli ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}
