import { DataSource, QueryRunner } from 'typeorm';

/**
 * What a repository needs of the store: parameterised SQL, on the pool, on a
 * connection of its own, or inside a transaction. DataSource, QueryRunner and
 * EntityManager all fit, so one repository method serves every caller and the
 * caller decides the transaction.
 */
export interface Sql {
  query(sql: string, parameters?: unknown[]): Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A connection taken from the pool for several transactions in a row (a batch, then its replays). */
export interface StoreSession {
  /** The connection itself, outside any transaction. */
  readonly sql: Sql;
  /** BEGIN, `work`, COMMIT; ROLLBACK and rethrow when `work` or the commit fails. */
  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T>;
}

/**
 * How code outside the repositories opens transactions: it decides where a
 * transaction begins and ends, the repositories say what runs inside.
 */
export class Transactions {
  constructor(private readonly dataSource: DataSource) {}

  /** One transaction on a pooled connection. */
  run<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    return this.dataSource.transaction((manager) => work(manager));
  }

  /** Several transactions in a row on one connection (see withSession). */
  session<T>(work: (session: StoreSession) => Promise<T>): Promise<T> {
    return withSession(this.dataSource, work);
  }
}

/** Takes a connection, runs `work` on it, gives it back. A connection that cannot be had fails here, before anything ran. */
export async function withSession<T>(dataSource: DataSource, work: (session: StoreSession) => Promise<T>): Promise<T> {
  const runner: QueryRunner = dataSource.createQueryRunner();
  try {
    await runner.connect();
    return await work({
      sql: runner,
      async transaction<R>(inside: (tx: Sql) => Promise<R>): Promise<R> {
        await runner.query('BEGIN');
        try {
          const result = await inside(runner);
          await runner.query('COMMIT');
          return result;
        } catch (error) {
          await runner.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      },
    });
  } finally {
    await runner.release().catch(() => undefined);
  }
}
