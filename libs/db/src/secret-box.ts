import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * Encrypts secrets stored in the database (vCenter passwords) with
 * AES-256-GCM under a key derived from SENDENSE_SECRET_KEY. Someone with a
 * database dump but not the key learns nothing.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(secret: string) {
    if (!secret) {
      throw new Error('SENDENSE_SECRET_KEY is not set: it is needed to store vCenter passwords encrypted (scripts/setup.sh makes one)');
    }
    this.key = createHash('sha256').update(`sendense:${secret}`).digest();
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return `v1:${iv.toString('base64')}:${c.getAuthTag().toString('base64')}:${body.toString('base64')}`;
  }

  open(sealed: string): string {
    const [v, iv, tag, body] = sealed.split(':');
    if (v !== 'v1' || !iv || !tag || body === undefined) throw new Error('stored secret has an unknown format');
    const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
    d.setAuthTag(Buffer.from(tag, 'base64'));
    try {
      return Buffer.concat([d.update(Buffer.from(body, 'base64')), d.final()]).toString('utf8');
    } catch {
      throw new Error('stored secret cannot be decrypted: SENDENSE_SECRET_KEY differs from the one it was stored with');
    }
  }
}
