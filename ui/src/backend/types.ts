/**
 * The shapes that cross between the UI and the app (they mirror hearth-assistant's serde types,
 * camelCase) and the `Backend` interface every component talks to. `ipc.ts` implements it over
 * Tauri; `mock.ts` implements it in memory for tests and for running the UI in a browser.
 */
import type { DocumentsBackend } from './document-types';
import type { DownloadBackend } from './download-types';
import type { TranslateBackend } from './translate-types';

/** Every failure the backend reports: components branch on `code` and show `message`. */
export interface AppError {
  code: string;
  message: string;
}

export interface AppInfo {
  version: string;
  notice: string | null;
  startupError: AppError | null;
  /** The data folder chosen for the next start, if one was chosen. */
  dataDirNext: string | null;
  /** $HEARTH_DATA_DIR decides the data folder (the choice in Settings is then ignored). */
  dataDirFromEnv: boolean;
}

export interface ConversationSummary {
  id: number;
  title: string;
  createdAt: number;
  updatedAt: number;
}

export type MessageStatus = 'streaming' | 'done' | 'cancelled' | 'failed';

export interface ThreadMessage {
  id: number;
  parentId: number | null;
  role: 'user' | 'assistant' | 'system';
  content: string;
  status: MessageStatus;
  error: string | null;
  model: string | null;
  /** This message and its alternatives (edits or regenerations), oldest first. */
  siblingIds: number[];
  siblingIndex: number;
  promptTokens: number | null;
  completionTokens: number | null;
  ttftMs: number | null;
  tokensPerSecond: number | null;
  createdAt: number;
}

export interface SearchHit {
  conversationId: number;
  conversationTitle: string;
  messageId: number;
  role: string;
  snippet: string;
  /** [start, end) in UTF-16 code units of `snippet`. */
  highlights: [number, number][];
  createdAt: number;
}

export interface SamplingSettings {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  maxTokens: number;
  seed: number | null;
}

export type ThemeChoice = 'system' | 'light' | 'dark';
export type Language = 'en' | 'zh-CN';

/** Limits on the documents the user adds (Settings → Documents). */
export interface DocumentLimits {
  /** Largest file, in MB. */
  maxFileMb: number;
  /** Most pages of a PDF. */
  maxPages: number;
  /** Most data decompressing one document may produce, in MB. */
  maxDecompressedMb: number;
}

export interface Settings {
  threads: number;
  theme: ThemeChoice;
  language: Language;
  systemPrompt: string;
  sampling: SamplingSettings;
  downloadEndpoint: string | null;
  documents: DocumentLimits;
  /** The data folder in use (read only). */
  dataDir: string;
}

export interface InstalledModel {
  id: string;
  name: string;
  path: string;
  arch: string | null;
  quant: string | null;
  sizeBytes: number;
  contextLength: number | null;
  isDefault: boolean;
  available: boolean;
}

export interface SendRequest {
  conversationId: number;
  text: string;
  /** A user message to edit: the new text becomes its sibling (a branch). */
  editOf?: number | null;
}

export interface StartedJob {
  jobId: number;
  userMessageId: number;
  assistantMessageId: number;
}

export interface ReplyStats {
  promptTokens: number;
  completionTokens: number;
  ttftMs: number;
  tokensPerSecond: number;
  droppedMessages: number;
}

export type ChatEvent =
  | {
      type: 'started';
      jobId: number;
      assistantMessageId: number;
      promptTokens: number;
      droppedMessages: number;
      contextLength: number;
    }
  | { type: 'delta'; jobId: number; text: string }
  | { type: 'done'; jobId: number; status: 'done' | 'cancelled'; stats: ReplyStats }
  | { type: 'failed'; jobId: number; error: AppError };

/** One model of the curated catalog. */
export interface CatalogItem {
  id: string;
  name: string;
  architecture: string;
  parameters: number;
  contextLength: number;
  license: string;
  /** ISO 639-1 codes. */
  languages: string[];
  strengths: string[];
  description: string;
  recommendedQuant: string;
  estimatedBytes: number;
}

export interface Preset {
  name: string;
  prompt: string;
}

export type PickKind = 'model' | 'folder';

export type FileDropEvent =
  | { type: 'hover'; paths: string[] }
  | { type: 'drop'; paths: string[] }
  | { type: 'cancel' };

export interface Backend extends TranslateBackend, DownloadBackend, DocumentsBackend {
  appInfo(): Promise<AppInfo>;
  conversations(): Promise<ConversationSummary[]>;
  createConversation(): Promise<ConversationSummary>;
  renameConversation(id: number, title: string): Promise<void>;
  deleteConversation(id: number): Promise<void>;
  thread(conversationId: number): Promise<ThreadMessage[]>;
  selectBranch(messageId: number): Promise<void>;
  search(query: string): Promise<SearchHit[]>;
  send(request: SendRequest, onEvent: (event: ChatEvent) => void): Promise<StartedJob>;
  regenerate(assistantMessageId: number, onEvent: (event: ChatEvent) => void): Promise<StartedJob>;
  cancel(jobId: number): Promise<void>;
  models(): Promise<InstalledModel[]>;
  importModel(path: string): Promise<InstalledModel>;
  removeModel(id: string): Promise<void>;
  setDefaultModel(id: string): Promise<void>;
  settings(): Promise<Settings>;
  updateSettings(settings: Settings): Promise<Settings>;
  presets(): Promise<Preset[]>;
  setPresets(presets: Preset[]): Promise<void>;
  /** The curated catalog of models. */
  catalog(): Promise<CatalogItem[]>;
  /** The system picker; null when the user cancels. */
  pickFile(kind: PickKind, title: string): Promise<string | null>;
  /** The data folder for the next start (null: the default). */
  setDataFolder(path: string | null): Promise<void>;
  /** Opens a web or mail link in the system browser. */
  openLink(url: string): Promise<void>;
  /** Files dragged onto the window; returns a function that stops listening. */
  onFileDrop(listener: (event: FileDropEvent) => void): Promise<() => void>;
}

export function isAppError(e: unknown): e is AppError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as AppError).code === 'string' &&
    typeof (e as AppError).message === 'string'
  );
}

/** Any thrown value as an AppError (Tauri's own failures arrive as plain strings). */
export function toAppError(e: unknown): AppError {
  if (isAppError(e)) return e;
  if (typeof e === 'string') return { code: 'ipc', message: e };
  if (e instanceof Error) return { code: 'ipc', message: e.message };
  return { code: 'ipc', message: String(e) };
}
