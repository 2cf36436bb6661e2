import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from 'pg';

/**
 * The embedded PostgreSQL shares PGlite's one session between connections.
 * Many clients at once, with parameterised (extended protocol) queries and
 * transactions, must neither corrupt each other's statements nor see each
 * other's uncommitted rows.
 */
it('many connections at once: no interleaved statements, transactions isolated', async () => {
  const child = spawn(process.execPath, [join(__dirname, '../../dist/tools/embedded-postgres.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', (line) => (line.startsWith('POSTGRES_URL ') ? resolve(line.slice(13)) : reject(new Error(line))));
      child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
    });
    const clients = await Promise.all(Array.from({ length: 12 }, async () => {
      const client = new Client({ connectionString: url });
      await client.connect();
      return client;
    }));
    await clients[0].query('CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)');
    await clients[0].query('INSERT INTO counter VALUES (1, 0)');
    const seenUncommitted: number[] = [];
    await Promise.all(
      clients.map(async (client, k) => {
        for (let i = 0; i < 25; i++) {
          // Different parameter counts on purpose: an interleaved Parse/Bind would fail.
          const params = Array.from({ length: (k % 3) + 1 }, (_, j) => j + i);
          const { rows } = await client.query(`SELECT ${params.map((_, j) => `$${j + 1}::int`).join(' + ')} AS total`, params);
          expect(rows[0].total).toBe(params.reduce((a, b) => a + b, 0));
          if (k % 4 === 0) {
            await client.query('BEGIN');
            await client.query('UPDATE counter SET n = n + 1000 WHERE id = $1', [1]);
            await client.query('UPDATE counter SET n = n - 999 WHERE id = $1', [1]);
            await client.query('COMMIT');
          } else {
            const { rows: counter } = await client.query('SELECT n FROM counter WHERE id = $1', [1]);
            if (counter[0].n % 1 !== 0 || counter[0].n > 1000 * 3 * 25) seenUncommitted.push(counter[0].n);
            // A committed value is always the number of finished transactions; a value with +1000 pending is not.
            if (counter[0].n >= 1000) seenUncommitted.push(counter[0].n);
          }
        }
      }),
    );
    const { rows } = await clients[1].query('SELECT n FROM counter');
    expect(rows[0].n).toBe(3 * 25); // clients 0, 4, 8 each committed 25 transactions of +1
    expect(seenUncommitted).toEqual([]);
    await Promise.all(clients.map((client) => client.end()));
  } finally {
    child.stdin!.end();
    await new Promise((resolve) => child.once('exit', resolve));
  }
});
