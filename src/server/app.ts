/**
 * Builds the Fastify app (no listening here: `startApi` owns the socket). Schema-first routes through the zod type
 * provider, one error handler that answers JSON with a code and never a stack, bearer auth for writes when API_TOKEN
 * is set, security headers, a rate limit on uploads, OpenAPI at /docs.
 */
import fastifyHelmet from '@fastify/helmet';
import fastifyMultipart from '@fastify/multipart';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyError } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { JobService, JobServiceError, type JobServiceErrorCode } from '../service/job-service.js';
import { body, HttpError, type ApiParts } from './http.js';
import { clientErrorHandler, requestGuards, wasCut } from './request-guards.js';
import { artifactRoutes } from './routes/artifacts.js';
import { eventRoutes } from './routes/events.js';
import { jobRoutes } from './routes/jobs.js';
import { peopleRoutes } from './routes/people.js';
import { systemRoutes } from './routes/system.js';
import { uiRoutes } from './routes/ui.js';
import { UploadStore } from './uploads.js';

/** The HTTP status of each way a job operation can be refused. */
const SERVICE_STATUS: Record<JobServiceErrorCode, number> = {
  NOT_FOUND: 404,
  CONFLICT: 409,
  INVALID_INPUT: 400,
  UNAVAILABLE: 503,
  TIMEOUT: 503,
};

export type App = Awaited<ReturnType<typeof buildApp>>;

/** JSON bodies, and the fields of a multipart upload (besides its one file). */
const BODY_LIMIT = 1024 * 1024;
const MULTIPART_LIMITS = { fields: 10, fieldBytes: 8 * 1024 };

export async function buildApp(parts: ApiParts) {
  const limits = parts.config.http;
  const app = Fastify({
    loggerInstance: parts.log.child({ component: 'api' }),
    // Per-request lines would drown the job logs; errors are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    // Job ids and artifact names are matched by the routes' own schemas.
    routerOptions: { maxParamLength: 300 },
    // X-Forwarded-For is believed only from proxies named in TRUST_PROXY; anyone else could write it.
    trustProxy: parts.config.trustProxy,
    // Node's own clocks: the head of a request, and the whole request (a ceiling far above a slow upload), looked at
    // every second. How fast a body must keep arriving is request-guards' pace.
    requestTimeout: limits.requestTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: 1000,
    },
    clientErrorHandler: clientErrorHandler(limits),
  });
  const guards = requestGuards(limits);
  app.addHook('onRequest', guards.onRequest);
  app.addHook('onSend', guards.onSend);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof HttpError) return reply.status(err.statusCode).send(body(err.code, err.message));
    if (err instanceof JobServiceError) {
      if (err.code === 'UNAVAILABLE') void reply.header('retry-after', '5');
      return reply.status(SERVICE_STATUS[err.code]).send(body(err.code, err.message));
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const detail = err.validation.map((v) => `${v.instancePath || err.validationContext || 'request'} ${v.message}`);
      return reply.status(400).send(body('INVALID_INPUT', detail.join('; ')));
    }
    // The connection was cut for its pace, or the client hung up: nobody is left to answer, and it is no bug of ours.
    if (wasCut(req.raw) || req.raw.socket.destroyed) {
      req.log.info({ reason: err.message }, 'request ended by its client or its pace');
      return reply.status(408).send(body('TIMEOUT', 'the request did not arrive'));
    }
    if (err.code === 'FST_INVALID_JSON_FIELD_ERROR')
      return reply.status(400).send(body('INVALID_INPUT', 'a multipart field declared as JSON is not valid JSON'));
    const status = err.statusCode ?? 500;
    // Name the limit that was hit: the file's size, the number of files, fields or parts, or the JSON body.
    const limits: Record<string, string> = {
      FST_REQ_FILE_TOO_LARGE: `the file is over the limit of ${parts.config.maxFileBytes} bytes (MAX_UPLOAD_BYTES)`,
      FST_FILES_LIMIT: 'send one file per request',
      FST_FIELDS_LIMIT: `a multipart request may have at most ${MULTIPART_LIMITS.fields} fields`,
      FST_PARTS_LIMIT: `a multipart request may have at most ${MULTIPART_LIMITS.fields + 1} parts`,
      FST_ERR_CTP_BODY_TOO_LARGE: `a JSON body may have at most ${BODY_LIMIT} bytes`,
    };
    if (status === 413 || limits[err.code] !== undefined) {
      return reply.status(413).send(body('PAYLOAD_TOO_LARGE', limits[err.code] ?? err.message));
    }
    if (status === 429) {
      const what = req.method === 'POST' ? 'uploads' : 'searches';
      return reply.status(429).send(body('RATE_LIMITED', `too many ${what}; try again later`));
    }
    if (status === 415) return reply.status(415).send(body('UNSUPPORTED_MEDIA_TYPE', err.message));
    if (status >= 400 && status < 500) return reply.status(status).send(body('BAD_REQUEST', err.message));
    req.log.error({ err }, 'request failed');
    return reply.status(500).send(body('INTERNAL', 'internal error'));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send(body('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)),
  );

  await app.register(fastifyHelmet, {
    // The dashboard and Swagger UI use inline styles and scripts of their own; nothing is loaded from elsewhere.
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'", "'unsafe-inline'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:', 'blob:'],
        connectSrc: ["'self'"],
        // Helmet's default asks browsers to fetch every subresource over HTTPS. On plain HTTP by any name but
        // localhost that left the dashboard, /docs and /admin/queues blank; a TLS proxy in front needs no upgrade.
        upgradeInsecureRequests: null,
      },
    },
  });
  await app.register(fastifyRateLimit, { global: false });
  await app.register(fastifyMultipart, {
    limits: {
      fileSize: parts.config.maxFileBytes,
      files: 1,
      fields: MULTIPART_LIMITS.fields,
      parts: MULTIPART_LIMITS.fields + 1,
      fieldSize: MULTIPART_LIMITS.fieldBytes,
    },
  });
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'media-orchestrator', version: '0.1.0', description: 'Media processing jobs' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  const typed = app.withTypeProvider<ZodTypeProvider>();
  const jobs = new JobService({
    config: parts.config,
    store: parts.stores.store,
    producer: parts.producer,
    redis: parts.redis,
    checkpointer: parts.stores.checkpointer,
    artifacts: parts.artifacts,
    log: parts.log,
  });
  const uploads = new UploadStore(parts.config.uploadsDir, parts.config.maxFileBytes);
  await typed.register(jobRoutes(parts, jobs, uploads));
  await typed.register(artifactRoutes(parts, jobs, uploads));
  await typed.register(eventRoutes(parts, jobs));
  await typed.register(peopleRoutes(parts));
  await typed.register(systemRoutes(parts));
  await app.register(uiRoutes(parts));
  return app;
}
