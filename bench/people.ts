/**
 * Placing a new face among an owner's faces, at scale: `counts` synthetic faces (random unit descriptors of
 * DESCRIPTOR_LENGTH values, a person each) in one owner's scope, written straight into the faces table, then jobs of
 * one new face recorded through the store (recordFaces: the owner's descriptors read, the face placed by brute force,
 * the row written, in one transaction). Baseline in the same run: placeFaces alone over the same descriptors already
 * in memory as typed arrays, which is what the store's placement costs without reading them.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { loadConfig } from '../src/config.js';
import { DESCRIPTOR_LENGTH, descriptorBytes, placeFaces, type KnownFace } from '../src/lib/people.js';
import { openJobStore } from '../src/store/index.js';

type Row = (label: string, value: string) => void;

const ROUNDS = 5;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A random unit vector: what a face descriptor is. */
function randomDescriptor(): Float32Array {
  const d = new Float32Array(DESCRIPTOR_LENGTH);
  let norm = 0;
  for (let i = 0; i < d.length; i++) {
    d[i] = Math.random() - 0.5;
    norm += d[i]! * d[i]!;
  }
  norm = Math.sqrt(norm);
  for (let i = 0; i < d.length; i++) d[i]! /= norm;
  return d;
}

export async function benchPeople(work: string, counts: number[], row: Row): Promise<void> {
  for (const count of counts) await benchCount(work, count, row);
}

async function benchCount(work: string, count: number, row: Row): Promise<void> {
  const dir = path.join(work, `people-${count}`);
  fs.mkdirSync(dir, { recursive: true });
  const config = loadConfig({ DATA_DIR: dir });
  const store = await openJobStore(config);
  try {
    const known: KnownFace[] = [];
    const db = new Database(config.dbPath);
    const started = performance.now();
    db.transaction(() => {
      const person = db.prepare("INSERT INTO people (owner, name, created_at) VALUES ('', NULL, '')");
      const face = db.prepare(
        `INSERT INTO faces (job_id, idx, owner, person_id, score, box, crop, descriptor, created_at)
         VALUES (?, 0, '', ?, 0.9, '{}', 'face-0.jpg', ?, '')`,
      );
      for (let i = 0; i < count; i++) {
        const descriptor = randomDescriptor();
        const personId = Number(person.run().lastInsertRowid);
        face.run(`f${i}`, personId, descriptorBytes(descriptor));
        known.push({ personId, descriptor });
      }
    })();
    db.close();
    const label = count.toLocaleString('en');
    row(`${label} faces: writing them (one transaction)`, `${((performance.now() - started) / 1000).toFixed(1)} s`);

    const inMemory: number[] = [];
    const throughStore: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const descriptor = randomDescriptor();
      let t = performance.now();
      placeFaces(known, [descriptor]);
      inMemory.push(performance.now() - t);
      const jobId = `new-${round}`;
      await store.createOrGet({ jobId, file: { path: '/dev/null' } });
      t = performance.now();
      const recorded = await store.people.recordFaces(jobId, [
        { index: 0, box: { x: 0, y: 0, width: 10, height: 10 }, score: 0.9, descriptor, crop: 'face-0.jpg' },
      ]);
      throughStore.push(performance.now() - t);
      if (!recorded) throw new Error(`the face of ${jobId} was not recorded`);
    }
    row(`${label} faces: placing one by brute force in memory (baseline)`, ms(inMemory));
    row(`${label} faces: recording a job of one face (SQLite store)`, ms(throughStore));
    row(`${label} faces: ratio store / in memory`, (median(throughStore) / median(inMemory)).toFixed(1));
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function ms(xs: number[]): string {
  return `${median(xs).toFixed(1)} ms (median of ${xs.length}, ${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`;
}
