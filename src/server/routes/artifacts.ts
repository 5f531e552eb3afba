/** What a job made (its artifacts) and the original it was made from, with range requests for players. */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isInside } from '../../lib/files.js';
import type { JobService } from '../../service/job-service.js';
import { HttpError, type ApiParts } from '../http.js';
import { sendFileRange } from '../ranges.js';
import { ArtifactParams, ErrorBody, JobIdParams } from '../schemas.js';
import type { UploadStore } from '../uploads.js';

const CONTENT_TYPES: Record<string, string> = {
  '.webp': 'image/webp',
  '.jpg': 'image/jpeg',
  '.avif': 'image/avif',
  '.png': 'image/png',
  '.mp3': 'audio/mpeg',
  '.txt': 'text/plain; charset=utf-8',
  '.srt': 'application/x-subrip; charset=utf-8',
  '.vtt': 'text/vtt; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.mp4': 'video/mp4',
  '.m4s': 'video/iso.segment',
  '.m3u8': 'application/vnd.apple.mpegurl',
};

/** transcodeVideo's reason when the original plays in browsers as it is (see GET /jobs/:id/original). */
const ORIGINAL_PLAYS = 'no rendition required';

export function artifactRoutes(parts: ApiParts, jobs: JobService, uploads: UploadStore): FastifyPluginAsyncZod {
  const { artifacts } = parts;
  const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };
  const found = (id: string) => jobs.get(id);
  return async (app) => {
    app.get(
      '/jobs/:id/artifacts/:name',
      {
        schema: {
          summary: 'A file the job produced (thumbnail, text, audio, transcript .txt/.srt/.vtt/.json)',
          params: ArtifactParams,
          description: 'Answers range requests (206) so that players can seek.',
          response: { 200: z.any(), 204: z.null(), 206: z.any(), 416: z.any(), 503: ErrorBody, ...errors },
        },
      },
      async (req, reply) => {
        await found(req.params.id);
        let file: string;
        try {
          file = artifacts.path(req.params.id, req.params.name);
        } catch {
          throw new HttpError(404, 'NOT_FOUND', 'no such artifact');
        }
        // Resolve symlinks too: nothing outside the job's folder is ever served.
        const real = await fs.realpath(file).catch(() => null);
        if (!real || !(await isInside(artifacts.dir(req.params.id), real)))
          throw new HttpError(404, 'NOT_FOUND', 'no such artifact');
        const stat = await fs.stat(real);
        if (!stat.isFile()) throw new HttpError(404, 'NOT_FOUND', 'no such artifact');
        return sendFileRange(
          req,
          reply,
          real,
          stat.size,
          CONTENT_TYPES[path.extname(real)] ?? 'application/octet-stream',
        );
      },
    );

    app.get(
      '/jobs/:id/original',
      {
        schema: {
          summary: 'The uploaded video itself, when transcodeVideo found that it plays in browsers as it is',
          description:
            'Only for a video whose rendition was not required (H.264/AAC MP4 with faststart, no location ' +
            'tags); answers range requests (206).',
          params: JobIdParams,
          response: { 200: z.any(), 206: z.any(), 416: z.any(), ...errors },
        },
      },
      async (req, reply) => {
        const doc = await found(req.params.id);
        const step = doc.steps.transcodeVideo;
        if (step?.status !== 'skipped' || !step.reason?.startsWith(ORIGINAL_PLAYS))
          throw new HttpError(404, 'NOT_FOUND', 'this job has no original to play: see its rendition');
        const file = await uploads.original(doc.id);
        if (!file) throw new HttpError(404, 'NOT_FOUND', 'the original is not kept by this service');
        const stat = await fs.stat(file);
        return sendFileRange(req, reply, file, stat.size, 'video/mp4');
      },
    );
  };
}
