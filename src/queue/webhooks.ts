/**
 * Completion webhooks: a finished job with a notifyUrl gets its final document POSTed there, signed with an HMAC, on
 * a BullMQ queue of its own so delivery is retried with backoff and survives restarts. The job document's `webhook`
 * field says how delivery went.
 *
 * Signature: `X-Media-Orchestrator-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with the timestamp in
 * `X-Media-Orchestrator-Timestamp` (Unix seconds), so a receiver can refuse replays.
 */
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DelayedError, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Config } from '../config.js';
import type { Logger } from '../lib/log.js';
import type { WebhookDelivery } from '../lib/types.js';
import { ForbiddenAddressError, postTo } from '../lib/outbound.js';
import type { JobDocuments } from '../store/index.js';
import { bullConnection } from './connection.js';
import { ReceiverHosts, type HostOutcome } from './receiver-hosts.js';

export const WEBHOOKS_QUEUE = 'webhooks';

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * WEBHOOK_SECRET, else a key generated once and kept in DATA_DIR/webhook-secret (mode 600; `media-orchestrator
 * webhook-secret` prints it). Never the API token: a receiver that verifies signatures would then hold the key to
 * every write route.
 */
export function webhookSecret(config: Config): string {
  if (config.webhookSecret) return config.webhookSecret;
  const file = path.join(config.dataDir, 'webhook-secret');
  if (!fs.existsSync(file)) createKey(file);
  const key = fs.readFileSync(file, 'utf8').trim();
  // An empty or cut key would sign with (next to) nothing: refuse to start rather than send such signatures.
  if (!/^[0-9a-f]{64}$/.test(key))
    throw new Error(
      `${file} does not hold a webhook key (64 hex digits): remove it to generate one, or set WEBHOOK_SECRET`,
    );
  return key;
}

/**
 * Writes a new key to `file` unless another process does first. Processes on several machines may start at once on a
 * fresh shared DATA_DIR: the key is written whole to a file of this process's own, then linked into place (the link
 * fails if another process was first, and its key is kept), so no reader sees a half-written key. On a file system
 * without hard links (some SMB or FUSE mounts) it is written in place with O_EXCL instead.
 */
function createKey(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const key = randomBytes(32).toString('hex');
  const mine = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    fs.writeFileSync(mine, key, { mode: 0o600, flag: 'wx' });
    fs.linkSync(mine, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw err;
    try {
      fs.writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST') throw again;
    }
  } finally {
    fs.rmSync(mine, { force: true });
  }
}

