/**
 * How the simulators report: a Markdown table of what was expected, what came
 * back and PASS or FAIL, then one verdict line, whose exit code scripts and CI
 * can act on.
 */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => '| ' + r.map((cell, c) => cell.padEnd(widths[c])).join(' | ') + ' |';
  return [line(rows[0]), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.slice(1).map(line)].join('\n');
}

/**
 * Prints `<tool>: 12 of 12 as expected`, or `<tool>: 3 of 12 NOT as expected:
 * #2, #5, #9` naming what failed, and returns the exit code: 0, or 1.
 */
export function verdict(tool: string, total: number, failed: number, named: string[]): number {
  process.stdout.write(failed === 0 ? `\n${tool}: ${total} of ${total} as expected\n` : `\n${tool}: ${failed} of ${total} NOT as expected: ${named.join(', ')}\n`);
  return failed === 0 ? 0 : 1;
}
