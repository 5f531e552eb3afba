// The dashboard: plain browser JavaScript against the public API, no build step and nothing from the internet.
'use strict';

const $ = (sel) => document.querySelector(sel);
const TERMINAL = ['completed', 'completed_with_errors', 'failed', 'cancelled', 'rejected'];
let listTimer = null;
let events = null;
let graphSource = null;

const tokenInput = $('#token');
tokenInput.value = localStorage.getItem('mo-token') || '';
tokenInput.addEventListener('change', () => localStorage.setItem('mo-token', tokenInput.value));
const authHeaders = () => (tokenInput.value ? { authorization: `Bearer ${tokenInput.value}` } : {});

function text(el, value) {
  el.textContent = value == null ? '' : String(value);
  return el;
}

function cell(row, value, cls) {
  const td = document.createElement('td');
  text(td, value);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  const body = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`);
  return body;
}

// ---- list ------------------------------------------------------------------------------------------------------

/** The list's latest request: an older answer that arrives after a newer one is dropped, and polls do not pile up. */
let listRequest = 0;
let listBusy = false;

let searchedAt = 0;

async function refreshList(fromTimer = false) {
  if (fromTimer && listBusy) return;
  // A search is polled every 5 s, not 1.5 s: its results change only when jobs finish, and it costs more.
  const searching = Boolean($('#search').value.trim());
  if (fromTimer && searching && Date.now() - searchedAt < 5000) return;
  if (searching) searchedAt = Date.now();
  const mine = ++listRequest;
  listBusy = true;
  try {
    await loadList(mine);
  } finally {
    if (mine === listRequest) listBusy = false;
  }
}

async function loadList(mine) {
  const params = new URLSearchParams({ limit: '100' });
  if ($('#filter-status').value) params.set('status', $('#filter-status').value);
  if ($('#filter-type').value) params.set('fileType', $('#filter-type').value);
  const q = $('#search').value.trim();
  if (q) params.set('q', q);
  const [{ jobs, matches }, summary] = await Promise.all([api(`/jobs?${params}`), api('/summary')]);
  if (mine !== listRequest) return;
  const snippets = new Map((matches || []).map((m) => [m.id, m.snippet]));
  showCounts(summary.byStatus);
  const body = $('#jobs tbody');
  body.replaceChildren();
  for (const job of jobs) {
    const row = document.createElement('tr');
    row.className = 'job';
    row.dataset.id = job.id;
    row.addEventListener('click', () => (location.hash = `#/jobs/${job.id}`));
    const thumb = cell(row, '', 'thumb');
    const smallest = (job.results.thumbnails || [])[0] || listWaveform(job);
    if (smallest) {
      const img = document.createElement('img');
      img.src = smallest.url;
      img.alt = '';
      img.loading = 'lazy';
      thumb.appendChild(img);
    }
    const name = cell(row, job.file.name, 'name');
    if (snippets.has(job.id)) name.appendChild(snippet(snippets.get(job.id)));
    cell(row, job.fileType || '–');
    const status = cell(row, job.status, `status ${job.status}`);
    if (job.error) {
      const code = text(document.createElement('span'), ` · ${job.error.code}`);
      code.className = 'code';
      code.title = job.error.message;
      status.appendChild(code);
    }
    cell(row, stepCount(job), 'steps');
    cell(row, took(job), 'took');
    cell(row, new Date(job.createdAt).toLocaleString());
    body.appendChild(row);
  }
}

/** A search result's matching text, matched words in <mark>: built from text nodes, never parsed as HTML. */
function snippet(parts) {
  const p = document.createElement('p');
  p.className = 'snippet';
  for (const part of parts) {
    if (part.match) p.appendChild(text(document.createElement('mark'), part.text));
    else p.appendChild(document.createTextNode(part.text));
  }
  return p;
}

/**
 * "done/ran": the steps that succeeded out of those that ran or failed. Steps skipped (a video with no audio has
 * nothing to transcribe, a disabled step) are not work left undone: they are counted apart.
 */
function stepCount(job) {
  const steps = Object.values(job.steps);
  const skipped = steps.filter((s) => s.status === 'skipped').length;
  const ok = steps.filter((s) => s.status === 'succeeded').length;
  const count = `${ok}/${steps.length - skipped}`;
  return skipped > 0 ? `${count} · ${skipped} skipped` : count;
}

/** Wall time from creation to the end, for a finished job: "1.4 s", "2 min 5 s". */
function took(job) {
  if (!job.finishedAt) return '';
  const s = (Date.parse(job.finishedAt) - Date.parse(job.createdAt)) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

const STATUS_ORDER = [
  'queued',
  'running',
  'awaiting_review',
  'completed',
  'completed_with_errors',
  'failed',
  'cancelled',
  'rejected',
];

/** "3 running · 12 completed · 1 failed": every status with jobs, in the order a job goes through them. */
function showCounts(byStatus) {
  const parts = STATUS_ORDER.filter((s) => byStatus[s] > 0).map((s) => {
    const span = text(document.createElement('span'), `${byStatus[s]} ${s.replaceAll('_', ' ')}`);
    span.className = `status ${s}`;
    span.dataset.status = s;
    return span;
  });
  const out = $('#counts');
  out.replaceChildren();
  parts.forEach((p, i) => {
    if (i > 0) out.append(' · ');
    out.append(p);
  });
}

/** Shows one of the pages (the others hidden); leaving the list stops its polling, leaving a job its events. */
function showView(id) {
  for (const view of ['#list-view', '#job-view', '#people-view', '#person-view']) $(view).hidden = view !== id;
  if (id !== '#list-view') clearInterval(listTimer);
  if (events) events.close();
  events = null;
}

function showList() {
  showView('#list-view');
  refreshList().catch(console.error);
  clearInterval(listTimer);
  listTimer = setInterval(() => refreshList(true).catch(console.error), 1500);
}

for (const id of ['#filter-status', '#filter-type']) $(id).addEventListener('change', () => refreshList());
let searchTimer = null;
$('#search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => refreshList().catch(console.error), 250);
});

