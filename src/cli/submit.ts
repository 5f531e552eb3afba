/**
 * `submit <file…> [--wait] [--json]`: publishes JOB_CREATED for each file. Files outside INPUT_ROOTS are copied into
 * the upload folder first (the orchestrator reads nothing else). With --wait, a terminal shows one live line per job;
 * otherwise the final documents are printed in the order of the files.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Job, QueueEvents, type Queue } from 'bullmq';
import { ulid } from 'ulid';
import type { Config } from '../config.js';
import type { Instructions } from '../lib/instructions.js';
import { insideRoots } from '../service/job-service.js';
import { JobIdConflict, sourceConflict } from '../graph/runner.js';
import { newJobDocument } from '../lib/job-document.js';
import type { JobDocument, JobInput } from '../lib/types.js';
import { bullConnection } from '../queue/connection.js';
import { parseJobCreated } from '../queue/messages.js';
import { JOBS_QUEUE } from '../queue/names.js';
import type { JobProgress } from '../queue/orchestrator.js';
import { createProducer } from '../queue/producer.js';
import { decodeFailure } from '../queue/task-result.js';
import { fit, formatJob, progressLine, waitExitCode } from './format.js';

export interface SubmitOptions {
  files: string[];
  wait: boolean;
  json: boolean;
  user?: string;
  priority?: number;
  jobId?: string;
  instructions?: Instructions;
  profile?: string;
}

export async function submit(config: Config, redisUrl: string, opts: SubmitOptions): Promise<number> {
  const producer = createProducer({ redisUrl, prefix: config.queuePrefix });
  const inputs: JobInput[] = [];
  try {
    // Nobody consumes this prefix (another QUEUE_PREFIX, a service not started): say so now, not after a long wait.
    if ((await orchestrators(producer.queue)) === 0) {
      const where = `QUEUE_PREFIX=${config.queuePrefix} on ${redactUrl(redisUrl)}`;
      if (opts.wait)
        throw new NoOrchestratorError(
          `no orchestrator is consuming ${where}: start one (media-orchestrator start), set this terminal's ` +
            `QUEUE_PREFIX and REDIS_URL to the service's, or use its HTTP API with --url`,
        );
      process.stderr.write(`warning: no orchestrator is consuming ${where} yet; the jobs wait until one starts\n`);
    }
    for (const [i, file] of opts.files.entries()) {
      const abs = path.resolve(file);
      const jobId = opts.jobId && i === 0 ? opts.jobId : ulid();
      const input: JobInput = {
        jobId,
        file: { path: await stagedPath(config, abs, jobId), name: path.basename(abs) },
        user: opts.user ? { id: opts.user } : null,
        ...(opts.priority ? { priority: opts.priority } : {}),
        ...(opts.instructions && { instructions: opts.instructions }),
        ...(opts.profile && { profile: opts.profile }),
      };
      // Before anything is copied: a chosen id must not leave this file in another job's folder.
      if (opts.jobId && i === 0) await refuseReusedId(producer.queue, input);
      if (input.file.path !== fs.realpathSync(abs)) await stage(abs, input.file.path, jobId);
      inputs.push(input);
    }
  } catch (err) {
    await producer.close();
    throw err;
  }
  const events = opts.wait
    ? new QueueEvents(JOBS_QUEUE, { connection: bullConnection(redisUrl, 'worker'), prefix: config.queuePrefix })
    : null;
  try {
    await events?.waitUntilReady();
    for (const input of inputs) await producer.enqueueJob(input);
    if (!events) {
      for (const input of inputs) print(newJobDocument(input), opts.json);
      return 0;
    }
    const docs = await waitForAll(inputs, events, producer.queue, opts.json);
    for (const doc of docs) print(doc, opts.json);
    return waitExitCode(docs);
  } finally {
    await events?.close();
    await producer.close();
  }
}

function print(doc: JobDocument, json: boolean): void {
  process.stdout.write(json ? `${JSON.stringify(doc)}\n` : formatJob(doc));
}

/** The file's path as the orchestrator may read it: in place under an input root, else a copy in the upload folder. */
async function stagedPath(config: Config, file: string, jobId: string): Promise<string> {
  return (await insideRoots(config.inputRoots, file)) ?? path.join(config.uploadsDir, jobId, path.basename(file));
}

/**
 * Copies `file` to `target` in the job's upload folder. A folder that already holds a different file of that name is
 * another job's (a chosen id given again): never written over.
 */
