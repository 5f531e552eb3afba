/**
 * Faces in pictures larger than the detector's eye. BlazeFace looks at a 256 x 256 copy of whatever it is given and
 * misses faces narrower than about 12 of those pixels: in a whole group photo, anyone beyond the front row. So the
 * picture is looked at twice: whole (the caller's detection, which also finds the objects), then in overlapping
 * tiles of TILE px cut from a sharper copy, where a face of 26 px is as large to the detector as a portrait's.
 * The boxes of both are merged: a face seen whole and in two tiles is one face.
 *
 * The tiles overlap by more than the smallest face the whole picture shows, so every face is either whole in some
 * tile or found in the whole picture; a face cut by a tile's inner edge is left to those.
 */
import type { FaceResult } from '@vladmandic/human';
import type { Face } from '../lib/types.js';

/** A rectangle from its top left corner: in pixels, or in fractions of the picture's width and height. */
export type Box = Face['box'];

/** Raw RGB pixels, 3 bytes a pixel, row after row. */
export interface Pixels {
  data: Buffer;
  width: number;
  height: number;
}

/** What the detector says of one face: its box in pixels of the picture it was given, the mesh's score and its own. */
export type Detected = Pick<FaceResult, 'box' | 'score' | 'boxScore'>;

export interface FindFacesOptions {
  /** The detection over the whole picture, in pixels of a copy `size` large. */
  whole: { faces: Detected[]; width: number; height: number };
  /** The sharpest copy at hand of the same picture, the tiles' source. */
  detail: Pixels;
  /** Faces in one tile. */
  detect: (tile: Pixels) => Promise<Detected[]>;
  /** Faces the mesh scores below this are left out. */
  minScore: number;
  /** Stops between tiles. */
  signal?: AbortSignal;
}

/** Longer side of the sharper copy the tiles are cut from: 2048 px makes a face of 26 px out of a 12 MP photo's 50. */
export const DETAIL_SIDE = 2048;
/** Side of a tile in pixels: twice what the detector looks at, so a face of about 26 px is still 13 px to it. */
export const TILE = 512;
/** Tiles overlap by a quarter: a face up to 128 px, the smallest a 2048 px picture shows whole, fits in one. */
const OVERLAP = TILE / 4;
/**
 * In a tile, the detector's own score must reach this too. Magnified, letters and a pencil's tip in a scanned page
 * passed the mesh (its scores 0.3 to 0.86) with detector scores of 0.20 to 0.37; the faces of a group photo's back
 * row scored 0.54 and more.
 */
const TILE_MIN_DETECTOR_SCORE = 0.5;
/** A tile's face closer than this to an edge it shares with another tile is cut: a neighbour holds it whole. */
const EDGE = 3;
/** Two boxes are one face when they overlap by this much (intersection over union)… */
const SAME_IOU = 0.3;
/** …or when the smaller lies mostly inside the larger (the same face found at two scales, or a part of it). */
const SAME_INSIDE = 0.6;
/** A box under this share of a whole-picture box it lies in is a part of that face, not a face of its own. */
const PART = 0.25;
/** At most this many faces a picture: a crowd's count is bounded, and so is the job document. */
export const MAX_FACES = 200;

/**
 * The faces of a picture, boxes in fractions of its width and height, left to right. The whole picture's detection
 * merged with what `detect` finds in each tile of `detail`.
 */
export async function findFaces(opts: FindFacesOptions): Promise<Face[]> {
  const { whole, detail, detect, minScore, signal } = opts;
  const scale = detail.width / whole.width;
  const wholeFaces = whole.faces.filter((f) => f.score >= minScore).map((f) => toFace(f, scale, 0, 0));
  const inTiles: Face[] = [];
  for (const tile of tilesOf(detail.width, detail.height)) {
    signal?.throwIfAborted();
    for (const f of await detect(cut(detail, tile))) {
      if (f.score < minScore || f.boxScore < TILE_MIN_DETECTOR_SCORE) continue;
      const face = toFace(f, 1, tile.x, tile.y);
      if (!cutByEdge(face.box, tile, detail)) inTiles.push(face);
    }
  }
  return merge(wholeFaces, inTiles).map((f) => ({
    score: Math.round(Math.min(1, Math.max(0, f.score)) * 1000) / 1000,
    box: {
      x: fraction(f.box.x, detail.width),
      y: fraction(f.box.y, detail.height),
      width: fraction(f.box.width, detail.width),
      height: fraction(f.box.height, detail.height),
    },
  }));
}

