/** What every route shares: the parts it works with, the error type and body, and bearer auth. */
import { timingSafeEqual } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { Workflow } from '../graph/workflow.js';
import type { ArtifactStore } from '../lib/artifacts.js';
import type { Logger } from '../lib/log.js';
import type { Producer } from '../queue/producer.js';
import type { Stores } from '../store/index.js';

export interface ApiParts {
  config: Config;
  log: Logger;
  /** The job store and checkpointer (openStores); closed with the parts. */
  stores: Stores;
  artifacts: ArtifactStore;
  producer: Producer;
  redis: Redis;
  taskQueues: Queue[];
  /** The steps GET /graph draws, plugin steps included; the built-in ones alone when absent. */
  workflow?: Workflow;
}

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function body(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

/** preHandler for write routes and admin pages: `Authorization: Bearer <API_TOKEN>` when a token is configured. */
/** Whether the request carries API_TOKEN (always true when no token is configured). */
export function hasToken(config: Config, req: FastifyRequest): boolean {
  if (!config.apiToken) return true;
  // The scheme is case-insensitive (RFC 9110): `bearer`, `Bearer` and `BEARER` are the same.
  const given = Buffer.from(/^bearer +(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '');
  const wanted = Buffer.from(config.apiToken);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

export function requireToken(config: Config) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const header = req.headers.authorization ?? '';
    if (!hasToken(config, req)) {
      throw new HttpError(
        401,
        'UNAUTHORIZED',
        header ? 'the bearer token is wrong' : 'this route needs Authorization: Bearer <token>',
      );
    }
    await Promise.resolve();
  };
}
