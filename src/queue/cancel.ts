/**
 * Cancellation across processes: a key that outlives restarts (checked before a job runs) and a pub/sub message
 * that reaches the orchestrator running the job and the workers running its steps.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../lib/log.js';
import { createRedis } from './connection.js';
import { cancelChannel, cancelKey } from './names.js';

const REMEMBER_SECONDS = 7 * 24 * 3600;

export async function publishCancel(redis: Redis, prefix: string, jobId: string): Promise<void> {
  await redis.set(cancelKey(prefix, jobId), '1', 'EX', REMEMBER_SECONDS);
  await redis.publish(cancelChannel(prefix), jobId);
}

export async function isCancelled(redis: Redis, prefix: string, jobId: string): Promise<boolean> {
  return (await redis.exists(cancelKey(prefix, jobId))) === 1;
}

/** Calls `onCancel(jobId)` for every cancellation published; returns a function that unsubscribes. */
export async function subscribeCancels(
  redisUrl: string,
  prefix: string,
  log: Logger,
  onCancel: (jobId: string) => void,
): Promise<() => Promise<void>> {
  const sub = createRedis(redisUrl, 'worker');
  sub.on('error', (err) => log.warn({ err }, 'cancel subscription error'));
  sub.on('message', (_channel: string, jobId: string) => onCancel(jobId));
  await sub.subscribe(cancelChannel(prefix));
  return async () => {
    await sub.quit().catch(() => sub.disconnect());
  };
}