async function stage(file: string, target: string, jobId: string): Promise<void> {
  if (fs.existsSync(target)) {
    if ((await sha256Of(target)) === (await sha256Of(file))) return;
    throw new JobIdConflict(jobId, `its upload folder holds another ${path.basename(file)}`);
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(file, target, fs.constants.COPYFILE_EXCL);
}

/** `submit --wait` would wait for ever: nothing consumes the jobs queue of this prefix. */
export class NoOrchestratorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoOrchestratorError';
  }
}

/**
 * How many workers consume the jobs queue (BullMQ names their Redis connections; CLIENT LIST finds them), or null
 * when the server does not say (CLIENT LIST disabled, as some managed Redis services do).
 */
async function orchestrators(queue: Queue): Promise<number | null> {
  try {
    return (await queue.getWorkers()).length;
  } catch {
    return null;
  }
}

/** A Redis URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.href;
  } catch {
    return '(REDIS_URL)';
  }
}

/** A JOB_CREATED message kept under this id (BullMQ keeps one per id and drops a second) for another file. */
async function refuseReusedId(queue: Queue, input: JobInput): Promise<void> {
  const existing = await Job.fromId(queue, input.jobId);
  const parsed = existing ? parseJobCreated(existing.data) : null;
  const why = parsed?.ok ? sourceConflict(parsed.input, input) : null;
  if (why) throw new JobIdConflict(input.jobId, why);
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

async function waitForAll(
  inputs: JobInput[],
  events: QueueEvents,
  queue: Queue,
  json: boolean,
): Promise<JobDocument[]> {
  // Live lines move the cursor up over what they drew: each must fit one row, and all of them the screen.
  const rows = process.stderr.rows ?? 24;
  const live = process.stderr.isTTY && !json && inputs.length < rows;
  const lines = new Map<string, string>(inputs.map((i) => [i.jobId, `${i.file.name}: queued`]));
  const draw = (first = false): void => {
    if (!live) return;
    const width = process.stderr.columns || 80;
    if (!first) process.stderr.write(`\x1b[${inputs.length}A`);
    for (const i of inputs) process.stderr.write(`\x1b[2K${fit(lines.get(i.jobId) ?? '', width - 1)}\n`);
  };
  draw(true);

  const pending = new Map<string, (doc: JobDocument) => void>();
  const results = inputs.map(
    (input) =>
      new Promise<JobDocument>((resolve) => {
        pending.set(input.jobId, resolve);
      }),
  );
  const finish = (input: JobInput, doc: JobDocument): void => {
    const done = pending.get(input.jobId);
    if (!done) return;
    pending.delete(input.jobId);
    lines.set(input.jobId, `${input.file.name}: ${doc.status}${doc.error ? ` (${doc.error.code})` : ''}`);
    draw();
    done(doc);
  };
  const failedMessage = (input: JobInput, reason: string): JobDocument => {
    const { code, message } = decodeFailure(reason);
    return { ...newJobDocument(input), status: 'failed', error: { code, message, step: null } };
  };
  const byId = new Map(inputs.map((i) => [i.jobId, i]));
  events.on('progress', ({ jobId, data }) => {
    const input = byId.get(jobId);
    const update = data as Partial<JobProgress> | null;
    if (!input || !update?.steps || typeof update.steps !== 'object') return;
    const line = progressLine(input.file.name ?? input.jobId, update.steps);
    if (!line) return;
    lines.set(jobId, line);
    draw();
  });
  events.on('completed', ({ jobId, returnvalue }) => {
    const input = byId.get(jobId);
    if (input) finish(input, (typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue) as JobDocument);
  });
  events.on('failed', ({ jobId, failedReason }) => {
    const input = byId.get(jobId);
    if (input) finish(input, failedMessage(input, failedReason));
  });
  // Jobs that finished before we listened (a repeated job id, a very fast job).
  for (const input of inputs) {
    // State first, then the job: a job read before it finished would lack its result.
    const state = await queue.getJobState(input.jobId);
    if (state !== 'completed' && state !== 'failed') continue;
    const job = await Job.fromId(queue, input.jobId);
    if (job && state === 'completed') finish(input, job.returnvalue as JobDocument);
    if (job && state === 'failed') finish(input, failedMessage(input, job.failedReason));
  }
  return Promise.all(results);
}
