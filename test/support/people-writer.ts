/**
 * Records faces for jobs `w0`, `w1`, … of the store in DATA_DIR (created first), one job after another, for ever:
 * the process the people SIGKILL test kills in the middle of a transaction. Run with `node --import tsx`.
 */
import { loadConfig } from '../../src/config.js';
import { DESCRIPTOR_LENGTH } from '../../src/lib/people.js';
import { openJobStore } from '../../src/store/index.js';

const FACES = Number(process.env.FACES_PER_JOB ?? 40);
const store = await openJobStore(loadConfig({ DATA_DIR: process.env.DATA_DIR! }));
for (let j = 0; ; j++) {
  const jobId = `w${j}`;
  await store.createOrGet({ jobId, file: { path: `/media/${jobId}.jpg` } });
  const faces = Array.from({ length: FACES }, (_, index) => {
    const descriptor = new Float32Array(DESCRIPTOR_LENGTH);
    descriptor[(j * 7 + index) % DESCRIPTOR_LENGTH] = 1;
    return { index, box: { x: index, y: 0, width: 10, height: 10 }, score: 0.9, descriptor, crop: `face-${index}.jpg` };
  });
  await store.people.recordFaces(jobId, faces);
}
