import { createHmac } from 'node:crypto';

/**
 * Stands for a national ID on the ops stream: a keyed hash (HMAC-SHA-256,
 * 128 bits shown), so dashboards can count distinct customers without anyone
 * being able to recover or test an ID without the key.
 */
export class SubjectHasher {
  constructor(private readonly key: string) {}

  hash(nationalId: string): string {
    return createHmac('sha256', this.key).update(nationalId).digest('hex').slice(0, 32);
  }
}
