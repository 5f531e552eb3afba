/**
 * /people: the people faces were placed in (store/people-store.ts), per owner (`user`; without it, the jobs that have
 * no user). Reads are open like job reads; naming and merging need the API token.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ArtifactStore } from '../../lib/artifacts.js';
import type { Person, PersonSummary, StoredFace } from '../../store/index.js';
import { MAX_PEOPLE_PAGE, MAX_PERSON_NAME } from '../../store/index.js';
import { type ApiParts, HttpError, requireToken } from '../http.js';
import { ErrorBody } from '../schemas.js';

const PersonIdParams = z.object({
  id: z.coerce
    .number()
    .int()
    .min(1)
    .max(2 ** 31 - 1),
});
const PeopleQuery = z.object({
  user: z.string().min(1).max(200).optional().describe("The owner's user id; absent: jobs created without a user"),
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
const RenameBody = z.strictObject({ name: z.string().trim().min(1).max(MAX_PERSON_NAME).nullable() });
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
  const found = async (id: number): Promise<Person> => {
    const person = await people.getPerson(id);
    if (!person) throw new HttpError(404, 'NOT_FOUND', `no person ${id}`);
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
          response: { 200: PersonDetail, ...errors },
        },
      },
      async (req) => detail(await found(req.params.id)),
    );

    app.patch(
      '/people/:id',
      {
        preHandler: auth,
        schema: {
          summary: 'Name a person (null clears the name)',
          params: PersonIdParams,
          body: RenameBody,
          response: { 200: PersonDetail, ...errors },
          security: [{ bearer: [] }],
        },
      },
      async (req) => {
        if (!(await people.renamePerson(req.params.id, req.body.name)))
          throw new HttpError(404, 'NOT_FOUND', `no person ${req.params.id}`);
        return detail(await found(req.params.id));
      },
    );

    app.post(
      '/people/:id/merge',
      {
        preHandler: auth,
        schema: {
          summary: 'Move every face of another person (`person`) to this one; the other person is removed',
          params: PersonIdParams,
          body: MergeBody,
          response: { 200: PersonDetail, 409: ErrorBody, ...errors },
          security: [{ bearer: [] }],
        },
      },
      async (req) => {
        const outcome = await people.mergePeople(req.params.id, req.body.person);
        if (outcome === 'missing')
          throw new HttpError(404, 'NOT_FOUND', `no persons ${req.params.id} and ${req.body.person} to merge`);
        if (outcome === 'other-owner') throw new HttpError(409, 'CONFLICT', 'the two people belong to different users');
        return detail(await found(req.params.id));
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
