// A volume snapshot's bytes, all three ways (out of a container into a file,
// the file's check before a restore, the file back into a container),
// streamed in a worker thread (piscina) instead of on the worker's main
// thread. Why: every read from the Docker socket is a fresh Buffer, and V8
// answers that much new external memory with a full mark-compact of the
// heap that allocated it, about six per 64 MB. In a worker process holding a
// thousand lifecycles (a ≈ 100 MB heap) a 64 MB snapshot took 420-640 ms
// against 254-391 ms in a small heap, and cost ≈ 0.4 s of CPU on V8's
// marking threads on a 2-core machine. A thread has a heap of its own, a few
// MB, so the same collections cost next to nothing; the main thread only
// hears byte counts. (README: "Snapshots off the main thread".)
//
// Plain JS so it loads the same under tsx and compiled builds (the build
// copies it to dist/). docker-modem rather than dockerode: it is what
// dockerode speaks HTTP with, and loads in ≈ 40 ms where dockerode, with its
// gRPC stack, takes ≈ 100.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, statfs } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Modem from 'docker-modem';

const MB = 1024 * 1024;
const mb = (n) => `${(n / MB).toFixed(1)} MB`;
/**
 * Bytes buffered between a stream and its file or request (Node's default is
 * 16 KiB): fewer, larger writes. Measured alone, a 64 MB snapshot went from
 * ≈ 0.47 to ≈ 0.40 s on the 2-core machine (`npm run bench`, the snapshot
 * row, compares it with `docker cp`).
 */
const BUFFER_BYTES = MB;
/** Progress goes to the main thread at most this often (it heartbeats once a second). */
const PROGRESS_MS = 250;

/**
 * The task's line to the main thread: byte counts out (at most every
 * PROGRESS_MS), 'cancel' in. A cancel aborts the Docker request, and the task
 * then closes its files itself: ending the thread instead would leave them
 * open, and a deleted half-written snapshot would keep its disk space until
 * the process exits.
 */
function progressLine(progress) {
  let bytes = 0;
  let reportedAt = 0;
  const abort = new AbortController();
  progress.on('message', (m) => m === 'cancel' && abort.abort());
  return {
    add(n) {
      bytes += n;
      const now = Date.now();
      if (now - reportedAt >= PROGRESS_MS) {
        reportedAt = now;
        progress.postMessage({ bytes });
      }
    },
    bytes: () => bytes,
    signal: abort.signal,
    close: () => progress.close(),
  };
}

/** Resolves once `stream` has let go of its file descriptor (an 'error' on the way is the caller's business). */
async function closed(stream) {
  if (stream.closed) return;
  const done = new Promise((resolve) => stream.once('close', resolve));
  stream.destroy();
  await done;
}

const dial = (modem, opts) =>
  new Promise((resolve, reject) => new Modem(modem).dial(opts, (err, data) => (err ? reject(err) : resolve(data))));

/** What an unprivileged writer may still use on the snapshot disk (the root reserve is not ours). */
async function freeBytes(dir) {
  const fs = await statfs(dir);
  return Number(fs.bavail) * Number(fs.bsize);
}

/**
 * Streams `/data` of `containerName` into `part`: sha256 on the way, fsynced
 * before it returns. Business outcomes come back as `{ failure }` (a thrown
 * Error loses its fields crossing the thread); anything else throws.
 *
 * No chunk is written that would leave less than `minFreeBytes` free on the
 * disk: the stream keeps its own count against the last statfs, and asks
 * again once a second (another process may be writing) or whenever the count
 * says the margin is near. The volume may hold more than measured; the disk
 * never fills.
 */
