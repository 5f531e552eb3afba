/**
 * Redis connections for BullMQ. Workers and event listeners wait out Redis outages (maxRetriesPerRequest: null);
 * producers fail fast so an HTTP request or a CLI call gets an error instead of hanging.
 */
import type { ConnectionOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

function options(kind: 'worker' | 'producer'): RedisOptions {
  return kind === 'worker'
    ? { maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy: (times) => Math.min(times * 200, 2000) }
    : { maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: (times) => Math.min(times * 200, 2000) };
}

export function createRedis(url: string, kind: 'worker' | 'producer'): Redis {
  return new Redis(url, { ...options(kind), lazyConnect: false });
}

/** BullMQ connection options for a URL (BullMQ makes its own clients from these). */
export function bullConnection(url: string, kind: 'worker' | 'producer'): ConnectionOptions {
  const { retryStrategy, ...rest } = options(kind);
  return { url, ...rest, retryStrategy: (times: number) => retryStrategy?.(times) ?? null };
}

/** Pings Redis once; resolves false instead of throwing when nothing answers. */
export async function redisAnswers(url: string, timeoutMs = 1500): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