// ---- upload ----------------------------------------------------------------------------------------------------

/** One line per file of the latest drop or pick, each updated in place as its upload goes. */
async function uploadFiles(files) {
  const status = $('#upload-status');
  const lines = files.map((file) => text(document.createElement('li'), `${file.name}: waiting`));
  status.replaceChildren(...lines);
  for (const [i, file] of files.entries()) {
    text(lines[i], `${file.name}: uploading…`);
    const form = new FormData();
    form.append('file', file, file.name);
    try {
      const job = await api('/jobs', { method: 'POST', body: form });
      text(lines[i], `${file.name}: job ${job.id} queued`);
    } catch (err) {
      text(lines[i], `${file.name}: ${err.message}`);
      lines[i].className = 'status failed';
    }
  }
  refreshList().catch(console.error);
}

const drop = $('#drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  uploadFiles([...e.dataTransfer.files]);
});
$('#files').addEventListener('change', (e) => uploadFiles([...e.target.files]));

// ---- one job ---------------------------------------------------------------------------------------------------

async function drawGraph(job) {
  graphSource = graphSource || (await (await fetch('/graph')).text());
  // The steps are the graph's own nodes (`name(name)` lines), less finalize: no second list to keep in step.
  const steps = [...graphSource.matchAll(/^\s*(\w+)\(\1\)$/gm)].map((m) => m[1]).filter((n) => n !== 'finalize');
  const lines = [graphSource.replace(/classDef default[^\n]*\n/, '')];
  lines.push('classDef succeeded fill:#c8efd4,stroke:#1b7f3b;');
  lines.push('classDef failed fill:#f8d0cc,stroke:#b3261e;');
  lines.push('classDef running fill:#d6dcff,stroke:#3a47c9;');
  lines.push('classDef skipped fill:#eeeeee,stroke:#999,color:#777;');
  lines.push('classDef pending fill:#ffffff,stroke:#bbb;');
  lines.push('classDef unused fill:#f6f6f6,stroke:#d0d0d0,stroke-dasharray:4 3,color:#b0b0b0;');
  for (const step of steps) lines.push(`class ${step} ${graphStatus(job, step)};`);
  if (TERMINAL.includes(job.status)) lines.push(`class finalize ${job.status === 'failed' ? 'failed' : 'succeeded'};`);
  const { svg } = await mermaid.render(`g${Date.now()}`, lines.join('\n'));
  const holder = $('#graph');
  holder.innerHTML = svg;
  holder.dataset.status = job.status;
  holder.dataset.job = job.id;
  for (const step of steps) {
    const node = holder.querySelector(`[id*="flowchart-${step}-"]`);
    if (node) node.setAttribute('data-step-status', graphStatus(job, step));
  }
}

/**
 * A step's colour in the graph: its record's status; once the job has ended, a step with no record never applied
 * (another type's branch, or after a failure) and is greyed out rather than left white like a pending one.
 */
function graphStatus(job, step) {
  if (job.steps[step]) return job.steps[step].status;
  return TERMINAL.includes(job.status) || job.status === 'awaiting_review' ? 'unused' : 'pending';
}

