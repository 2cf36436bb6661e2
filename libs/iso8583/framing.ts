/**
 * 2-byte big-endian length framing (spec 4.1): reassembles frames across TCP
 * segments and splits several frames out of one. A length over the maximum,
 * or zero, is a protocol error: the connection cannot be resynchronised.
 */
export class FrameTooLargeError extends Error {}

export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrameBytes: number) {}

  /** Returns the complete frames now available (without their length prefix). */
  push(chunk: Buffer): Buffer[] {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    const frames: Buffer[] = [];
    while (this.buffered.length >= 2) {
      const length = this.buffered.readUInt16BE(0);
      if (length === 0 || length > this.maxFrameBytes) {
        throw new FrameTooLargeError(`frame length ${length} is outside 1..${this.maxFrameBytes}`);
      }
      if (this.buffered.length < 2 + length) break;
      frames.push(Buffer.from(this.buffered.subarray(2, 2 + length)));
      this.buffered = this.buffered.subarray(2 + length);
    }
    return frames;
  }

  get pendingBytes(): number {
    return this.buffered.length;
  }
}

export function frame(message: Buffer): Buffer {
  const framed = Buffer.alloc(message.length + 2);
  framed.writeUInt16BE(message.length, 0);
  message.copy(framed, 2);
  return framed;
}
