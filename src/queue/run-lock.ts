/**
 * One run of a job at a time across orchestrators. BullMQ's job lock covers one message: two messages of one job (a
 * resume queued by the sweep, a review decision, a message redelivered while its first run is still alive after its
 * lock expired under a frozen event loop) could run the job's graph twice at once, interleaving its checkpoints and
 * finishing it twice. The run holds a Redis key of its own, renewed while it runs and released when it ends; a run
 * that finds it held by another waits for it, from the queue.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { runLockKey } from './names.js';

/** Deletes or renews the key only while it is still this holder's: a lock that expired and was taken is not ours. */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface RunLock {
  /** Aborted when the lock was lost (not renewed in time and taken by another run): this run must stop. */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

/**
 * Takes the run lock of `jobId` for `ttlMs`, renewed every third of it; null when another run holds it. A renewal that
 * fails for a moment (Redis unreachable) is tried again at the next one; the run stops only when the key is another's.
 */
export async function takeRunLock(redis: Redis, prefix: string, jobId: string, ttlMs: number): Promise<RunLock | null> {
  const key = runLockKey(prefix, jobId);
  const value = `${process.pid}:${randomBytes(8).toString('hex')}`;
  if ((await redis.set(key, value, 'PX', ttlMs, 'NX')) !== 'OK') return null;
  const lost = new AbortController();
  const timer = setInterval(
    () => {
      redis
        .eval(RENEW, 1, key, value, String(ttlMs))
        .then((renewed) => {
          if (renewed === 0) {
            clearInterval(timer);
            lost.abort(new Error(`the run lock of job ${jobId} was taken by another run`));
          }
        })
        .catch(() => undefined);
    },
    Math.max(100, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  return {
    lost: lost.signal,
    async release() {
      clearInterval(timer);
      await redis.eval(RELEASE, 1, key, value).catch(() => undefined);
    },
  };
}