/** "1:05", "1:02:07": a time in a recording. */
function clock(sec) {
  const s = Math.max(0, Math.floor(sec));
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function el(tag, value, cls) {
  const e = text(document.createElement(tag), value);
  if (cls) e.className = cls;
  return e;
}

/** A link to one of the job's own files (URLs the API gave, always under /jobs/). */
function fileLink(url, label) {
  const a = el('a', label);
  if (typeof url === 'string' && url.startsWith('/jobs/')) a.href = url;
  return a;
}

/**
 * The steps as a table with a timeline: one bar per step from its start to its end, on one time axis from the first
 * start to the last end, so the branches that ran side by side show as bars that overlap.
 */
function renderSteps(job) {
  const body = $('#steps tbody');
  body.replaceChildren();
  const entries = Object.entries(job.steps);
  const times = entries
    .map(([, s]) => [Date.parse(s.startedAt || ''), Date.parse(s.finishedAt || '') || Date.now()])
    .filter(([a]) => !Number.isNaN(a));
  const t0 = Math.min(...times.map(([a]) => a));
  const span = Math.max(1, Math.max(...times.map(([, b]) => b)) - t0);
  for (const [name, step] of entries) {
    const row = document.createElement('tr');
    row.dataset.step = name;
    cell(row, name);
    cell(row, step.status, `status ${step.status}`);
    cell(row, step.attempts || '', 'tries');
    cell(row, step.durationMs != null ? `${step.durationMs} ms` : '');
    const lane = cell(row, '', 'timeline');
    const start = Date.parse(step.startedAt || '');
    if (!Number.isNaN(start)) {
      const end = Date.parse(step.finishedAt || '') || Date.now();
      const bar = el('span', '', `bar ${step.status}`);
      bar.style.left = `${(((start - t0) / span) * 100).toFixed(2)}%`;
      bar.style.width = `${Math.max(0.8, ((end - start) / span) * 100).toFixed(2)}%`;
      bar.title = `${name}: +${start - t0} ms, ${end - start} ms`;
      lane.appendChild(bar);
    }
    const progress = step.status === 'running' && step.progress != null ? `${step.progress} %` : '';
    cell(row, step.error ? `${step.error.code}: ${step.error.message}` : step.reason || progress);
    body.appendChild(row);
  }
}

/** An audio job's picture in the list: its waveform PNG (a video's poster frame comes first). */
function listWaveform(job) {
  const w = job.results.waveform;
  return w && typeof w.pngUrl === 'string' && w.pngUrl.startsWith('/jobs/') ? { url: w.pngUrl } : null;
}

/** waveform.json by URL: fetched once, not on every re-render of the job page. */
const waveforms = new Map();
function waveformData(url) {
  if (!waveforms.has(url)) {
    const loading = fetch(url, { headers: authHeaders() }).then((res) => {
      if (!res.ok) throw new Error(`waveform: ${res.status}`);
      return res.json();
    });
    loading.catch(() => waveforms.delete(url));
    waveforms.set(url, loading);
  }
  return waveforms.get(url);
}

/**
 * The waveform under the job's player (audio.mp3: an audio file's copy, a video's sound), drawn from waveform.json
 * (audiowaveform min/max pairs): the part played so far darker; a click seeks the player there.
 */
async function renderWaveform(job) {
  const box = $('#waveform');
  const w = job.results.waveform;
  const player = $('#media audio, #media video');
  if (!w || typeof w.url !== 'string' || !w.url.startsWith('/jobs/') || !player) {
    box.replaceChildren();
    box.hidden = true;
    return;
  }
  const data = await waveformData(w.url);
  let canvas = box.querySelector('canvas');
  if (!canvas) {
    canvas = document.createElement('canvas');
    canvas.setAttribute('aria-label', 'waveform: click to seek');
    canvas.height = 72;
    box.replaceChildren(canvas);
  }
  box.hidden = false;
  const seconds = () => (Number.isFinite(player.duration) && player.duration > 0 ? player.duration : w.durationSec);
  const draw = () => {
    const width = Math.max(100, Math.round(box.clientWidth || 480));
    if (canvas.width !== width) canvas.width = width;
    drawWaveform(canvas, data, seconds() > 0 ? player.currentTime / seconds() : 0);
  };
  canvas.onclick = (e) => {
    const rect = canvas.getBoundingClientRect();
    const at = Math.min(1, Math.max(0, (e.clientX - rect.left) / rect.width));
    player.currentTime = at * seconds();
    draw();
  };
  player.ontimeupdate = draw;
  player.onseeked = draw;
  player.onloadedmetadata = draw;
  draw();
}

/** One column per canvas pixel: the lowest minimum and highest maximum of the pairs it covers. */
function drawWaveform(canvas, data, played) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const pairs = data.length;
  const step = 2 * data.channels;
  const mid = height / 2;
  for (let x = 0; x < width && pairs > 0; x++) {
    const from = Math.floor((x * pairs) / width);
    const to = Math.max(from + 1, Math.floor(((x + 1) * pairs) / width));
    let lo = 127;
    let hi = -128;
    for (let p = from; p < to && p < pairs; p++) {
      lo = Math.min(lo, data.data[p * step]);
      hi = Math.max(hi, data.data[p * step + 1]);
    }
    const top = mid - (hi / 128) * mid;
    const bottom = mid - (lo / 128) * mid;
    ctx.fillStyle = x / width < played ? '#1d3f7a' : '#7fa3dc';
    ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

/** The EBU R128 figures of the sound, and how much of it is silence. */
function renderLoudness(job) {
  const out = $('#loudness');
  const l = job.results.loudness;
  out.replaceChildren();
  if (!l) return;
  const figure = (v, unit) => (typeof v === 'number' ? `${v.toFixed(1)} ${unit}` : '–');
  out.appendChild(
    el(
      'p',
      `Loudness ${figure(l.integratedLufs, 'LUFS')} · range ${figure(l.loudnessRangeLu, 'LU')} · ` +
        `true peak ${figure(l.truePeakDbtp, 'dBTP')} · silence ${Math.round(l.silenceShare * 100)} %`,
      'facts',
    ),
  );
}

/** One picture (the largest thumbnail: the photo, a video's poster frame, a PDF's first page) and the audio. */
function renderMedia(job) {
  const thumbs = $('#thumbnails');
  const all = job.results.thumbnails || [];
  const largest = all[all.length - 1];
  // Drawn again only when the picture or the job's status changes: its face boxes stay while events come.
  const drawn = `${job.id} ${largest ? largest.url : ''} ${job.status}`;
  const redraw = thumbs.dataset.drawn !== drawn;
  thumbs.dataset.drawn = drawn;
  if (redraw) thumbs.replaceChildren();
  if (largest && redraw) {
    const img = document.createElement('img');
    img.src = largest.url;
    img.alt = job.fileType === 'pdf' ? 'first page' : job.fileType === 'image' ? 'the picture' : 'poster frame';
    img.width = Math.min(largest.width, 480);
    const pictured = el('div', '', 'pictured');
    pictured.style.width = `${img.width}px`;
    pictured.appendChild(img);
    thumbs.appendChild(pictured);
    drawFaces(job, pictured).catch(console.error);
    thumbs.appendChild(el('p', `${largest.width}×${largest.height} ${largest.format}, ${all.length} sizes`, 'muted'));
  }
  const media = $('#media');
  // The page is drawn again on every event of the job: a player already there keeps playing where it is.
  const kept = media.querySelector('audio');
  media.replaceChildren();
  const audio = job.results.audio;
  if (audio && typeof audio.url === 'string' && audio.url.startsWith('/jobs/')) {
    let player = kept;
    if (!player || player.getAttribute('src') !== audio.url) {
      player = document.createElement('audio');
      player.controls = true;
      player.preload = 'none';
      player.src = audio.url;
    }
    media.appendChild(player);
  }
  const meta = job.results.metadata || {};
  const facts = [];
  if (meta.width && meta.height) facts.push(`${meta.width}×${meta.height}`);
  if (meta.durationSec != null) facts.push(clock(meta.durationSec));
  if (meta.pages) facts.push(`${meta.pages} page${meta.pages === 1 ? '' : 's'}`);
  if (meta.format || meta.container) facts.push(meta.format || meta.container);
  if (meta.size) facts.push(bytes(meta.size));
  if (facts.length) media.appendChild(el('p', facts.join(' · '), 'facts'));
}

/** transcodeVideo's reason when the original plays in browsers as it is (served at /jobs/:id/original). */
const ORIGINAL_PLAYS = 'no rendition required';

/**
 * The video player: the web rendition (or the original, when it plays as it is), the transcript as its captions, and
 * a seek bar that shows the storyboard's frame under the pointer. Built once per source, so that the document's
 * reloads (every step event) do not restart it; the captions and storyboard join it when they are ready.
 */
function renderPlayer(job) {
  const box = $('#player');
  const step = job.steps.transcodeVideo;
  let src = null;
  if (job.results.video && String(job.results.video.url).startsWith('/jobs/')) src = job.results.video.url;
  else if (step && step.status === 'skipped' && String(step.reason).startsWith(ORIGINAL_PLAYS))
    src = `/jobs/${encodeURIComponent(job.id)}/original`;
  if (!src) {
    box.hidden = true;
    box.replaceChildren();
    delete box.dataset.src;
    return;
  }
  box.hidden = false;
  let video = box.querySelector('video');
  if (box.dataset.src !== src || !video) {
    box.dataset.src = src;
    delete box.dataset.captions;
    delete box.dataset.storyboard;
    video = document.createElement('video');
    video.controls = true;
    video.preload = 'metadata';
    video.playsInline = true;
    const thumbs = job.results.thumbnails || [];
    if (thumbs.length) video.poster = thumbs[thumbs.length - 1].url;
    video.src = src;
    const r = job.results.video;
    const facts = r
      ? `${r.mode === 'remux' ? 'rendition (copied streams)' : 'rendition'}: ${r.width}×${r.height} ${r.videoCodec}/${r.audioCodec || 'no sound'}, ${bytes(r.bytes)}`
      : 'the original (it plays as it is)';
    box.replaceChildren(video, el('div', '', 'scrub'), el('p', facts, 'muted'));
  }
  const t = job.results.transcript;
  if (t && t.vttUrl && box.dataset.captions !== t.vttUrl) {
    box.dataset.captions = t.vttUrl;
    const track = document.createElement('track');
    track.kind = 'captions';
    track.label = 'Transcript';
    track.srclang = (t.language || 'en').slice(0, 8);
    track.src = t.vttUrl;
    track.default = true;
    video.appendChild(track);
  }
  const sb = job.results.storyboard;
  if (sb && box.dataset.storyboard !== sb.url) {
    box.dataset.storyboard = sb.url;
    attachStoryboard(box, video, sb).catch(console.error);
  }
}

/** The storyboard's cues: start, end and the tile (image URL and its rectangle in the sprite). */
async function storyboardCues(sb) {
  const res = await fetch(sb.url);
  if (!res.ok) return [];
  const lines = (await res.text()).split('\n');
  const seconds = (t) => t.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
  const cues = [];
  for (let i = 0; i < lines.length - 1 && cues.length < 1000; i++) {
    const time = /^([\d:.]+) --> ([\d:.]+)/.exec(lines[i]);
    const tile = /^(.+)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(lines[i + 1] || '');
    if (!time || !tile) continue;
    const [, image, x, y, w, h] = tile;
    cues.push({
      start: seconds(time[1]),
      end: seconds(time[2]),
      image: sb.url.replace(/[^/]*$/, '') + encodeURIComponent(image),
      x: +x,
      y: +y,
      w: +w,
      h: +h,
    });
  }
  return cues;
}

/** A seek bar under the video: the frame at the pointer above it, a click seeks there. */
async function attachStoryboard(box, video, sb) {
  const cues = await storyboardCues(sb);
  const bar = box.querySelector('.scrub');
  if (!bar) return;
  const fill = el('span', '', 'scrub-fill');
  const preview = el('span', '', 'scrub-preview');
  const label = el('span', '', 'scrub-time');
  preview.appendChild(label);
  preview.hidden = true;
  bar.replaceChildren(fill, preview);
  const duration = () =>
    Number.isFinite(video.duration) && video.duration > 0
      ? video.duration
      : cues.length
        ? cues[cues.length - 1].end
        : 0;
  const at = (event) => {
    const rect = bar.getBoundingClientRect();
    return Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width)) * duration();
  };
  bar.addEventListener('mousemove', (event) => {
    const t = at(event);
    const cue = cues.find((c) => t >= c.start && t < c.end) || cues[cues.length - 1];
    if (!cue) return;
    preview.hidden = false;
    preview.style.width = `${cue.w}px`;
    preview.style.height = `${cue.h}px`;
    preview.style.backgroundImage = `url("${cue.image}")`;
    preview.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    const rect = bar.getBoundingClientRect();
    const left = Math.min(rect.width - cue.w, Math.max(0, event.clientX - rect.left - cue.w / 2));
    preview.style.left = `${left}px`;
    preview.dataset.tile = `${cue.x},${cue.y}`;
    text(label, clock(t));
  });
  bar.addEventListener('mouseleave', () => (preview.hidden = true));
  bar.addEventListener('click', (event) => {
    video.currentTime = at(event);
  });
  video.addEventListener('timeupdate', () => {
    fill.style.width = `${duration() ? (video.currentTime / duration()) * 100 : 0}%`;
  });
}

