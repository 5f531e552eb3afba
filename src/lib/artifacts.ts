import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './files.js';
import type { ArtifactRef } from './types.js';

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A job's files under `<artifactsDir>/<jobId>/`, addressed by a plain name that can never leave that folder. */
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

  async write(jobId: string, name: string, data: Buffer | string): Promise<ArtifactRef> {
    await writeFileAtomic(this.path(jobId, name), data);
    return { name, url: this.url(jobId, name), bytes: Buffer.byteLength(data) };
  }

  /** Describes a file a tool already wrote in place (ffmpeg output). */
  async ref(jobId: string, name: string): Promise<ArtifactRef> {
    const { size } = await fs.stat(this.path(jobId, name));
    return { name, url: this.url(jobId, name), bytes: size };
  }

  async remove(jobId: string): Promise<void> {
    await fs.rm(this.dir(jobId), { recursive: true, force: true });
  }
}

function assertSafe(name: string): void {
  if (!SAFE_NAME.test(name) || name.includes('..')) throw new Error(`unsafe artifact name: ${JSON.stringify(name)}`);
}
