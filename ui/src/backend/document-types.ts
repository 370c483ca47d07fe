/**
 * The Documents view's shapes (they mirror `hearth_assistant`'s documents, summarize and ask
 * serde types, camelCase) and the part of the `Backend` that adds, summarizes and questions
 * documents. Citations are mechanical: chunk ids with their pages (PDF) or section headings.
 */
import type { AppError } from './types';
import type { DownloadEvent, PullStarted } from './download-types';

export interface DocumentInfo {
  id: number;
  name: string;
  /** `pdf`, `docx`, `odt`, `epub`, `html`, `markdown` or `text`. */
  kind: string;
  pages: number | null;
  chunks: number;
  sha256: string;
  path: string;
  addedAt: number;
  /** Status of the newest summary (`running`, `done`, `cancelled`, `failed`), if any. */
  summaryStatus: string | null;
}

export interface AddedDocument {
  document: DocumentInfo;
  /** The same content was added before: that document is returned. */
  alreadyKnown: boolean;
}

/** One chunk of a document: what a citation opens. */
export interface Passage {
  chunkId: number;
  documentId: number;
  ordinal: number;
  pageStart: number | null;
  pageEnd: number | null;
  section: string | null;
  text: string;
  tokenCount: number;
}

export type SummaryLength = 'short' | 'medium' | 'long';
export type SummaryStage = 'map' | 'reduce' | 'final';

export interface SummarizeRequest {
  documentId: number;
  length: SummaryLength;
  /** Null: the document's language. */
  language: string | null;
  /** First and last PDF page, inclusive; null: all of it. */
  pages: [number, number] | null;
  restart?: boolean;
}

export interface PageRange {
  start: number;
  end: number;
}

export interface Citation {
  chunkIds: number[];
  chunkOrdinals: number[];
  pages: PageRange[];
  sections: string[];
}

export interface KeyPoint {
  text: string;
  partId: number;
  cites: Citation;
}

export interface PartInfo {
  id: number;
  level: number;
  ordinal: number;
  text: string;
  cites: Citation;
}

export interface DocumentSummary {
  summaryId: number;
  documentId: number;
  modelId: string;
  /** `running`, `done`, `cancelled` or `failed`. */
  status: string;
  error: string | null;
  length: SummaryLength;
  language: string;
  pages: [number, number] | null;
  text: string;
  keyPoints: KeyPoint[];
  cites: Citation;
  chunksTotal: number;
  chunksSummarized: number;
  parts: PartInfo[];
  createdAt: number;
  updatedAt: number;
}

export interface SummaryStarted {
  jobId: number;
  summaryId: number;
  documentId: number;
  modelId: string;
  chunks: number;
  resumedParts: number;
}

export type SummarizeEvent =
  | { type: 'started'; jobId: number; summaryId: number; chunks: number; resumedParts: number }
  | {
      type: 'progress';
      jobId: number;
      stage: SummaryStage;
      level: number;
      done: number;
      total: number;
      etaMs: number | null;
    }
  | { type: 'part'; jobId: number; part: PartInfo; resumed: boolean }
  | { type: 'delta'; jobId: number; text: string }
  | { type: 'done'; jobId: number; status: string; summary: DocumentSummary }
  | { type: 'failed'; jobId: number; error: AppError };

export interface AskRequest {
  documentId: number;
  question: string;
}

/** A passage an answer may rest on, numbered as `[n]` in the answer. */
export interface Source {
  number: number;
  score: number;
  passage: Passage;
  /** How retrieval found it: `keywords` (BM25), `meaning` (embeddings) or `both`. */
  foundBy?: string;
}

export interface Answer {
  text: string;
  passages: Source[];
  /** The numbers the answer cites, in order of first mention. */
  cited: number[];
  status: string;
}

export interface AskStarted {
  jobId: number;
  passages: Source[];
}

export type AskEvent =
  | { type: 'delta'; jobId: number; text: string }
  | { type: 'done'; jobId: number; answer: Answer }
  | { type: 'failed'; jobId: number; error: AppError };

/** How a document's passages are found for questions. */
export interface RetrievalStatus {
  /** `hybrid`: by words and by meaning; `keywords`: by words only. */
  method: 'hybrid' | 'keywords';
  /** The search model (finds passages by meaning) is installed. */
  modelInstalled: boolean;
  embeddedChunks: number;
  totalChunks: number;
  /** English; the UI writes its own sentence from the fields above. */
  note: string | null;
}

export interface DocumentsBackend {
  /** The system picker for documents to add; null when the user cancels. */
  pickDocuments(title: string): Promise<string[] | null>;
  /** Reads and stores a document (errors: `documents.*`; the list is then unchanged). */
  addDocument(path: string): Promise<AddedDocument>;
  /** Newest first. */
  documents(): Promise<DocumentInfo[]>;
  deleteDocument(id: number): Promise<void>;
  summarize(request: SummarizeRequest, onEvent: (event: SummarizeEvent) => void): Promise<SummaryStarted>;
  resumeSummary(summaryId: number, onEvent: (event: SummarizeEvent) => void): Promise<SummaryStarted>;
  /** Stops a summary or an answer. */
  cancelDocumentJob(jobId: number): Promise<void>;
  /** Summaries a previous run of the app left unfinished. */
  interruptedSummaries(): Promise<DocumentSummary[]>;
  /** Oldest first. */
  documentSummaries(documentId: number): Promise<DocumentSummary[]>;
  passage(chunkId: number): Promise<Passage>;
  askDocument(request: AskRequest, onEvent: (event: AskEvent) => void): Promise<AskStarted>;
  retrievalStatus(documentId: number): Promise<RetrievalStatus>;
  /** Downloads the search model; events end with `installed`, `cancelled` or `failed`. */
  pullSearchModel(onEvent: (event: DownloadEvent) => void): Promise<PullStarted>;
  /** Stops a search model download and deletes what it had downloaded. */
  cancelSearchModel(jobId: number): Promise<void>;
}