/** An image's analysis: labels, caption, the palette as swatches, sharpness and the perceptual hash. */
function renderAnalysis(job) {
  const out = $('#analysis');
  out.replaceChildren();
  const a = job.results.analysis;
  if (!a) return;
  out.appendChild(el('h3', `Analysis (${a.model ? `${a.provider} ${a.model}` : a.provider})`));
  if (a.caption) out.appendChild(el('p', a.caption, 'caption'));
  if ((a.labels || []).length) {
    const labels = el('p', '', 'labels');
    for (const l of a.labels) labels.appendChild(el('span', `${l.name} ${Math.round(l.score * 100)}%`, 'label'));
    // Documents written before faces had boxes carry the count in `faces`.
    const faces = a.faceCount ?? (typeof a.faces === 'number' ? a.faces : 0);
    if (faces) labels.appendChild(el('span', `${faces} face${faces === 1 ? '' : 's'}`, 'label'));
    out.appendChild(labels);
  }
  if (a.text) out.appendChild(el('p', `Text in the image: ${a.text}`));
  const swatches = el('p', '', 'palette');
  for (const c of a.palette || []) {
    // Colours come from the document: only #rrggbb reaches a style.
    if (!/^#[0-9a-fA-F]{6}$/.test(c.color)) continue;
    const sw = el('span', '', 'swatch');
    sw.style.background = c.color;
    sw.style.flexGrow = String(Math.max(1, Math.round(c.share * 100)));
    sw.title = `${c.color} ${Math.round(c.share * 100)}%`;
    swatches.appendChild(sw);
  }
  if (swatches.childElementCount) out.appendChild(swatches);
  const numbers = [
    `sharpness ${Number(a.sharpness).toFixed(1)}`,
    `brightness ${Number(a.brightness).toFixed(2)}`,
    `pHash ${a.phash}`,
  ];
  out.appendChild(el('p', numbers.join(' · '), 'muted'));
  if (job.results.placeholder) out.appendChild(el('p', `ThumbHash ${job.results.placeholder.value}`, 'muted'));
}

function renderTexts(job) {
  const texts = $('#texts');
  texts.replaceChildren();
  const block = (title, value) => {
    if (!value) return;
    texts.append(el('h3', title), el('p', value));
  };
  const by = (r) => (r ? ` (${r.model ? `${r.provider} ${r.model}` : r.provider})` : '');
  const summary = job.results.summary;
  block(`Summary${by(summary)}`, summary && [summary.title, summary.text].filter(Boolean).join(' — '));
  block('Key points', summary && (summary.keyPoints || []).map((k) => `• ${k}`).join('\n'));
  block('Chapters', summary && (summary.chapters || []).map((c) => `${clock(c.start)} ${c.title}`).join('\n'));
  const doc = job.results.text;
  if (doc) {
    block(`Text (${doc.pages} pages, ${doc.chars} characters${doc.truncated ? ', cut' : ''})`, doc.excerpt);
    const more = el('p');
    more.appendChild(fileLink(doc.url, 'the whole text'));
    texts.appendChild(more);
  }
}

/** The transcript with a time for each segment (transcript.json), else its excerpt; links to SRT, VTT and text. */
async function renderTranscript(job) {
  const out = $('#transcript');
  const t = job.results.transcript;
  if (!t) return out.replaceChildren();
  const title = `Transcript${t.quality === 'rough' ? ' (rough, offline)' : ''} (${t.source})`;
  const links = el('p', '', 'muted');
  for (const [url, label] of [
    [t.url, 'text'],
    [t.srtUrl, 'SRT'],
    [t.vttUrl, 'VTT'],
  ]) {
    if (!url) continue;
    if (links.childNodes.length) links.append(' · ');
    links.appendChild(fileLink(url, label));
  }
  let list = null;
  const segments = (job.artifacts || []).find((a) => a.name === 'transcript.json');
  if (segments) {
    const res = await fetch(segments.url);
    if (res.ok) {
      list = el('ol', '', 'segments');
      for (const s of ((await res.json()) || []).slice(0, 1000)) {
        const li = document.createElement('li');
        li.append(el('span', clock(s.start), 'at'), ' ', document.createTextNode(String(s.text)));
        list.appendChild(li);
      }
    }
  }
  out.replaceChildren(el('h3', title), list || el('p', t.text), links);
}

/** EXIF, a link to where a photo was taken, and the files the job produced. */
function renderDetails(job) {
  const out = $('#details');
  out.replaceChildren();
  if (job.instructions || job.profile) {
    const asked = [
      job.profile ? `profile ${job.profile}` : null,
      job.instructions ? JSON.stringify(job.instructions) : null,
    ];
    out.append(el('h3', 'Instructions'), el('pre', asked.filter(Boolean).join('\n'), 'instructions'));
  }
  const meta = job.results.metadata || {};
  const gps = meta.gps;
  if (gps && Number.isFinite(gps.latitude) && Number.isFinite(gps.longitude)) {
    const lat = gps.latitude.toFixed(6);
    const lon = gps.longitude.toFixed(6);
    const p = el('p', 'Taken at ');
    const a = el('a', `${lat}, ${lon}`);
    a.href = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=15/${lat}/${lon}`;
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
    p.appendChild(a);
    out.append(el('h3', 'Location'), p);
  }
  const exif = Object.entries(meta.exif || {});
  if (exif.length) {
    const table = el('table', '', 'exif');
    for (const [k, v] of exif.slice(0, 60)) {
      const row = document.createElement('tr');
      cell(row, k);
      cell(row, v);
      table.appendChild(row);
    }
    out.append(el('h3', 'EXIF'), table);
  }
  const files = $('#artifacts');
  files.replaceChildren();
  for (const f of job.artifacts || []) {
    const li = document.createElement('li');
    li.append(fileLink(f.url, f.name), ` ${bytes(f.bytes)}`);
    files.appendChild(li);
  }
}

/** The job's duplicates among its owner's jobs, earlier and later, each a link to its page. */
async function renderDuplicates(job) {
  const out = $('#duplicates');
  const { duplicates } = TERMINAL.includes(job.status) ? await api(`/jobs/${job.id}/duplicates`) : { duplicates: [] };
  // Another job's page may be showing by the time the answer comes.
  if ($('#job-title').dataset.job !== job.id) return;
  const items = duplicates.map((d) => {
    const li = document.createElement('li');
    const a = el('a', d.jobId);
    a.href = `#/jobs/${encodeURIComponent(d.jobId)}`;
    const what = d.kind === 'exact' ? 'the same file' : `a similar picture (${d.distance} bits apart)`;
    li.append(a, ` ${what}, ${d.relation}`);
    return li;
  });
  const list = el('ul', '', 'duplicates');
  list.append(...items);
  const head = [];
  if (job.duplicateOf) {
    const p = el('p', 'Not processed: the same file as job ');
    const a = el('a', job.duplicateOf);
    a.href = `#/jobs/${encodeURIComponent(job.duplicateOf)}`;
    p.append(a, ', whose results it shares.');
    head.push(p);
  }
  out.replaceChildren(...(items.length || head.length ? [el('h3', 'Duplicates'), ...head, list] : []));
}

