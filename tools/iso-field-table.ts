/**
 * Renders contracts/iso8583/fields.json as the Markdown field table of the
 * README (between the "iso8583-fields" markers); a test keeps them equal.
 *   node dist/tools/iso-field-table.js            prints it
 *   node dist/tools/iso-field-table.js --write    updates README.md
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIELD_TABLE } from '../libs/iso8583/field-formats';
import { projectRoot } from '../src/common/project-root';
import { defineTool, runTool } from './options';

export function renderFieldTable(): string {
  const rows = FIELD_TABLE.fields.map((f) => {
    const format = `${f.type} ${f.length === 'fixed' ? f.max : `${f.length} ..${f.max}`}${f.type === 'b' ? ' bytes' : ''}`;
    const flows = [f.in, f.out].map((list) => list.join(', ') || '–');
    const notes = [f.note, f.mask ? `masked in logs (${f.mask})` : ''].filter(Boolean).join('; ');
    return `| ${f.field} | ${f.name} | ${format} | ${flows[0]} | ${flows[1]} | ${notes} |`;
  });
  return ['| field | name | format | in | out | notes |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

const TOOL = defineTool({
  name: 'iso-field-table',
  invocation: 'node dist/tools/iso-field-table.js',
  summary: "Renders contracts/iso8583/fields.json as the README's field table (`npm run docs:iso-table` writes it).",
  options: { write: { type: 'boolean', help: 'update the table in README.md instead of printing it' } },
});

if (require.main === module) {
  runTool(TOOL, ({ write }) => {
    const table = renderFieldTable();
    if (write) {
      const readme = join(projectRoot(), 'README.md');
      const text = readFileSync(readme, 'utf8');
      writeFileSync(readme, text.replace(/<!-- iso8583-fields:start -->[\s\S]*?<!-- iso8583-fields:end -->/, `<!-- iso8583-fields:start -->\n${table}\n<!-- iso8583-fields:end -->`));
    } else {
      process.stdout.write(table + '\n');
    }
    return 0;
  });
}
