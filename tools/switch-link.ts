import { IsoFields } from '../libs/iso8583';
import { AtmAnswer, AtmSwitchClient, CONNECTION_CLOSED, MacMode } from '../libs/iso8583/atm-switch-client';

/** Where a switch connects, with which MAC key, and how long it waits for a connection or an answer. */
export interface SwitchTarget {
  host: string;
  port: number;
  macKey: Buffer;
  timeoutMs: number;
}

/** An answer, or why there was none. */
export type Sent = { ok: true; answer: AtmAnswer } | { ok: false; error: string };

/** One switch connection, opened again if the gateway closed it, so one broken case does not fail all that follow. */
export class SwitchLink {
  private client: AtmSwitchClient | null = null;
  private open = false;

  constructor(private readonly target: SwitchTarget) {}

  /**
   * Once more on a new connection when the gateway closed this one before answering: it closes a
   * connection after repeated MAC failures (spec 4.3), and a request it did not read was not decided
   * (sent again with the same 7, 11, 37 and 41, a request it did decide gets its original answer).
   */
  async send(fields: IsoFields, mac: MacMode = 'valid'): Promise<Sent> {
    for (let attempt = 1; ; attempt++) {
      try {
        const client = await this.connected();
        return { ok: true, answer: await client.request(fields, mac, this.target.timeoutMs) };
      } catch (error) {
        const closed = (error as Error).message === CONNECTION_CLOSED;
        if (closed && attempt === 1) {
          this.open = false;
          continue;
        }
        return { ok: false, error: (error as Error).message };
      }
    }
  }

  async close(): Promise<void> {
    if (this.client && this.open) await this.client.close();
  }

  private async connected(): Promise<AtmSwitchClient> {
    if (this.client && this.open) return this.client;
    const { host, port, macKey, timeoutMs } = this.target;
    const connecting = AtmSwitchClient.connect(host, port, macKey);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`cannot connect to ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const client = await Promise.race([connecting, timeout]);
      this.client = client;
      this.open = true;
      void client.closed.then(() => {
        this.open = false;
      });
      return client;
    } catch (error) {
      // A connection that completes after we gave up must not keep the process alive.
      connecting.then((late) => late.close()).catch(() => undefined);
      const code = (error as { code?: string }).code;
      throw new Error(code ? `cannot connect to ${host}:${port}: ${code}` : (error as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }
}