/** Why the job waits (or waited) for a person, what they are shown, and the two buttons while it waits. */
function renderReview(job) {
  const box = $('#review');
  const review = job.review;
  box.hidden = !review;
  if (!review) return;
  text($('#review-reason'), `Waits for a review: ${review.reason}`);
  const evidence = $('#review-evidence');
  evidence.replaceChildren();
  const e = review.evidence || {};
  if ((e.labels || []).length)
    evidence.appendChild(
      el('p', `Labels: ${e.labels.map((l) => `${l.name} ${Math.round(l.score * 100)}%`).join(', ')}`),
    );
  if (e.caption) evidence.appendChild(el('p', `Caption: ${e.caption}`));
  if (e.safety && e.safety.flagged) evidence.appendChild(el('p', `Flagged: ${e.safety.categories.join(', ')}`));
  if (e.excerpt) evidence.appendChild(el('p', e.excerpt, 'muted'));
  text(
    $('#review-decision'),
    review.decision
      ? `${review.decision === 'approve' ? 'Approved' : 'Rejected'} ${new Date(review.decidedAt).toLocaleString()}` +
          (review.note ? `: ${review.note}` : '')
      : '',
  );
  $('#review-form').hidden = job.status !== 'awaiting_review' || Boolean(review.decision);
}

