import { redactPersonalData } from '../../libs/identity';

export type CaseResult = 'PASS' | 'FAIL' | 'SKIPPED';

/** One standard case as it ran: what was expected, what came back, and why it failed or was skipped. */
export interface CaseOutcome {
  id: string;
  title: string;
  /** How to find it in the gateway's logs: the request id, or STAN / RRN. */
  reference: string;
  expected: string;
  actual: string;
  /** Signed JSON only: `verified`, `not checked`, or what is wrong with it. */
  signature?: string;
  result: CaseResult;
  /** Failed checks, or why the case was skipped. */
  problems: string[];
  /** What the bank can do about a failure. */
  hint?: string;
}

export interface ReportSection {
  title: string;
  cases: CaseOutcome[];
}

export type Verdict = 'PASS' | 'FAIL' | 'INCOMPLETE';

export interface ReportHeader {
  date: Date;
  kit: string;
  bank: string;
  /** Label and value rows, in order (gateway URL, certificates, ISO endpoint, customers). */
  rows: [string, string][];
  /** Checks left out for the whole run, e.g. response signatures without --gateway-cert. */
  notChecked: string[];
}

export function verdictOf(sections: ReportSection[], notChecked: string[]): Verdict {
  const cases = sections.flatMap((s) => s.cases);
  if (cases.some((c) => c.result === 'FAIL')) return 'FAIL';
  if (cases.some((c) => c.result === 'SKIPPED') || notChecked.length) return 'INCOMPLETE';
  return 'PASS';
}

export const EXIT_CODES: Record<Verdict, number> = { PASS: 0, FAIL: 1, INCOMPLETE: 2 };

/** A table cell: one line, no column breaks. */
function cell(text: string): string {
  return text.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|').trim() || ' ';
}

export function renderReport(header: ReportHeader, sections: ReportSection[]): string {
  const verdict = verdictOf(sections, header.notChecked);
  const cases = sections.flatMap((s) => s.cases);
  const count = (result: CaseResult) => cases.filter((c) => c.result === result).length;
  const lines: string[] = [
    '# Absher bank gateway: conformance report',
    '',
    `**Result: ${verdict}** — ${cases.length} cases: ${count('PASS')} passed, ${count('FAIL')} failed, ${count('SKIPPED')} skipped.`,
    '',
    '| | |',
    '|---|---|',
    `| date | ${header.date.toISOString()} |`,
    `| bank | ${cell(header.bank)} |`,
    ...header.rows.map(([label, value]) => `| ${cell(label)} | ${cell(value)} |`),
    `| kit | ${cell(header.kit)} |`,
    '',
  ];
  if (header.notChecked.length) {
    lines.push('Not checked in this run:', '', ...header.notChecked.map((n) => `- ${n}`), '');
  }
  for (const section of sections) {
    const signed = section.cases.some((c) => c.signature !== undefined);
    lines.push(`## ${section.title}`, '');
    lines.push(signed ? '| # | case | request | expected | actual | response signature | result |' : '| # | case | request | expected | actual | result |');
    lines.push(signed ? '|---|---|---|---|---|---|---|' : '|---|---|---|---|---|---|');
    for (const c of section.cases) {
      const result = c.result === 'PASS' ? 'PASS' : `${c.result}: ${c.problems.join('; ')}`;
      const columns = [c.id, c.title, c.reference, c.expected, c.actual, ...(signed ? [c.signature ?? ''] : []), result];
      lines.push(`| ${columns.map(cell).join(' | ')} |`);
    }
    lines.push('');
  }
  const skipped = cases.filter((c) => c.result === 'SKIPPED');
  if (skipped.length) {
    lines.push('## Skipped', '', ...skipped.map((c) => `- ${c.id} ${c.title}: ${c.problems.join('; ')}`), '');
  }
  const hints = cases.filter((c) => c.result === 'FAIL' && c.hint);
  if (hints.length) {
    const seen = new Set<string>();
    lines.push('## What to look at', '');
    for (const c of hints) {
      if (seen.has(c.hint!)) continue;
      seen.add(c.hint!);
      lines.push(`- ${c.id}: ${c.hint}`);
    }
    lines.push('');
  }
  // A last line of defence: the cases mask what they print, and this catches what a gateway's detail text might echo.
  return redactPersonalData(lines.join('\n'));
}