export interface Webhooks {
  /** Schedules delivery of the job's final document to `url` (once per job: a repeated call is ignored). */
  enqueue(jobId: string, url: string, run?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhooks(
  config: Config,
  redisUrl: string,
  store: JobDocuments,
  log: Logger,
): Promise<Webhooks> {
  const secret = webhookSecret(config);
  const queue = new Queue(WEBHOOKS_QUEUE, {
    connection: bullConnection(redisUrl, 'worker'),
    prefix: config.queuePrefix,
  });
  queue.on('error', (err) => log.warn({ err }, 'webhook queue error'));

  const record = (jobId: string, delivery: WebhookDelivery): Promise<void> => store.setWebhook(jobId, delivery);

  const hosts = new ReceiverHosts({
    concurrency: config.webhookHostConcurrency,
    failures: config.webhookBreakerFailures,
    cooldownMs: config.webhookBreakerCooldownMs,
    timeoutMs: config.webhookTimeoutMs,
  });

  const worker = new Worker<{ jobId: string; url: string }>(
    WEBHOOKS_QUEUE,
    async (job, token) => {
      const { jobId, url } = job.data;
      const origin = originOf(url);
      const entry = hosts.enter(origin);
      if (!entry.go) {
        // Back to the queue until the host may be tried, holding no worker and spending none of the attempts.
        await job.moveToDelayed(Math.ceil(entry.until), token);
        // Only a note: the delivery is already back in the queue, whatever becomes of it.
        if (entry.why === 'open')
          await heldBack(jobId, origin, entry).catch((err: unknown) =>
            log.warn({ err, jobId }, 'could not note a held-back webhook'),
          );
        throw new DelayedError();
      }
      let result: Attempt = { outcome: 'neutral', error: 'the attempt did not finish', final: false };
      try {
        result = await tryDelivery(jobId, url, job.attemptsMade + 1);
      } finally {
        entry.done(result.outcome, result.error ?? undefined);
      }
      if (result.error === null) return;
      throw result.final ? new UnrecoverableError(result.error) : new Error(result.error);
    },
    { connection: bullConnection(redisUrl, 'worker'), prefix: config.queuePrefix, concurrency: 10 },
  );
  worker.on('error', (err) => log.warn({ err }, 'webhook worker error'));
  await worker.waitUntilReady();

  /** The job document says why its delivery waits: the host's circuit is open. */
  async function heldBack(
    jobId: string,
    origin: string,
    entry: { until: number; failures: number; lastError: string | null },
  ): Promise<void> {
    const current = (await store.get(jobId))?.webhook;
    if (current?.status !== 'pending') return;
    await record(jobId, {
      ...current,
      lastError:
        `held back: ${origin} failed ${entry.failures} times in a row (${entry.lastError ?? 'no answer'}); ` +
        `next try after ${new Date(entry.until).toISOString()}`,
    });
  }

  /** One delivery attempt, recorded in the job document; how it went, for the worker and the host's circuit. */
  async function tryDelivery(jobId: string, url: string, attempt: number): Promise<Attempt> {
    const doc = await store.get(jobId);
    if (!doc) return { outcome: 'neutral', error: `job ${jobId} no longer exists`, final: true };
    const { webhook: _delivery, ...final } = doc;
    const payload = JSON.stringify(final);
    const timestamp = Math.floor(Date.now() / 1000);
    let statusCode: number | null = null;
    try {
      const res = await postTo(
        url,
        payload,
        {
          'content-type': 'application/json',
          'user-agent': 'media-orchestrator',
          'x-media-orchestrator-job': jobId,
          'x-media-orchestrator-timestamp': String(timestamp),
          'x-media-orchestrator-signature': signWebhook(secret, timestamp, payload),
        },
        { timeoutMs: config.webhookTimeoutMs, allowPrivate: config.webhookAllowPrivate },
      );
      statusCode = res.status;
      if (res.status < 200 || res.status >= 300) throw new Error(`the receiver answered ${res.status}`);
    } catch (err) {
      // A receiver this service may not reach will not become reachable: no more attempts.
      const forbidden = err instanceof ForbiddenAddressError;
      const message =
        err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
          ? `no answer within ${config.webhookTimeoutMs} ms`
          : err instanceof Error
            ? err.message
            : String(err);
      await record(jobId, {
        url,
        status: attempt >= config.webhookAttempts || forbidden ? 'failed' : 'pending',
        attempts: attempt,
        lastStatusCode: statusCode,
        lastError: message,
        deliveredAt: null,
      });
      log.warn({ jobId, receiver: originOf(url), attempt, message }, 'webhook delivery failed');
      // No answer, 5xx or 429: the host is unwell, and its circuit counts it. Another answer (a 4xx) comes from a
      // host that works and refused this one delivery.
      const unwell = !forbidden && (statusCode === null || statusCode >= 500 || statusCode === 429);
      return { outcome: unwell ? 'failed' : forbidden ? 'neutral' : 'answered', error: message, final: forbidden };
    }
    await record(jobId, {
      url,
      status: 'delivered',
      attempts: attempt,
      lastStatusCode: statusCode,
      lastError: null,
      deliveredAt: new Date().toISOString(),
    });
    return { outcome: 'answered', error: null, final: false };
  }

  return {
    async enqueue(jobId, url, run = 0) {
      const existing = (await store.get(jobId))?.webhook;
      if (!existing)
        await record(jobId, {
          url,
          status: 'pending',
          attempts: 0,
          lastStatusCode: null,
          lastError: null,
          deliveredAt: null,
        });
      await queue.add(
        'deliver',
        { jobId, url },
        {
          jobId: `${jobId}-webhook-${run}`,
          attempts: config.webhookAttempts,
          backoff: { type: 'exponential', delay: config.retryBackoffMs },
          removeOnComplete: { age: 7 * 24 * 3600 },
          removeOnFail: { age: 7 * 24 * 3600 },
        },
      );
    },
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}

/** How one attempt went: for its host's circuit, its error (null: delivered), and whether to try again. */
interface Attempt {
  outcome: HostOutcome;
  error: string | null;
  final: boolean;
}

/** Where a URL points, without its path and query (which may hold tokens), for logs. */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(not a URL)';
  }
}