function renderJob(job) {
  text($('#job-title'), job.file.name);
  $('#job-title').dataset.job = job.id;
  const status = $('#job-status');
  status.replaceChildren();
  const s = document.createElement('span');
  s.className = `status ${job.status}`;
  text(s, job.status);
  status.append(s, ` · ${job.fileType || 'type unknown'} · job ${job.id}`);
  const error = $('#job-error');
  error.hidden = !job.error;
  if (job.error) text(error, `${job.error.code} at ${job.error.step || 'intake'}: ${job.error.message}`);
  // A damaged but usable file (cut short): the job completed with what could be read, and says so.
  const warnings = $('#job-warnings');
  const said = job.warnings || [];
  warnings.hidden = said.length === 0;
  warnings.replaceChildren(...said.map((w) => text(document.createElement('li'), `${w.code}: ${w.message}`)));
  renderReview(job);
  renderSteps(job);
  renderPlayer(job);
  renderMedia(job);
  renderWaveform(job).catch(console.error);
  renderLoudness(job);
  renderAnalysis(job);
  renderTexts(job);
  renderTranscript(job).catch(console.error);
  renderDetails(job);
  renderDuplicates(job).catch(console.error);
  const meta = job.results.metadata ? { ...job.results.metadata } : null;
  if (meta) delete meta.exif;
  text($('#metadata'), meta ? JSON.stringify(meta, null, 2) : '');
  $('#cancel').disabled = TERMINAL.includes(job.status);
  // The server says whether a retry could change anything (a file that is encrypted stays encrypted).
  $('#retry').disabled = !(job.retry && job.retry.allowed);
  $('#retry').title = (job.retry && job.retry.reason) || '';
  drawGraph(job).catch(console.error);
}