export async function snapshot({ modem, containerName, part, dir, minFreeBytes, progress }) {
  const line = progressLine(progress);
  try {
    let source;
    try {
      source = await dial(modem, {
        path: `/containers/${encodeURIComponent(containerName)}/archive?`,
        method: 'GET',
        isStream: true,
        abortSignal: line.signal,
        statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such container', 500: 'server error' },
        options: { path: '/data' },
      });
    } catch (err) {
      if (line.signal.aborted) return { cancelled: true };
      if (err?.statusCode === 404) return { failure: { type: 'container_missing', message: `no container ${containerName} to snapshot` } };
      throw err;
    }

    const hash = createHash('sha256');
    let free = 0;
    let sinceStat = 0;
    let statAt = 0;
    let stopped = null;
    const sink = createWriteStream(part, { mode: 0o600, highWaterMark: BUFFER_BYTES });
    const guard = new Transform({
      highWaterMark: BUFFER_BYTES,
      transform(chunk, _enc, cb) {
        const pass = () => {
          if (free - sinceStat - chunk.length < minFreeBytes) {
            stopped = `snapshot stopped after ${mb(line.bytes())}: only ${mb(free - sinceStat)} left free in ${dir}, and ${mb(minFreeBytes)} must stay free (HANGAR_SNAPSHOT_MIN_FREE_MB)`;
            return cb(new Error(stopped));
          }
          sinceStat += chunk.length;
          line.add(chunk.length);
          hash.update(chunk);
          cb(null, chunk);
        };
        const now = Date.now();
        if (statAt === 0 || now - statAt > 1000 || free - sinceStat - chunk.length < minFreeBytes) {
          freeBytes(dir).then(
            (f) => {
              free = f;
              // What statfs cannot see yet: bytes passed on but still buffered
              // on their way to the file. (A write landing meanwhile is counted
              // twice: the guard errs towards stopping early.)
              sinceStat = line.bytes() - sink.bytesWritten;
              statAt = now;
              pass();
            },
            (err) => cb(err),
          );
        } else pass();
      },
    });

    try {
      await pipeline(source, guard, sink);
    } catch (err) {
      // The caller deletes the part file: it must be closed for its space to come back.
      await closed(sink);
      if (line.signal.aborted) return { cancelled: true };
      if (stopped) return { failure: { type: 'snapshot_no_space', message: stopped } };
      if (err?.code === 'ENOSPC') return { failure: { type: 'snapshot_no_space', message: `the snapshot disk filled up (${dir}) after ${mb(line.bytes())}` } };
      throw err;
    }
    // Durable before it counts as a snapshot: the next step may destroy the only other copy.
    const fh = await open(part, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { bytes: line.bytes(), sha256: hash.digest('hex') };
  } finally {
    line.close();
  }
}

/**
 * Runs `work` with `source` open: a cancel on the line answers
 * `{ cancelled: true }`, and however it ends the file is closed and the line
 * hung up.
 */
async function whileOpen(line, source, work) {
  try {
    return await work();
  } catch (err) {
    if (line.signal.aborted) return { cancelled: true };
    throw err;
  } finally {
    await closed(source);
    line.close();
  }
}

/** sha256 of the file at `path`, read in 1 MiB chunks (a snapshot is checked before a restore trusts it). */
export async function digest({ path, progress }) {
  const line = progressLine(progress);
  const hash = createHash('sha256');
  const source = createReadStream(path, { highWaterMark: BUFFER_BYTES, signal: line.signal });
  return whileOpen(line, source, async () => {
    for await (const chunk of source) {
      hash.update(chunk);
      line.add(chunk.length);
    }
    return { bytes: line.bytes(), sha256: hash.digest('hex') };
  });
}

/** Streams the tar at `file` into `containerName` at `/` (the archive holds `data/…`). */
export async function restore({ modem, containerName, file, progress }) {
  const line = progressLine(progress);
  const source = createReadStream(file, { highWaterMark: BUFFER_BYTES });
  const counted = new Transform({
    transform(chunk, _enc, cb) {
      line.add(chunk.length);
      cb(null, chunk);
    },
  });
  source.on('error', (err) => counted.destroy(err));
  return whileOpen(line, source, async () => {
    await dial(modem, {
      path: `/containers/${encodeURIComponent(containerName)}/archive?`,
      method: 'PUT',
      file: source.pipe(counted),
      abortSignal: line.signal,
      statusCodes: { 200: true, 400: 'bad parameter', 403: 'permission denied', 404: 'no such container', 500: 'server error' },
      options: { path: '/' },
    });
    return { bytes: line.bytes() };
  });
}
