/**
 * Uploaded files, one folder per job under UPLOADS_DIR, as `ArtifactStore` keeps what steps make: a multipart body is
 * streamed into its job's folder (hashed on the way, never held in memory), a refused or failed upload leaves nothing
 * behind, and the one file of a folder is the job's original.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { MultipartFile } from '@fastify/multipart';
import { HttpError } from './http.js';

/** Why a write fails when the disk (or the process's share of it) is full. */
const NO_ROOM = ['ENOSPC', 'EDQUOT', 'EFBIG'];

type Part = MultipartFile | { type: 'field'; fieldname: string; value: unknown };

export interface Upload {
  /** The text fields, one value each. */
  fields: Record<string, string>;
  /** Where the file was written and the name the client gave it; null when the body had no file or was only hashed. */
  stored: { path: string; name: string } | null;
  /** A fingerprint of the whole request (file name, bytes and fields), for Idempotency-Key checks. */
  hash: string;
}

export class UploadStore {
  constructor(
    readonly root: string,
    private readonly maxFileBytes: number,
  ) {}

  dir(jobId: string): string {
    return path.join(this.root, jobId);
  }

  /**
   * Reads a multipart body: its fields, and its one file, streamed into the job's folder (or only hashed, when
   * `jobId` is null). Whatever goes wrong, the folder is removed before the error is thrown.
   */
  async receive(parts: AsyncIterableIterator<unknown>, jobId: string | null): Promise<Upload> {
    try {
      return await this.read(parts as AsyncIterableIterator<Part>, jobId === null ? null : this.dir(jobId));
    } catch (err) {
      if (jobId !== null) await this.discard(jobId);
      throw err;
    }
  }

  async discard(jobId: string): Promise<void> {
    await fs.rm(this.dir(jobId), { recursive: true, force: true });
  }

  /** The one file in a job's folder: the upload, or the producer's file as the service pinned it; else null. */
  async original(jobId: string): Promise<string | null> {
    const dir = this.dir(jobId);
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    const files = entries.filter((e) => e.isFile() && !e.name.startsWith('.'));
    return files.length === 1 ? path.join(dir, files[0]!.name) : null;
  }

  private async read(parts: AsyncIterableIterator<Part>, dir: string | null): Promise<Upload> {
    // No prototype: a field may be called anything, `__proto__` included.
    const fields = Object.create(null) as Record<string, string>;
    const digest = createHash('sha256');
    let stored: Upload['stored'] = null;
    let seenFile = false;
    for await (const part of parts) {
      if (part.type === 'field') {
        // One plain-text value per field: a second one, or a JSON-typed part (parsed into an object), is refused
        // rather than quietly reduced to one string.
        if (Object.hasOwn(fields, part.fieldname))
          throw new HttpError(400, 'INVALID_INPUT', `the field \`${part.fieldname}\` is given more than once`);
        if (typeof part.value !== 'string')
          throw new HttpError(400, 'INVALID_INPUT', `the field \`${part.fieldname}\` must be plain text`);
        fields[part.fieldname] = part.value;
        continue;
      }
      if (part.fieldname !== 'file' || seenFile) {
        part.file.resume();
        throw new HttpError(400, 'BAD_REQUEST', 'send exactly one file, in the field `file`');
      }
      seenFile = true;
      digest.update(`file:${part.filename}\n`);
      const tap = new Transform({
        transform(chunk: Buffer, _enc, done) {
          digest.update(chunk);
          done(null, chunk);
        },
      });
      if (dir) {
        const name = safeName(part.filename);
        await fs.mkdir(dir, { recursive: true });
        const target = path.join(dir, name);
        await pipeline(part.file, tap, createWriteStream(target)).catch((err: unknown) => {
          if (NO_ROOM.includes((err as NodeJS.ErrnoException).code ?? ''))
            throw new HttpError(507, 'RESOURCE_LIMIT', 'the server has no room for this upload now; try again later');
          throw err;
        });
        // The client's name as the job's file name, within the schema's bound.
        stored = { path: target, name: (part.filename || name).slice(0, 255) };
      } else {
        for await (const chunk of part.file) digest.update(chunk as Buffer);
      }
      if (part.file.truncated) {
        throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `the file is over the limit of ${this.maxFileBytes} bytes`);
      }
    }
    for (const k of Object.keys(fields).sort()) digest.update(`field:${k}=${fields[k]}\n`);
    return { fields, stored, hash: digest.digest('hex') };
  }
}

/** A file name safe to write: no folders, no leading dots, nothing but ordinary characters. */
function safeName(name: string | undefined): string {
  const base = path
    .basename(name ?? '')
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '');
  return base.slice(-120) || 'upload';
}