async function showJob(id) {
  showView('#job-view');
  let job = await api(`/jobs/${id}`);
  renderJob(job);
  // Every step transition arrives as an event; re-read the document on each (it is small) to stay exact.
  events = new EventSource(`/jobs/${id}/events`);
  const reload = async () => {
    job = await api(`/jobs/${id}`);
    renderJob(job);
  };
  events.addEventListener('step', () => reload().catch(console.error));
  events.addEventListener('status', (e) => {
    reload().catch(console.error);
    if (TERMINAL.includes(JSON.parse(e.data).status)) events.close();
  });
  const decide = (decision) =>
    api(`/jobs/${id}/review`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        decision,
        ...($('#review-note').value.trim() && { note: $('#review-note').value.trim() }),
      }),
    }).then(reload, (err) => alert(err.message));
  $('#approve').onclick = () => decide('approve');
  $('#reject').onclick = () => decide('reject');
  $('#cancel').onclick = () => api(`/jobs/${id}/cancel`, { method: 'POST' }).then(reload, (err) => alert(err.message));
  $('#retry').onclick = () =>
    api(`/jobs/${id}/retry`, { method: 'POST' }).then(
      () => showJob(id),
      (err) => alert(err.message),
    );
}

// ---- people ----------------------------------------------------------------------------------------------------

/** `?user=…` for the people routes: every one is scoped to an owner (none: the jobs without a user). */
const ownerQuery = (user) => (user ? `?user=${encodeURIComponent(user)}` : '');
const peopleHash = (user) => `#/people${ownerQuery(user)}`;
const personHash = (id, user) => `#/people/${Number(id)}${ownerQuery(user)}`;

/** A face crop (URLs the API gave, always under /jobs/). */
function crop(url, alt) {
  const img = document.createElement('img');
  if (typeof url === 'string' && url.startsWith('/jobs/')) img.src = url;
  img.alt = alt;
  img.loading = 'lazy';
  return img;
}

