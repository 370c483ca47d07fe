/**
 * The documents part of the in-memory mock backend (see `mock.ts`), behaving as the app's
 * commands do: a document is added from a known path (`options.files`) or fails with the
 * `documents.*` code given for it (unknown paths: `documents.io`), and the same content added
 * twice comes back `alreadyKnown`. A summary streams `started`, `progress` and `part` per chunk
 * (one chunk per page), then `progress` of the final stage, `delta`s and `done`, with key points
 * citing the parts' pages; cancel stops it (`done` with status `cancelled`, parts kept) and
 * resume carries on from the stored parts. A question finds the passages holding its words
 * (`ask.nothing_found` otherwise) and streams an answer citing `[1]`.
 */
import type { AppError } from './types';
import type { DownloadEvent } from './download-types';
import type {
  AskEvent,
  Citation,
  DocumentInfo,
  DocumentsBackend,
  DocumentSummary,
  Passage,
  PartInfo,
  SummarizeEvent,
  SummarizeRequest,
} from './document-types';

export interface MockDocumentFile {
  name: string;
  kind: string;
  /** The text of each page (PDF) or section. */
  pages: string[];
}

export interface MockDocumentsOptions {
  /** What `addDocument` reads, by path; an AppError: the failure it gives. */
  files?: Record<string, MockDocumentFile | AppError>;
  /** Paths `pickDocuments` returns, in order (null: cancelled). */
  picks?: (string[] | null)[];
  /** Milliseconds between steps of a summary (default 5). */
  stepDelayMs?: number;
  /** Summaries left unfinished by "a previous run": the document paths (added at start). */
  interrupted?: string[];
  /** The search model is installed from the start (default: not). */
  searchModelInstalled?: boolean;
  /** A search model download fails with this error halfway. */
  searchModelFailure?: AppError;
}

interface StoredDocument {
  info: DocumentInfo;
  passages: Passage[];
}

interface StoredSummary {
  summary: DocumentSummary;
  request: SummarizeRequest;
}

const fail = (code: string, message: string): AppError => ({ code, message });
const isError = (x: MockDocumentFile | AppError): x is AppError => 'code' in x;

