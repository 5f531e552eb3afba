/**
 * /people: the people faces were placed in (store/people-store.ts), per owner (`user`; without it, the jobs that have
 * no user). Every route is scoped the same way: a person of another owner is not found (404), as one that does not
 * exist. Reads are open like job reads; naming, merging, detaching and deleting need the API token.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { MAX_FACES } from '../../ai/faces.js';
import type { ArtifactStore } from '../../lib/artifacts.js';
import type { JobFace, Person, PersonSummary, StoredFace } from '../../store/index.js';
import { MAX_PEOPLE_PAGE, MAX_PERSON_NAME } from '../../store/index.js';
import { type ApiParts, HttpError, requireToken } from '../http.js';
import { ErrorBody, JobIdParams } from '../schemas.js';

const Id = z.coerce
  .number()
  .int()
  .min(1)
  .max(2 ** 31 - 1);
const PersonIdParams = z.object({ id: Id });
const FaceParams = z.object({
  id: Id,
  jobId: JobIdParams.shape.id,
  index: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_FACES - 1)
    .describe("The face's place in the job's analysis.faces"),
});
const User = z.string().min(1).max(200).optional().describe("The owner's user id; absent: jobs created without a user");
const OwnerQuery = z.object({ user: User });
const PeopleQuery = OwnerQuery.extend({
  limit: z.coerce.number().int().min(1).max(MAX_PEOPLE_PAGE).default(100),
});
const Box = z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() });
const PersonSchema = z.object({
  id: z.number(),
  name: z.string().nullable(),
  faceCount: z.number(),
  cover: z.string().nullable().describe("URL of the crop of the person's best-scored face"),
  jobIds: z.array(z.string()),
});
const FaceSchema = z.object({
  jobId: z.string(),
  index: z.number().describe("The face's place in the job's analysis.faces"),
  box: Box.describe('In pixels of the upright original'),
  score: z.number(),
  crop: z.string().describe('URL of the face crop'),
});
const PersonDetail = PersonSchema.extend({ user: z.string().nullable(), faces: z.array(FaceSchema) });
const JobFaceSchema = FaceSchema.omit({ jobId: true }).extend({
  person: z.number().nullable().describe('The person the face is in; null when none (no descriptor, or deleted)'),
  described: z.boolean().describe('Whether the face keeps its descriptor (false once its person was deleted)'),
});
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const RenameBody = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1)
    .max(MAX_PERSON_NAME)
    .refine((n) => !CONTROL.test(n), 'a name has no control characters')
    .nullable(),
});
const MergeBody = z.strictObject({
  person: z
    .number()
    .int()
    .min(1)
    .max(2 ** 31 - 1),
});

export function peopleRoutes(parts: ApiParts): FastifyPluginAsyncZod {
  const { config, artifacts } = parts;
  const people = parts.stores.store.people;
  const auth = requireToken(config);
  const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };
  const shown = (p: PersonSummary) => summaryOf(p, artifacts);
  /** The person, when it is the owner's: `user` as the request gives it (absent: the shared scope). */
  const found = async (id: number, user: string | undefined): Promise<Person> => {
    const person = await people.getPerson(id);
    if (!person || person.owner !== (user ?? null)) throw new HttpError(404, 'NOT_FOUND', `no person ${id}`);
    return person;
  };
  const detail = (p: Person) => ({
    ...shown(p),
    user: p.owner,
    faces: p.faces.map((f) => faceOf(f, artifacts)),
  });

  return async (app) => {
    app.get(
      '/people',
      {
        schema: {
          summary: "An owner's people, most faces first",
          querystring: PeopleQuery,
          response: { 200: z.object({ people: z.array(PersonSchema) }), 400: ErrorBody },
        },
      },
      async (req) => ({ people: (await people.listPeople(req.query.user ?? null, req.query.limit)).map(shown) }),
    );

    app.get(
      '/people/:id',
      {
        schema: {
          summary: 'A person and its faces, with their jobs',
          params: PersonIdParams,
          querystring: OwnerQuery,
          response: { 200: PersonDetail, ...errors },
        },
      },
      async (req) => detail(await found(req.params.id, req.query.user)),
    );

    app.patch(
      '/people/:id',
      {
        preHandler: auth,
        schema: {
          summary: 'Name a person (null clears the name)',
          params: PersonIdParams,
          querystring: OwnerQuery,
          body: RenameBody,
          response: { 200: PersonDetail, ...errors },
          security: [{ bearer: [] }],
        },
      },
      async (req) => {
        const { id } = req.params;
        // A person's owner never changes: checked once, it holds for the write.
        await found(id, req.query.user);
        if (!(await people.renamePerson(id, req.body.name))) throw new HttpError(404, 'NOT_FOUND', `no person ${id}`);
        return detail(await found(id, req.query.user));
      },
    );

    app.delete(
      '/people/:id',
      {
        preHandler: auth,
        schema: {
          summary: 'Delete a person',
          description:
            'Its faces stay with their jobs (boxes, crops) but lose their descriptor and person: no face joins them again, so the person is not formed anew from them.',
          params: PersonIdParams,
          querystring: OwnerQuery,
          response: { 204: z.null(), ...errors },
          security: [{ bearer: [] }],
        },
      },
      async (req, reply) => {
        await found(req.params.id, req.query.user);
        if (!(await people.deletePerson(req.params.id)))
          throw new HttpError(404, 'NOT_FOUND', `no person ${req.params.id}`);
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/people/:id/faces/:jobId/:index/detach',
      {
        preHandler: auth,
        schema: {
          summary: 'Take a face out of a person',
          description:
            'The face is placed again by the rule, without this person: it joins the nearest other person within the distance (none holding another face of its picture), or starts a person of its own. A person left without faces is removed (`left` is then null).',
          params: FaceParams,
          querystring: OwnerQuery,
          response: {
            200: z.object({ person: PersonDetail.describe('Where the face is now'), left: PersonDetail.nullable() }),
            ...errors,
          },
          security: [{ bearer: [] }],
        },
      },
      async (req) => {
        const { id, jobId, index } = req.params;
        await found(id, req.query.user);
        const moved = await people.detachFace(id, jobId, index);
        if (moved === 'missing') throw new HttpError(404, 'NOT_FOUND', `person ${id} has no face ${jobId}/${index}`);
        return {
          person: detail(await found(moved.personId, req.query.user)),
          left: moved.left === 'kept' ? detail(await found(id, req.query.user)) : null,
        };
      },
    );

    app.get(
      '/jobs/:id/faces',
      {
        schema: {
          summary: "A job's recorded faces and their people",
          params: JobIdParams,
          response: { 200: z.object({ faces: z.array(JobFaceSchema) }), ...errors },
        },
      },
      async (req) => {
        if (!(await parts.stores.store.get(req.params.id)))
          throw new HttpError(404, 'NOT_FOUND', `no job ${req.params.id}`);
        return { faces: (await people.jobFaces(req.params.id)).map((f) => jobFaceOf(f, artifacts)) };
      },
    );

    app.post(
      '/people/:id/merge',
      {
        preHandler: auth,
        schema: {
          summary: 'Move every face of another person (`person`) to this one; the other person is removed',
          description: "Both must be the owner's (`user`): a person of another owner is not found.",
          params: PersonIdParams,
          querystring: OwnerQuery,
          body: MergeBody,
          response: { 200: PersonDetail, ...errors },
          security: [{ bearer: [] }],
        },
      },
      async (req) => {
        await found(req.params.id, req.query.user);
        // 'other-owner': the other person is not the owner's, so it is not found, as elsewhere.
        if ((await people.mergePeople(req.params.id, req.body.person)) !== 'merged')
          throw new HttpError(404, 'NOT_FOUND', `no persons ${req.params.id} and ${req.body.person} to merge`);
        return detail(await found(req.params.id, req.query.user));
      },
    );
  };
}

function summaryOf(p: PersonSummary, artifacts: ArtifactStore) {
  return {
    id: p.id,
    name: p.name,
    faceCount: p.faceCount,
    cover: p.cover ? artifacts.url(p.cover.jobId, p.cover.crop) : null,
    jobIds: p.jobIds,
  };
}

function faceOf(f: StoredFace, artifacts: ArtifactStore) {
  return { jobId: f.jobId, index: f.index, box: f.box, score: f.score, crop: artifacts.url(f.jobId, f.crop) };
}

function jobFaceOf(f: JobFace, artifacts: ArtifactStore) {
  const { jobId: _jobId, ...face } = faceOf(f, artifacts);
  return { ...face, person: f.personId, described: f.described };
}
