import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

export async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { signal, highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function readHead(file: string, bytes: number): Promise<Buffer> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Writes through a temporary name and renames, so a reader (or a resumed step) never sees half a file. */
export async function writeFileAtomic(target: string, data: Buffer | string): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = `${target}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, data);
  await fs.rename(tmp, target);
}

/** True when `child` is `parent` or inside it, after resolving `..` and symlinks of existing parts. */
export async function isInside(parent: string, child: string): Promise<boolean> {
  const realParent = await fs.realpath(parent).catch(() => path.resolve(parent));
  const realChild = await fs.realpath(child).catch(() => path.resolve(child));
  const rel = path.relative(realParent, realChild);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export function excerpt(text: string, max = 500): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const cut = flat.slice(0, max);
  const lastSpace = cut.lastIndexOf(' ');
  return `${cut.slice(0, lastSpace > max * 0.6 ? lastSpace : max)}…`;
}

export type PinResult = { ok: true; path: string } | { ok: false; reason: string };

/**
 * The job's own reference to a producer's file, so that every step reads the file that was checked: a hard link in
 * `dir` to the very inode found under one of `roots` (a copy when the file is on another file system). Replacing
 * the producer's path afterwards (by a symlink to a secret, or a rename over it) changes nothing for the job.
 * The inode is opened without following a final symlink and compared with what the resolved path holds, so a swap
 * in the middle of the check is refused rather than followed. A missing path, or one that is not a regular file, is
 * returned as it is: validate reports it (FILE_NOT_FOUND).
 */
export async function pinFile(file: string, roots: readonly string[], dir: string): Promise<PinResult> {
  const outside: PinResult = { ok: false, reason: 'file.path is outside INPUT_ROOTS and the upload folder' };
  let real: string;
  try {
    real = await fs.realpath(file);
  } catch {
    return { ok: true, path: file }; // missing or unreadable: validate says which
  }
  if (!(await insideAny(roots, real))) return outside;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP')
      return { ok: false, reason: 'file.path changed while it was checked' };
    return { ok: true, path: file };
  }
  try {
    const opened = await fh.stat();
    if (!opened.isFile()) return { ok: true, path: file };
    const now = await fs.lstat(real).catch(() => null);
    if (!now || now.ino !== opened.ino || now.dev !== opened.dev || !(await insideAny(roots, real)))
      return { ok: false, reason: 'file.path changed while it was checked' };
    await fs.mkdir(dir, { recursive: true });
    const target = path.join(dir, safeBaseName(real));
    await fs.rm(target, { force: true });
    try {
      await fs.link(real, target);
      const linked = await fs.lstat(target);
      if (linked.ino !== opened.ino || linked.dev !== opened.dev) {
        await fs.rm(target, { force: true });
        return { ok: false, reason: 'file.path changed while it was checked' };
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
      // Another file system: copy the bytes of the inode that was checked, through its open handle.
      await pipeline(fh.createReadStream({ start: 0, autoClose: false }), createWriteStream(target, { mode: 0o600 }));
    }
    return { ok: true, path: target };
  } finally {
    await fh.close();
  }
}

async function insideAny(roots: readonly string[], file: string): Promise<boolean> {
  for (const root of roots) if (await isInside(root, file)) return true;
  return false;
}

function safeBaseName(file: string): string {
  return (
    path
      .basename(file)
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/^\.+/, '')
      .slice(-120) || 'input'
  );
}
