import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './files.js';
import type { ArtifactRef } from './types.js';

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** The folder of saveProgress: a name no artifact can have, so never listed or served. */
const PROGRESS = '.progress';
/** One execution's staging folder (StagedArtifacts): hidden, never an artifact's name. */
const STAGING_PREFIX = '.run-';
const STAGING = /^\.run-[0-9a-f]{12}$/;

/**
 * A job's files under `<artifactsDir>/<jobId>/`, addressed by a plain name that can never leave that folder. Steps
 * read and write artifacts only through this class (a tool that writes a file gets a path to write to from `produce`,
 * one that reads gets one from `localPath`), so a store on objects instead of a shared folder is a change here, not
 * in every step.
 */
export class ArtifactStore {
  constructor(readonly root: string) {}

  dir(jobId: string): string {
    assertSafe(jobId);
    return path.join(this.root, jobId);
  }

  path(jobId: string, name: string): string {
    assertSafe(name);
    return path.join(this.dir(jobId), name);
  }

  url(jobId: string, name: string): string {
    return `/jobs/${encodeURIComponent(jobId)}/artifacts/${encodeURIComponent(name)}`;
  }

  /** Where `write` and `produce` put an artifact: the artifact itself here; a held-back copy in StagedArtifacts. */
  protected target(jobId: string, name: string): string {
    return this.path(jobId, name);
  }

  async write(jobId: string, name: string, data: Buffer | string): Promise<ArtifactRef> {
    await writeFileAtomic(this.target(jobId, name), data);
    return { name, url: this.url(jobId, name), bytes: Buffer.byteLength(data) };
  }

