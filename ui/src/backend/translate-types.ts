/**
 * The translation view's shapes (they mirror `hearth_assistant::translate`'s serde types,
 * camelCase) and the part of the `Backend` that translates. Ranges are [start, end) in UTF-16
 * code units, as JavaScript indexes strings, so `text.slice(start, end)` is the block.
 */
import type { AppError } from './types';

/** A language code translation offers (`en`, `zh`, `fr`, `de`, `es`, `ja`, `ko`, `ru`, `it`, `pt`). */
export type LangCode = string;

export interface TranslateLanguage {
  code: LangCode;
  name: string;
  nativeName: string;
}

export interface Detection {
  language: LangCode;
  /** 0 (a guess) to 1 (certain). */
  confidence: number;
}

export type TextFormat = 'plain' | 'markdown';
export type ExportFormat = 'markdown' | 'text';
export type BlockKind =
  | 'heading'
  | 'paragraph'
  | 'listItem'
  | 'quote'
  | 'code'
  | 'table'
  | 'html'
  | 'rule'
  | 'reference'
  | 'frontMatter';

export interface GlossaryTerm {
  source: string;
  target: string;
}

export interface TranslateRequest {
  text: string;
  /** Null: detected from the text. */
  sourceLang: LangCode | null;
  targetLang: LangCode;
  format?: TextFormat | null;
  glossary?: GlossaryTerm[];
}

export interface ModelProfile {
  id: string;
  name: string;
  path: string;
  arch: string;
  parameters: number;
  family: string;
  languages: LangCode[];
  languagesFrom: string;
  contextLength: number;
}

export interface ModelChoice {
  model: ModelProfile;
  supportsPair: boolean;
  /** A sentence (English) saying which model and why. */
  reason: string;
}

export interface SourceSegment {
  index: number;
  kind: BlockKind;
  /** False for blocks copied as they are (code, tables, ...). */
  translate: boolean;
  range: [number, number];
}

export interface TranslationStarted {
  jobId: number;
  translationId: number;
  sourceLang: LangCode;
  detected: Detection | null;
  targetLang: LangCode;
  model: ModelChoice;
  format: TextFormat;
  segments: SourceSegment[];
}

export interface GlossaryIssue {
  segment: number;
  sourceTerm: string;
  expected: string;
}

export interface AlignedSegment {
  index: number;
  kind: BlockKind;
  translated: boolean;
  sourceRange: [number, number];
  targetRange: [number, number];
  sourceText: string;
  targetText: string;
}

export interface TranslationResult {
  translationId: number;
  sourceLang: LangCode;
  targetLang: LangCode;
  modelId: string;
  modelName: string;
  format: TextFormat;
  text: string;
  segments: AlignedSegment[];
  glossaryIssues: GlossaryIssue[];
  lostCode: number[];
  /** Blocks that came back in the source language even after a second request. */
  wrongLanguage: number[];
  stats: { requests: number; promptTokens: number; completionTokens: number; elapsedMs: number };
}

export type TranslateEvent =
  | { type: 'started'; jobId: number; translationId: number; total: number }
  | { type: 'progress'; jobId: number; segment: number; done: number; total: number }
  | { type: 'delta'; jobId: number; segment: number; text: string }
  /** The block's text so far is `text` again: a piece is asked for once more. */
  | { type: 'rewrite'; jobId: number; segment: number; text: string }
  | {
      type: 'segment';
      jobId: number;
      segment: number;
      translated: boolean;
      text: string;
      rendered: string;
      glossaryIssues: GlossaryIssue[];
    }
  | { type: 'done'; jobId: number; status: 'done' | 'cancelled'; result: TranslationResult }
  | { type: 'failed'; jobId: number; error: AppError; partial: TranslationResult | null };

export interface TranslationSummary {
  id: number;
  sourceLang: LangCode;
  targetLang: LangCode;
  modelId: string | null;
  status: string;
  sourcePreview: string;
  resultPreview: string;
  createdAt: number;
  updatedAt: number;
}

export interface TranslationRecord {
  id: number;
  sourceText: string;
  resultText: string;
  sourceLang: LangCode;
  targetLang: LangCode;
  modelId: string | null;
  status: string;
  error: string | null;
  format: TextFormat;
  /** Empty when the result's blocks no longer match the source's. */
  segments: AlignedSegment[];
  createdAt: number;
  updatedAt: number;
}

export interface GlossaryItem {
  id: number;
  sourceLang: LangCode;
  targetLang: LangCode;
  term: string;
  translation: string;
  note: string | null;
}

/** A document read for the source box. */
export interface DocumentText {
  name: string;
  text: string;
  format: TextFormat;
}

export interface TranslateBackend {
  translateLanguages(): Promise<TranslateLanguage[]>;
  /** Null when the text has no letters to tell its language by. */
  detectLanguage(text: string): Promise<Detection | null>;
  /** The model a translation of this pair would use. */
  translationModel(source: LangCode, target: LangCode): Promise<ModelChoice>;
  translate(request: TranslateRequest, onEvent: (event: TranslateEvent) => void): Promise<TranslationStarted>;
  cancelTranslation(jobId: number): Promise<void>;
  translations(limit: number, before?: number | null): Promise<TranslationSummary[]>;
  searchTranslations(query: string): Promise<TranslationSummary[]>;
  translation(id: number): Promise<TranslationRecord>;
  deleteTranslation(id: number): Promise<void>;
  /** Asks where to save, then writes; null when the user cancelled. */
  exportTranslation(id: number, format: ExportFormat, title: string): Promise<string | null>;
  glossary(source: LangCode, target: LangCode): Promise<GlossaryItem[]>;
  setGlossaryTerm(source: LangCode, target: LangCode, term: string, translation: string): Promise<GlossaryItem>;
  deleteGlossaryTerm(id: number): Promise<void>;
  /** The system picker for a document; null when the user cancels. */
  pickTranslateDocument(title: string): Promise<string | null>;
  readTranslateDocument(path: string): Promise<DocumentText>;
}