/** Names a person from an input (empty clears the name); the saved person, or null when the API refused. */
async function rename(id, user, input) {
  const name = input.value.trim();
  try {
    const person = await api(`/people/${Number(id)}${ownerQuery(user)}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: name || null }),
    });
    input.value = person.name || '';
    input.classList.remove('invalid');
    input.title = '';
    return person;
  } catch (err) {
    input.classList.add('invalid');
    input.title = err.message;
    return null;
  }
}

function nameInput(person, user) {
  const input = document.createElement('input');
  input.className = 'name';
  input.maxLength = 200;
  input.placeholder = 'no name';
  input.value = person.name || '';
  input.setAttribute('aria-label', `name of person ${person.id}`);
  input.addEventListener('change', () => rename(person.id, user, input));
  return input;
}

const faces = (n) => `${n} face${n === 1 ? '' : 's'}`;

/** The owner's people, most faces first: each its cover crop (a link to its faces), its name to edit, its count. */
async function showPeople(user) {
  showView('#people-view');
  const owner = $('#people-user');
  owner.value = user;
  owner.onchange = () => (location.hash = peopleHash(owner.value.trim()));
  const list = $('#people');
  list.replaceChildren();
  const params = new URLSearchParams({ limit: '200' });
  if (user) params.set('user', user);
  const { people } = await api(`/people?${params}`);
  text($('#people-note'), people.length ? '' : 'No people yet: faces are grouped into people as photos are analysed.');
  for (const p of people) {
    const li = el('li', '', 'person');
    li.dataset.id = String(p.id);
    const link = el('a');
    link.href = personHash(p.id, user);
    link.appendChild(crop(p.cover, p.name || `person ${p.id}`));
    li.append(link, nameInput(p, user), el('span', faces(p.faceCount), 'muted count'));
    list.appendChild(li);
  }
}

/** One person: its name to edit, its faces with links to their jobs, a face taken out, the person deleted. */
async function showPerson(id, user) {
  showView('#person-view');
  $('#person-back').href = peopleHash(user);
  const title = $('#person-title');
  const person = await api(`/people/${Number(id)}${ownerQuery(user)}`);
  const titled = (p) => text(title, p.name || `Person ${p.id}`);
  titled(person);
  title.dataset.person = String(person.id);
  const name = $('#person-name');
  name.value = person.name || '';
  name.onchange = () => rename(person.id, user, name).then((p) => p && titled(p));
  text($('#person-status'), `${faces(person.faceCount)} in ${person.jobIds.length} job(s)`);
  $('#person-delete').onclick = () => {
    if (!window.confirm('Delete this person? Its faces stay with their jobs, in no person.')) return;
    api(`/people/${person.id}${ownerQuery(user)}`, { method: 'DELETE' }).then(
      () => (location.hash = peopleHash(user)),
      (err) => text($('#person-status'), err.message),
    );
  };
  const list = $('#person-faces');
  list.replaceChildren();
  for (const f of person.faces) {
    const li = el('li', '', 'face');
    li.dataset.job = f.jobId;
    li.dataset.index = String(f.index);
    const job = el('a', f.jobId);
    job.href = `#/jobs/${encodeURIComponent(f.jobId)}`;
    const detach = el('button', 'Not this person');
    detach.type = 'button';
    detach.onclick = () =>
      api(`/people/${person.id}/faces/${encodeURIComponent(f.jobId)}/${Number(f.index)}/detach${ownerQuery(user)}`, {
        method: 'POST',
      }).then(
        ({ left }) => (left ? showPerson(person.id, user) : (location.hash = peopleHash(user))),
        (err) => text($('#person-status'), err.message),
      );
    li.append(crop(f.crop, `face ${f.index} of job ${f.jobId}`), job, detach);
    list.appendChild(li);
  }
}

/** The picture's size upright: the boxes of analysis.faces are in its pixels (EXIF orientations 5-8 turn it). */
function uprightSize(job) {
  const m = job.results.metadata || {};
  if (!(m.width > 0 && m.height > 0)) return null;
  return m.orientation >= 5 && m.orientation <= 8
    ? { width: m.height, height: m.width }
    : { width: m.width, height: m.height };
}

/** The faces found in the picture, boxed on it; a box is a link to the face's person when it is in one. */
async function drawFaces(job, holder) {
  const found = job.results.analysis && Array.isArray(job.results.analysis.faces) ? job.results.analysis.faces : [];
  const size = uprightSize(job);
  if (!found.length || !size) return;
  const user = (job.user && job.user.id) || '';
  const recorded = TERMINAL.includes(job.status) ? (await api(`/jobs/${encodeURIComponent(job.id)}/faces`)).faces : [];
  const personOf = new Map(recorded.filter((f) => f.person != null).map((f) => [f.index, f.person]));
  const names = new Map();
  for (const id of new Set(personOf.values())) {
    const person = await api(`/people/${id}${ownerQuery(user)}`).catch(() => null);
    if (person) names.set(id, person.name || `person ${id}`);
  }
  // The page may have been drawn again meanwhile.
  if (!holder.isConnected) return;
  const share = (v, of) => `${Math.min(100, Math.max(0, (Number(v) / of) * 100)).toFixed(2)}%`;
  found.forEach((f, i) => {
    const person = personOf.get(i);
    const box = el(names.has(person) ? 'a' : 'span', '', 'face-box');
    box.dataset.face = String(i);
    box.style.left = share(f.box.x, size.width);
    box.style.top = share(f.box.y, size.height);
    box.style.width = share(f.box.width, size.width);
    box.style.height = share(f.box.height, size.height);
    if (names.has(person)) {
      box.href = personHash(person, user);
      box.dataset.person = String(person);
      box.title = names.get(person);
    } else box.title = `face ${i + 1}`;
    holder.appendChild(box);
  });
}

function route() {
  const match = /^#\/jobs\/([A-Za-z0-9_.-]+)$/.exec(location.hash);
  const people = /^#\/people(?:\/(\d{1,10}))?(?:\?(.*))?$/.exec(location.hash);
  if (match) showJob(match[1]).catch((err) => alert(err.message));
  else if (people) {
    const user = new URLSearchParams(people[2] || '').get('user') || '';
    const note = people[1] ? '#person-status' : '#people-note';
    (people[1] ? showPerson(people[1], user) : showPeople(user)).catch((err) => text($(note), err.message));
  } else showList();
}

mermaid.initialize({
  startOnLoad: false,
  securityLevel: 'strict',
  theme: 'neutral',
  themeVariables: { fontSize: '15px' },
  // Drawn at its own size (not stretched to the box), so a label is as large as the page's text.
  flowchart: { useMaxWidth: false },
});
window.addEventListener('hashchange', route);
route();
