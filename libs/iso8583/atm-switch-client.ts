import { connect, Socket } from 'node:net';
import { connect as connectTls, ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { IsoFields, packMessage, unpackMessage } from './codec';
import { frame, FrameDecoder } from './framing';
import { macOf, packSigned, verifyMac } from './mac-filter';
import { MacKey, softwareMacKey } from './mac';
import { messageDefinition, requestCarriesMac } from './message-definitions';

export type MacMode = 'valid' | 'wrong' | 'missing';

/** The error of a request whose connection closed before its answer came. */
export const CONNECTION_CLOSED = 'connection closed';

/**
 * What an ATM switch does (spec 4): one TCP connection, many requests in
 * flight, answers matched on fields 11 and 37, MACs set and checked. Used by
 * the tests, `npm run simulate:atm` and the conformance kit.
 */
export class AtmSwitchClient {
  private readonly decoder = new FrameDecoder(65535);
  private readonly waiting = new Map<string, { resolve: (answer: AtmAnswer) => void; reject: (error: Error) => void }>();
  readonly closed: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    private readonly macKey: MacKey | null,
  ) {
    socket.on('data', (chunk) => {
      for (const raw of this.decoder.push(chunk)) {
        const fields = unpackMessage(raw);
        const key = matchKey(fields);
        const pending = this.waiting.get(key);
        this.waiting.delete(key);
        pending?.resolve({ fields, raw, macValid: this.macValid(fields, raw), macExpected: macExpected(fields) });
      }
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        for (const pending of this.waiting.values()) pending.reject(new Error(CONNECTION_CLOSED));
        this.waiting.clear();
        resolve();
      }),
    );
    socket.on('error', () => undefined);
  }

  /** Over TCP, or over TLS with `tls` (a client certificate and key for mutual TLS, the CA to trust). */
  static connect(host: string, port: number, macKey: Buffer | null, tls?: TlsConnectionOptions): Promise<AtmSwitchClient> {
    const key = macKey && softwareMacKey(macKey);
    return new Promise((resolve, reject) => {
      const socket: Socket = tls ? connectTls({ host, port, ...tls }, () => resolve(new AtmSwitchClient(socket, key))) : connect({ host, port }, () => resolve(new AtmSwitchClient(socket, key)));
      socket.once('error', reject);
    });
  }

  /** Packs, MACs (unless told otherwise) and sends; resolves with the matching answer. */
  request(fields: IsoFields, mac: MacMode = 'valid', timeoutMs = 15_000): Promise<AtmAnswer> {
    const raw = this.pack(fields, mac);
    return this.send(raw, matchKey(fields), timeoutMs);
  }

  /** The bytes a request would go out as. */
  pack(fields: IsoFields, mac: MacMode = 'valid'): Buffer {
    if (mac === 'missing' || !requestCarriesMac(fields[0])) return packMessage(fields);
    const raw = packSigned(fields, this.macKey);
    if (mac === 'wrong') macOf(raw)[0] ^= 0xff;
    return raw;
  }

  send(raw: Buffer, key: string, timeoutMs = 15_000): Promise<AtmAnswer> {
    // The gateway ended the connection (it may, after repeated MAC failures): nothing sent will be answered.
    if (this.socket.destroyed || this.socket.readableEnded) return Promise.reject(new Error(CONNECTION_CLOSED));
    const answer = this.awaitAnswer(key, timeoutMs);
    this.socket.write(frame(raw));
    return answer;
  }

  /** The answer that will match `key` (STAN/RRN), however the request is written. */
  awaitAnswer(key: string, timeoutMs = 15_000): Promise<AtmAnswer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(new Error(`no answer for ${key} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(key, {
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  /** Writes bytes as they are (no framing): for tests of framing and hostile input. */
  writeRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  close(): Promise<void> {
    this.socket.end();
    return this.closed;
  }

  private macValid(fields: IsoFields, raw: Buffer): boolean | null {
    const verdict = verifyMac(raw, fields, this.macKey);
    return verdict === 'missing' || verdict === 'no-key' ? null : verdict === 'valid';
  }
}

export interface AtmAnswer {
  fields: IsoFields;
  raw: Buffer;
  /** null when the answer carries no MAC (or no key was given to check it). */
  macValid: boolean | null;
  /**
   * Whether spec 4.3 has this answer carry a MAC: not an 0810, nor a 63, which answers a message that
   * proved nothing and so proves nothing itself. A 63 with no MAC is a valid answer (macValid null).
   */
  macExpected: boolean;
}

/** See AtmAnswer.macExpected. */
export function macExpected(fields: IsoFields): boolean {
  // An answer type the contract does not define is expected to carry one: its MAC is then reported missing.
  return messageDefinition(fields[0])?.mac !== false && fields[39] !== '63';
}

/** What is wrong with an answer's MAC by spec 4.3, or null: a 63 must have none, other 0210/0430 a valid one. */
export function answerMacProblem(answer: AtmAnswer): string | null {
  if (!answer.macExpected) return answer.macValid === null ? null : `a ${answer.fields[39] === '63' ? '63' : answer.fields[0]} must carry no MAC, this one has one`;
  if (answer.macValid === null) return 'the answer has no MAC';
  return answer.macValid ? null : "the answer's MAC does not verify";
}

/** Answers are matched on STAN and RRN (spec 4.1). */
export function matchKey(fields: IsoFields): string {
  return `${fields[11] ?? ''}/${fields[37] ?? ''}`;
}