export function createMockDocuments(
  options: MockDocumentsOptions,
  record: (name: string, args: unknown[]) => void,
): DocumentsBackend {
  const delay = options.stepDelayMs ?? 5;
  const docs = new Map<number, StoredDocument>();
  const summaries = new Map<number, StoredSummary>();
  const jobs = new Map<number, { cancelled: boolean }>();
  /** Summaries a job of this run is writing. */
  const active = new Set<number>();
  const picks = [...(options.picks ?? [])];
  let nextDoc = 1;
  let nextChunk = 1;
  let nextSummary = 1;
  let nextPart = 1;
  let nextJob = 5000;
  const later = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), 0));
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  let searchModel = options.searchModelInstalled ?? false;
  const searchJobs = new Map<number, { cancelled: boolean }>();
  const SEARCH_MODEL_BYTES = 90_868_376;

  function add(path: string): { document: DocumentInfo; alreadyKnown: boolean } {
    const file = options.files?.[path];
    if (!file) throw fail('documents.io', `could not read ${path}: No such file or directory`);
    if (isError(file)) throw file;
    const hash = `${file.kind}:${file.pages.join('\u0001')}`;
    for (const d of docs.values()) {
      if (d.info.sha256 === hash) return { document: { ...d.info }, alreadyKnown: true };
    }
    const id = nextDoc++;
    const pdf = file.kind === 'pdf';
    const passages: Passage[] = file.pages.map((text, i) => ({
      chunkId: nextChunk++,
      documentId: id,
      ordinal: i,
      pageStart: pdf ? i + 1 : null,
      pageEnd: pdf ? i + 1 : null,
      section: pdf ? null : `Section ${i + 1}`,
      text,
      tokenCount: text.split(/\s+/).length,
    }));
    const info: DocumentInfo = {
      id,
      name: file.name,
      kind: file.kind,
      pages: pdf ? file.pages.length : null,
      chunks: passages.length,
      sha256: hash,
      path,
      addedAt: Date.now() + id,
      summaryStatus: null,
    };
    docs.set(id, { info, passages });
    return { document: { ...info }, alreadyKnown: false };
  }

  function get(id: number): StoredDocument {
    const d = docs.get(id);
    if (!d) throw fail('store.not_found', `document ${id} not found`);
    return d;
  }

  const cite = (ps: Passage[]): Citation => ({
    chunkIds: ps.map((p) => p.chunkId),
    chunkOrdinals: ps.map((p) => p.ordinal),
    pages: ps.filter((p) => p.pageStart !== null).map((p) => ({ start: p.pageStart ?? 0, end: p.pageEnd ?? 0 })),
    sections: ps.flatMap((p) => (p.section ? [p.section] : [])),
  });

  function inScope(d: StoredDocument, pages: [number, number] | null): Passage[] {
    if (!pages) return d.passages;
    return d.passages.filter((p) => p.pageStart === null || (p.pageStart >= pages[0] && p.pageStart <= pages[1]));
  }

  function create(req: SummarizeRequest): StoredSummary {
    const d = get(req.documentId);
    const scope = inScope(d, req.pages);
    if (scope.length === 0) throw fail('documents.no_pages', 'No text on those pages.');
    const summary: DocumentSummary = {
      summaryId: nextSummary++,
      documentId: d.info.id,
      modelId: 'smollm2-135m-instruct-q4_1',
      status: 'running',
      error: null,
      length: req.length,
      language: req.language ?? 'en',
      pages: req.pages,
      text: '',
      keyPoints: [],
      cites: cite(scope),
      chunksTotal: scope.length,
      chunksSummarized: 0,
      parts: [],
      createdAt: Date.now(),
      updatedAt: Date.now(),
    };
    const s = { summary, request: req };
    summaries.set(summary.summaryId, s);
    d.info.summaryStatus = 'running';
    return s;
  }

  function run(s: StoredSummary, onEvent: (e: SummarizeEvent) => void) {
    const jobId = nextJob++;
    const job = { cancelled: false };
    jobs.set(jobId, job);
    active.add(s.summary.summaryId);
    const d = get(s.summary.documentId);
    const scope = inScope(d, s.request.pages);
    const resumed = s.summary.parts.length;
    s.summary.status = 'running';
    d.info.summaryStatus = 'running';
    const finish = (status: string) => {
      s.summary.status = status;
      d.info.summaryStatus = status;
      jobs.delete(jobId);
      active.delete(s.summary.summaryId);
      onEvent({ type: 'done', jobId, status, summary: structuredClone(s.summary) });
    };
    void (async () => {
      await sleep(delay);
      onEvent({ type: 'started', jobId, summaryId: s.summary.summaryId, chunks: scope.length, resumedParts: resumed });
      for (const p of s.summary.parts) onEvent({ type: 'part', jobId, part: structuredClone(p), resumed: true });
      for (let i = resumed; i < scope.length; i++) {
        onEvent({ type: 'progress', jobId, stage: 'map', level: 0, done: i, total: scope.length, etaMs: (scope.length - i) * 1000 });
        await sleep(delay);
        if (job.cancelled) return finish('cancelled');
        const words = scope[i].text.split(/\s+/).slice(0, 8).join(' ');
        const part: PartInfo = { id: nextPart++, level: 0, ordinal: i, text: `About: ${words}`, cites: cite([scope[i]]) };
        s.summary.parts.push(part);
        s.summary.chunksSummarized = s.summary.parts.length;
        onEvent({ type: 'part', jobId, part: structuredClone(part), resumed: false });
      }
      onEvent({ type: 'progress', jobId, stage: 'final', level: 1, done: 0, total: 1, etaMs: 500 });
      const text = `${d.info.name} covers ${scope.length} parts.`;
      for (let at = 0; at < text.length; at += 8) {
        await sleep(delay);
        if (job.cancelled) return finish('cancelled');
        onEvent({ type: 'delta', jobId, text: text.slice(at, at + 8) });
      }
      s.summary.text = text;
      s.summary.keyPoints = s.summary.parts.map((p) => ({ text: p.text, partId: p.id, cites: p.cites }));
      finish('done');
    })();
    return {
      jobId,
      summaryId: s.summary.summaryId,
      documentId: d.info.id,
      modelId: s.summary.modelId,
      chunks: scope.length,
      resumedParts: resumed,
    };
  }

  for (const path of options.interrupted ?? []) {
    const { document } = add(path);
    const s = create({ documentId: document.id, length: 'short', language: null, pages: null });
    const first = get(document.id).passages[0];
    s.summary.parts.push({ id: nextPart++, level: 0, ordinal: 0, text: 'An earlier part.', cites: cite([first]) });
    s.summary.chunksSummarized = 1;
  }

  return {
    async pickDocuments(title) {
      record('pickDocuments', [title]);
      return later(picks.length ? (picks.shift() ?? null) : null);
    },
    async addDocument(path) {
      record('addDocument', [path]);
      await sleep(delay);
      return add(path);
    },
    async documents() {
      record('documents', []);
      return later([...docs.values()].map((d) => ({ ...d.info })).sort((a, b) => b.addedAt - a.addedAt));
    },
    async deleteDocument(id) {
      record('deleteDocument', [id]);
      get(id);
      docs.delete(id);
      for (const [sid, s] of summaries) if (s.summary.documentId === id) summaries.delete(sid);
      return later(undefined);
    },
    async summarize(request, onEvent) {
      record('summarize', [request]);
      get(request.documentId);
      const same = [...summaries.values()].find(
        (s) =>
          s.summary.documentId === request.documentId &&
          s.request.length === request.length &&
          s.request.language === request.language &&
          JSON.stringify(s.request.pages) === JSON.stringify(request.pages),
      );
      const s = same && !request.restart && same.summary.status !== 'done' ? same : create(request);
      return later(run(s, onEvent));
    },
    async resumeSummary(summaryId, onEvent) {
      record('resumeSummary', [summaryId]);
      const s = summaries.get(summaryId);
      if (!s) throw fail('store.not_found', `summary ${summaryId} not found`);
      return later(run(s, onEvent));
    },
    async cancelDocumentJob(jobId) {
      record('cancelDocumentJob', [jobId]);
      const job = jobs.get(jobId);
      if (job) job.cancelled = true;
      return later(undefined);
    },
    async interruptedSummaries() {
      record('interruptedSummaries', []);
      return later(
        [...summaries.values()]
          .filter((s) => s.summary.status === 'running' && !active.has(s.summary.summaryId))
          .map((s) => structuredClone(s.summary)),
      );
    },
    async documentSummaries(documentId) {
      record('documentSummaries', [documentId]);
      get(documentId);
      return later(
        [...summaries.values()].filter((s) => s.summary.documentId === documentId).map((s) => structuredClone(s.summary)),
      );
    },
    async passage(chunkId) {
      record('passage', [chunkId]);
      for (const d of docs.values()) {
        const p = d.passages.find((x) => x.chunkId === chunkId);
        if (p) return later({ ...p });
      }
      throw fail('store.not_found', `passage ${chunkId} not found`);
    },
    async retrievalStatus(documentId) {
      record('retrievalStatus', [documentId]);
      const d = get(documentId);
      const total = d.passages.length;
      return later({
        method: searchModel ? ('hybrid' as const) : ('keywords' as const),
        modelInstalled: searchModel,
        embeddedChunks: searchModel ? total : 0,
        totalChunks: total,
        note: searchModel ? null : 'No embedding model is installed: passages are found by their words only.',
      });
    },
    async pullSearchModel(onEvent: (e: DownloadEvent) => void) {
      record('pullSearchModel', []);
      if ([...searchJobs.values()].some((j) => !j.cancelled)) {
        throw fail('download.busy', 'The search model is already being downloaded.');
      }
      const jobId = nextJob++;
      const job = { cancelled: false };
      searchJobs.set(jobId, job);
      void (async () => {
        await sleep(0);
        onEvent({ type: 'started', jobId, catalogId: 'all-minilm-l6-v2', quant: 'F32', installedId: 'all-minilm-l6-v2', quantizeHere: false });
        for (let step = 1; step <= 10; step++) {
          await sleep(delay);
          if (job.cancelled) {
            searchJobs.delete(jobId);
            onEvent({ type: 'cancelled', jobId });
            return;
          }
          if (options.searchModelFailure && step === 5) {
            searchJobs.delete(jobId);
            onEvent({ type: 'failed', jobId, error: options.searchModelFailure });
            return;
          }
          const downloaded = Math.round((SEARCH_MODEL_BYTES * step) / 10);
          onEvent({
            type: 'progress',
            jobId,
            file: 'model.safetensors',
            downloaded,
            total: SEARCH_MODEL_BYTES,
            resumedFrom: 0,
            bytesPerSecond: 9_000_000,
            etaSeconds: (SEARCH_MODEL_BYTES - downloaded) / 9_000_000,
            retrying: 0,
          });
        }
        searchJobs.delete(jobId);
        searchModel = true;
        onEvent({ type: 'installed', jobId, installedId: 'all-minilm-l6-v2', folder: '/home/user/.local/share/hearth/models/all-minilm-l6-v2' });
      })();
      return later({ jobId, installedId: 'all-minilm-l6-v2', quant: 'F32' });
    },
    async cancelSearchModel(jobId) {
      record('cancelSearchModel', [jobId]);
      const j = searchJobs.get(jobId);
      if (j) j.cancelled = true;
      return later(undefined);
    },
    async askDocument(request, onEvent) {
      record('askDocument', [request]);
      const question = request.question.trim();
      if (!question) throw fail('ask.empty', 'Type a question first.');
      const d = get(request.documentId);
      const words = question.toLowerCase().match(/\p{L}{3,}/gu) ?? [];
      const found = d.passages.filter((p) => words.some((w) => p.text.toLowerCase().includes(w))).slice(0, 3);
      if (found.length === 0) {
        throw fail('ask.nothing_found', "No passage of the document contains the question's words. Try other words.");
      }
      const jobId = nextJob++;
      const job = { cancelled: false };
      jobs.set(jobId, job);
      const passages = found.map((passage, i) => ({ number: i + 1, score: 3 - i, passage, foundBy: 'keywords' }));
      const text = `It is in the document [1].`;
      void (async () => {
        let written = '';
        for (let at = 0; at < text.length; at += 6) {
          await sleep(delay);
          if (job.cancelled) break;
          written += text.slice(at, at + 6);
          onEvent({ type: 'delta', jobId, text: text.slice(at, at + 6) });
        }
        jobs.delete(jobId);
        const status = job.cancelled ? 'cancelled' : 'done';
        const event: AskEvent = { type: 'done', jobId, answer: { text: written, passages, cited: written.includes('[1]') ? [1] : [], status } };
        onEvent(event);
      })();
      return later({ jobId, passages });
    },
  };
}
