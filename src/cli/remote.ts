/**
 * The command line through a running service's HTTP API, for a terminal that does not share the service's
 * QUEUE_PREFIX, DATA_DIR or machine: `--url` or MEDIA_ORCHESTRATOR_URL names the service (API_TOKEN, when set, is
 * sent as its bearer token). Without either, a service answering on 127.0.0.1:PORT is used when this terminal sets
 * none of the variables that would point the CLI at particular state (REDIS_URL, QUEUE_PREFIX, DATA_DIR,
 * DATABASE_URL): that is the case where talking to Redis and the job store directly would guess them.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { RemoteSettings } from '../config.js';
import type { Instructions } from '../lib/instructions.js';
import { TERMINAL_STATUSES, type JobDocument, type ReviewDecision, type StepStatus } from '../lib/types.js';
import { fit, formatJob, progressLine, reviewedLine, waitExitCode } from './format.js';

/**
 * With nothing on the port the probe is refused at once; this only bounds a listener that is slow to answer. A busy
 * service on two loaded cores took more than the 400 ms this was, and the command then used the terminal's own
 * (empty) store instead: "no job …" for a job that exists.
 */
const PROBE_TIMEOUT_MS = 3000;
const REQUEST_TIMEOUT_MS = 30_000;
const POLL_MS = 500;

/** The API could not be used: unreachable, or it answered something the command cannot use. */
export class RemoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RemoteError';
  }
}

export interface Remote {
  readonly base: string;
  getJob(id: string): Promise<JobDocument | null>;
  cancel(id: string): Promise<{ ok: boolean; message: string }>;
  /** POST /jobs/:id/retry, DELETE /jobs/:id: what the service answered, as a line for the terminal. */
  retry(id: string): Promise<{ ok: boolean; message: string }>;
  remove(id: string): Promise<{ ok: boolean; message: string }>;
  /** POST /jobs/:id/review. */
  review(id: string, decision: ReviewDecision): Promise<{ ok: boolean; message: string }>;
  upload(
    file: string,
    fields: { user?: string; priority?: number; instructions?: Instructions; profile?: string },
  ): Promise<JobDocument>;
}

/**
 * The service to talk to: `flag` (--url), else MEDIA_ORCHESTRATOR_URL (`none` turns the lookup off), else a service of
 * ours answering on 127.0.0.1:PORT when no state variable is set. Null: use Redis and the store directly.
 */
export async function findRemote(flag: string | undefined, settings: RemoteSettings): Promise<Remote | null> {
  const named = flag ?? settings.url;
  if (named === 'none') return null;
  if (named) return remote(parseBase(named), settings.token);
  if (settings.pointsAtState) return null;
  const local = `http://127.0.0.1:${settings.port}`;
  return (await isOurService(local)) ? remote(local, settings.token) : null;
}