/** A detection as a Face in `detail`'s pixels: scaled from the copy it was found in, moved by its tile's corner. */
function toFace(f: Detected, scale: number, dx: number, dy: number): Face {
  const [x, y, width, height] = f.box;
  return {
    score: f.score,
    box: { x: x * scale + dx, y: y * scale + dy, width: width * scale, height: height * scale },
  };
}

function fraction(v: number, of: number): number {
  return Math.round(Math.min(1, Math.max(0, v / of)) * 10_000) / 10_000;
}

/**
 * Where the tiles of a picture lie: a grid of TILE squares overlapping by at least OVERLAP, the last row and column
 * flush with the picture's edges. None for a picture a single detection already sees at its best.
 */
export function tilesOf(width: number, height: number): Box[] {
  if (Math.max(width, height) <= TILE) return [];
  const starts = (length: number): number[] => {
    if (length <= TILE) return [0];
    const n = Math.ceil((length - TILE) / (TILE - OVERLAP)) + 1;
    const step = (length - TILE) / (n - 1);
    return Array.from({ length: n }, (_, i) => Math.round(i * step));
  };
  const tiles: Box[] = [];
  for (const y of starts(height))
    for (const x of starts(width))
      tiles.push({ x, y, width: Math.min(TILE, width - x), height: Math.min(TILE, height - y) });
  return tiles;
}

/** One tile's pixels, copied row by row. */
export function cut(picture: Pixels, tile: Box): Pixels {
  const data = Buffer.allocUnsafe(tile.width * tile.height * 3);
  const row = tile.width * 3;
  for (let y = 0; y < tile.height; y++) {
    const from = ((tile.y + y) * picture.width + tile.x) * 3;
    picture.data.copy(data, y * row, from, from + row);
  }
  return { data, width: tile.width, height: tile.height };
}

/** Whether a box (in the picture's pixels) touches one of `tile`'s edges that lies inside the picture. */
function cutByEdge(box: Box, tile: Box, picture: Pixels): boolean {
  return (
    (tile.x > 0 && box.x <= tile.x + EDGE) ||
    (tile.y > 0 && box.y <= tile.y + EDGE) ||
    (tile.x + tile.width < picture.width && box.x + box.width >= tile.x + tile.width - EDGE) ||
    (tile.y + tile.height < picture.height && box.y + box.height >= tile.y + tile.height - EDGE)
  );
}

/**
 * One box per face. The tiles' boxes first, each face's best-scored one (non-maximum suppression): they come from
 * sharper pixels. Then each box of the whole picture, by what it covers among those:
 * - nothing: a face too large for a tile, or one the tiles missed; it stays;
 * - only boxes much smaller than itself: parts of its face (an eye and a cheek in a tile of a portrait); it
 *   replaces them;
 * - a box of about its size: the same face, already there;
 * - several: faces too close together for the small copy, drawn as one box between them; it goes.
 * At most MAX_FACES, the best scored; left to right, then top to bottom.
 */
export function merge(whole: Face[], inTiles: Face[]): Face[] {
  const kept: Face[] = [];
  for (const face of [...inTiles].sort((a, b) => b.score - a.score))
    if (!kept.some((k) => sameFace(k.box, face.box))) kept.push(face);
  for (const face of [...whole].sort((a, b) => b.score - a.score)) {
    const covered = kept.filter((k) => sameFace(k.box, face.box));
    const parts = covered.filter((k) => area(k.box) < area(face.box) * PART);
    if (parts.length < covered.length) continue;
    for (const part of parts) kept.splice(kept.indexOf(part), 1);
    kept.push(face);
  }
  return kept
    .sort((a, b) => b.score - a.score)
    .slice(0, MAX_FACES)
    .sort((a, b) => a.box.x - b.box.x || a.box.y - b.box.y);
}

function area(b: Box): number {
  return b.width * b.height;
}

function sameFace(a: Box, b: Box): boolean {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return false;
  const inter = w * h;
  return inter / (area(a) + area(b) - inter) >= SAME_IOU || inter / Math.min(area(a), area(b)) >= SAME_INSIDE;
}
