// A small stand-in for the Hugging Face hub on 127.0.0.1, for the end-to-end download tests: it
// serves one repository, as the hub's download protocol does (the file list with each file's
// LFS SHA-256 and size, then the files themselves, resumable with Range). Transfer can be slowed
// so a test can watch the progress bar and pause.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';

/**
 * Serves the repository `repo` at revision `main` with `files` ([{ file, path }]: the name in
 * the repository and the file on disk), or the single `path` as `file`.
 * Returns { url, log, sha256, size (of the first file), setRate(bytesPerSecond | null), close() }.
 */
export async function startHub({ repo, file, path, files }) {
  const served = (files ?? [{ file, path }]).map((f) => {
    const size = statSync(f.path).size;
    const sha256 = createHash('sha256').update(readFileSync(f.path)).digest('hex');
    const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
    const blobId = createHash('sha1').update(`blob ${pointer.length}\0${pointer}`).digest('hex');
    return { ...f, size, sha256, blobId };
  });
  const commit = createHash('sha1').update(`${repo}@main`).digest('hex');
  const log = [];
  let rate = null;

  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    log.push({ method: req.method, path: url.pathname, range: req.headers.range ?? null });
    if (url.pathname === `/api/models/${repo}/revision/main`) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const siblings = served.map((f) => ({ rfilename: f.file, size: f.size, blobId: f.blobId, lfs: { sha256: f.sha256, size: f.size } }));
      res.end(JSON.stringify({ id: repo, sha: commit, siblings }));
      return;
    }
    const wanted = served.find(
      (f) => url.pathname === `/${repo}/resolve/${commit}/${f.file}` || url.pathname === `/${repo}/resolve/main/${f.file}`,
    );
    if (!wanted) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('Entry not found');
      return;
    }
    const { size, sha256, path } = wanted;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (start >= size) {
      res.writeHead(416, { 'Content-Range': `bytes */${size}` });
      res.end();
      return;
    }
    const headers = {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(size - start),
      'X-Repo-Commit': commit,
      'X-Linked-Etag': `"${sha256}"`,
      'X-Linked-Size': String(size),
      ETag: `"${sha256}"`,
      'Accept-Ranges': 'bytes',
    };
    if (m) headers['Content-Range'] = `bytes ${start}-${size - 1}/${size}`;
    res.writeHead(m ? 206 : 200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(path, { start, highWaterMark: 64 * 1024 });
    if (rate === null) {
      stream.pipe(res);
      return;
    }
    // Slowed down: one chunk, then a pause that keeps to the rate.
    stream.on('data', (chunk) => {
      stream.pause();
      const ok = res.write(chunk);
      const wait = (1000 * chunk.length) / rate;
      const go = () => setTimeout(() => stream.resume(), wait);
      if (ok) go();
      else res.once('drain', go);
    });
    stream.on('end', () => res.end());
    res.on('close', () => stream.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    sha256: served[0].sha256,
    size: served[0].size,
    setRate(r) {
      rate = r;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