function parseBase(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RemoteError(`--url / MEDIA_ORCHESTRATOR_URL is not a URL: ${JSON.stringify(raw.slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new RemoteError(`--url / MEDIA_ORCHESTRATOR_URL must be http:// or https://, not ${url.protocol}`);
  return url.href.replace(/\/+$/, '');
}

async function isOurService(base: string): Promise<boolean> {
  try {
    const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    const body = (await res.json()) as { service?: unknown };
    return res.ok && body.service === 'media-orchestrator';
  } catch {
    return false;
  }
}

function remote(base: string, token: string | undefined): Remote {
  const request = async (route: string, init: RequestInit = {}): Promise<Response> => {
    try {
      return await fetch(`${base}${route}`, {
        ...init,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...init.headers },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      const cause = (err as Error).cause;
      const why = cause instanceof Error ? cause.message : (err as Error).message;
      throw new RemoteError(`cannot reach the service at ${base}: ${why}`);
    }
  };
  const failure = async (res: Response): Promise<RemoteError> => {
    const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
    const why = body?.error ? `${body.error.code}: ${body.error.message}` : res.statusText;
    return new RemoteError(`${base} answered ${res.status}: ${why}`);
  };
  return {
    base,
    async getJob(id) {
      const res = await request(`/jobs/${encodeURIComponent(id)}`);
      if (res.status === 404) return null;
      if (!res.ok) throw await failure(res);
      return (await res.json()) as JobDocument;
    },
    async cancel(id) {
      const res = await request(`/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
      if (res.ok) return { ok: true, message: `job ${id}: cancelling` };
      if (res.status === 404) return { ok: false, message: `no job ${id}` };
      if (res.status === 409) return { ok: false, message: (await failure(res)).message };
      throw await failure(res);
    },
    async retry(id) {
      const res = await request(`/jobs/${encodeURIComponent(id)}/retry`, { method: 'POST' });
      if (res.ok) return { ok: true, message: `job ${id}: retrying its failed steps` };
      if (res.status === 404 || res.status === 409) return { ok: false, message: (await failure(res)).message };
      throw await failure(res);
    },
    async remove(id) {
      const res = await request(`/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
      if (res.ok) return { ok: true, message: `job ${id}: deleted` };
      if (res.status === 404 || res.status === 409) return { ok: false, message: (await failure(res)).message };
      throw await failure(res);
    },
    async review(id, decision) {
      const res = await request(`/jobs/${encodeURIComponent(id)}/review`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(decision),
      });
      if (res.ok) return { ok: true, message: reviewedLine(id, decision) };
      if (res.status === 404 || res.status === 409) return { ok: false, message: (await failure(res)).message };
      throw await failure(res);
    },
    async upload(file, fields) {
      const form = new FormData();
      if (fields.user) form.append('userId', fields.user);
      if (fields.priority) form.append('priority', String(fields.priority));
      if (fields.instructions) form.append('instructions', JSON.stringify(fields.instructions));
      if (fields.profile) form.append('profile', fields.profile);
      form.append('file', await fs.openAsBlob(file), path.basename(file));
      const res = await request('/jobs', { method: 'POST', body: form });
      if (res.status !== 202) throw await failure(res);
      return (await res.json()) as JobDocument;
    },
  };
}

/** `submit` through the API: uploads each file; with `wait`, follows each job to its end. Exit code as `submit`'s. */
export async function submitRemote(
  api: Remote,
  opts: {
    files: string[];
    wait: boolean;
    json: boolean;
    user?: string;
    priority?: number;
    instructions?: Instructions;
    profile?: string;
  },
): Promise<number> {
  const queued: JobDocument[] = [];
  for (const file of opts.files) queued.push(await api.upload(path.resolve(file), opts));
  const docs = opts.wait ? await follow(api, queued, opts.json) : queued;
  for (const doc of docs) process.stdout.write(opts.json ? `${JSON.stringify(doc)}\n` : formatJob(doc));
  return opts.wait ? waitExitCode(docs) : 0;
}

/**
 * Polls each job until it ends or stops for a review (which may take days: the wait is over, exit 3), with a live
 * line per job on a terminal (as `submit --wait` draws them).
 */
async function follow(api: Remote, jobs: JobDocument[], json: boolean): Promise<JobDocument[]> {
  const live = process.stderr.isTTY && !json && jobs.length < (process.stderr.rows ?? 24);
  const current = [...jobs];
  let drawn = false;
  const draw = (): void => {
    if (!live) return;
    const width = process.stderr.columns || 80;
    if (drawn) process.stderr.write(`\x1b[${current.length}A`);
    drawn = true;
    for (const doc of current) {
      const steps = Object.fromEntries(Object.entries(doc.steps).map(([s, r]) => [s, r?.status])) as Record<
        string,
        StepStatus
      >;
      const line = settled(doc)
        ? `${doc.file.name}: ${doc.status}${doc.error ? ` (${doc.error.code})` : ''}`
        : (progressLine(doc.file.name, steps) ?? `${doc.file.name}: ${doc.status}`);
      process.stderr.write(`\x1b[2K${fit(line, width - 1)}\n`);
    }
  };
  draw();
  while (current.some((d) => !settled(d))) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    for (const [i, doc] of current.entries()) {
      if (settled(doc)) continue;
      const now = await api.getJob(doc.id);
      if (!now) throw new RemoteError(`job ${doc.id} is gone from ${api.base} (deleted while waiting?)`);
      current[i] = now;
    }
    draw();
  }
  return current;
}

/** Nothing more will happen to the job without a person: it has ended, or it waits for a review. */
function settled(doc: JobDocument): boolean {
  return TERMINAL_STATUSES.includes(doc.status) || doc.status === 'awaiting_review';
}
