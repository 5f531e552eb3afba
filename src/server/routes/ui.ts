/** The dashboard (plain HTML and JS from src/server/public, Mermaid from node_modules: no CDN) and Bull Board. */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import { requireToken, type ApiParts } from '../http.js';

// The static files stay in src/ (tsc does not copy them): this module is three folders below the package root in
// src/ and in dist/ alike.
const PUBLIC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src', 'server', 'public');
const require = createRequire(import.meta.url);

const ASSETS: Record<string, { file: string; type: string }> = {
  'dashboard.js': { file: path.join(PUBLIC, 'dashboard.js'), type: 'text/javascript; charset=utf-8' },
  'dashboard.css': { file: path.join(PUBLIC, 'dashboard.css'), type: 'text/css; charset=utf-8' },
  'mermaid.min.js': { file: require.resolve('mermaid/dist/mermaid.min.js'), type: 'text/javascript; charset=utf-8' },
};

export function uiRoutes(parts: ApiParts) {
  return async (app: FastifyInstance): Promise<void> => {
    const index = fs.readFileSync(path.join(PUBLIC, 'index.html'), 'utf8');
    app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').send(index));
    app.get('/favicon.ico', { schema: { hide: true } }, async (_req, reply) => reply.status(204).send());
    app.get<{ Params: { name: string } }>('/assets/:name', { schema: { hide: true } }, async (req, reply) => {
      const asset = ASSETS[req.params.name];
      if (!asset) return reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'no such asset' } });
      return reply
        .type(asset.type)
        .header('cache-control', 'public, max-age=300')
        .send(fs.createReadStream(asset.file));
    });

    // Bull Board in a scope of its own: its routes bring JSON schemas, not zod ones, and need the token.
    await app.register(async (scope) => {
      scope.setValidatorCompiler(() => () => true);
      scope.setSerializerCompiler(() => (data) => JSON.stringify(data));
      scope.addHook('onRequest', requireToken(parts.config));
      const board = new FastifyAdapter();
      board.setBasePath('/admin/queues');
      createBullBoard({
        queues: [parts.producer.queue, ...parts.taskQueues].map((q) => new BullMQAdapter(q)),
        serverAdapter: board,
      });
      await scope.register(board.registerPlugin(), { prefix: '/admin/queues' });
    });
  };
}