  /**
   * An artifact written by a tool (ffmpeg): `tool` writes to the path it is given; the file becomes the artifact only
   * when `tool` succeeds (a failed or stopped run leaves no half-written artifact behind).
   */
  async produce(jobId: string, name: string, tool: (file: string) => Promise<void>): Promise<ArtifactRef> {
    const target = this.target(jobId, name);
    const tmp = `${target}.part${path.extname(name)}`;
    await fs.mkdir(path.dirname(target), { recursive: true });
    try {
      await tool(tmp);
      await fs.rename(tmp, target);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    const { size } = await fs.stat(target);
    return { name, url: this.url(jobId, name), bytes: size };
  }

  /** An artifact's text; null when the job has no such artifact. */
  async readText(jobId: string, name: string): Promise<string | null> {
    try {
      return await fs.readFile(this.path(jobId, name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** The first `maxBytes` of an artifact as text (a character cut at the end is dropped); null when it is missing. */
  async readHead(jobId: string, name: string, maxBytes: number): Promise<string | null> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.path(jobId, name), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const buffer = Buffer.alloc(maxBytes);
      const { bytesRead } = await handle.read(buffer, 0, maxBytes, 0);
      return new TextDecoder('utf-8', { fatal: false }).decode(buffer.subarray(0, bytesRead)).replace(/\uFFFD$/, '');
    } finally {
      await handle.close();
    }
  }

  /**
   * The job's artifacts, by name: finished files only (a tool's `.part` file and anything that is not a plain file
   * with a safe name are left out); empty when the job has none.
   */
  async list(jobId: string): Promise<ArtifactRef[]> {
    let entries: Dirent[];
    try {
      entries = await fs.readdir(this.dir(jobId), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const refs: ArtifactRef[] = [];
    for (const entry of entries) {
      if (!entry.isFile() || !SAFE_NAME.test(entry.name) || entry.name.includes('.part')) continue;
      const { size } = await fs.stat(this.path(jobId, entry.name)).catch(() => ({ size: -1 }));
      if (size >= 0) refs.push({ name: entry.name, url: this.url(jobId, entry.name), bytes: size });
    }
    return refs.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A path a tool can read the artifact from (here, the file itself). */
  localPath(jobId: string, name: string): Promise<string> {
    return Promise.resolve(this.path(jobId, name));
  }

  /**
   * Work a step saved part way (pages read by OCR), kept apart from the artifacts in the job's hidden `.progress`
   * folder and written at once, not staged: a step stopped or killed half way finds it on its next attempt.
   */
  async saveProgress(jobId: string, name: string, data: string): Promise<void> {
    assertSafe(name);
    await writeFileAtomic(path.join(this.dir(jobId), PROGRESS, name), data);
  }

  /** Work saved by saveProgress; null when there is none. */
  async readProgress(jobId: string, name: string): Promise<string | null> {
    assertSafe(name);
    try {
      return await fs.readFile(path.join(this.dir(jobId), PROGRESS, name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Forgets the work a step saved part way, once its result holds it. */
  async clearProgress(jobId: string): Promise<void> {
    await fs.rm(path.join(this.dir(jobId), PROGRESS), { recursive: true, force: true });
  }

  /**
   * Deletes the staging folders (see StagedArtifacts) that executions of the job's steps left behind: a process
   * killed during a step cannot discard its own. Only for a job that has ended, when no execution of it is left to
   * write there; what a stopped execution still writes afterwards fails, as after `discard`.
   */
  async removeStaging(jobId: string): Promise<number> {
    const entries = await fs.readdir(this.dir(jobId), { withFileTypes: true }).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    });
    const left = entries.filter((e) => e.isDirectory() && STAGING.test(e.name));
    for (const e of left) await fs.rm(path.join(this.dir(jobId), e.name), { recursive: true, force: true });
    return left.length;
  }

  async remove(jobId: string): Promise<void> {
    await fs.rm(this.dir(jobId), { recursive: true, force: true });
  }

  /** The store one execution of a step writes through: see StagedArtifacts. */
  stage(jobId: string): StagedArtifacts {
    return new StagedArtifacts(this.root, jobId);
  }
}

/**
 * What one execution of a step writes, held back in a hidden folder of the job (`.run-…`: not a file, not a name an
 * artifact can have, so never listed or served) until the step has succeeded: `commit` moves it into place,
 * `discard` (a failure, a timeout, a cancellation) deletes it. A step stopped by its time limit may still be running;
 * whatever it writes after `discard` fails and is deleted, so a failed step leaves no artifact, whole or partial.
 * Reads see the job's artifacts, as with the store itself.
 */
export class StagedArtifacts extends ArtifactStore {
  private readonly folder: string;
  private readonly names = new Set<string>();
  private discarded = false;

  constructor(
    root: string,
    private readonly jobId: string,
  ) {
    super(root);
    this.folder = path.join(this.dir(jobId), `${STAGING_PREFIX}${randomBytes(6).toString('hex')}`);
  }

  protected override target(jobId: string, name: string): string {
    if (jobId !== this.jobId) throw new Error(`a step of job ${this.jobId} wrote an artifact of job ${jobId}`);
    this.assertOpen();
    return path.join(this.folder, path.basename(this.path(jobId, name)));
  }

  override async write(jobId: string, name: string, data: Buffer | string): Promise<ArtifactRef> {
    const ref = await super.write(jobId, name, data);
    await this.afterWrite(name);
    return ref;
  }

  override async produce(jobId: string, name: string, tool: (file: string) => Promise<void>): Promise<ArtifactRef> {
    const ref = await super.produce(jobId, name, tool);
    await this.afterWrite(name);
    return ref;
  }

  /** The step succeeded: its artifacts replace any of the same name (an earlier attempt's). */
  async commit(): Promise<void> {
    this.assertOpen();
    for (const name of this.names) await fs.rename(path.join(this.folder, name), this.path(this.jobId, name));
    await fs.rm(this.folder, { recursive: true, force: true });
  }

  /** The step failed or was stopped: nothing it wrote, or writes from now on, becomes an artifact. */
  async discard(): Promise<void> {
    this.discarded = true;
    await fs.rm(this.folder, { recursive: true, force: true });
  }

  private assertOpen(): void {
    if (this.discarded) throw new Error('the step has ended: its artifacts were discarded');
  }

  /** A write that was under way when the step was discarded lands after the folder was deleted: delete it again. */
  private async afterWrite(name: string): Promise<void> {
    if (!this.discarded) {
      this.names.add(name);
      return;
    }
    await fs.rm(this.folder, { recursive: true, force: true });
    this.assertOpen();
  }
}

function assertSafe(name: string): void {
  if (!SAFE_NAME.test(name) || name.includes('..')) throw new Error(`unsafe artifact name: ${JSON.stringify(name)}`);
}
