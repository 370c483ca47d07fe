/**
 * The only module that calls Tauri's `invoke()`: one function per app command, named as in
 * src-tauri/src/commands.rs. Errors are rethrown as `AppError` ({code, message}); replies stream
 * through a `Channel`. Components never import this module: they receive a `Backend`.
 */
import { Channel, invoke, isTauri } from '@tauri-apps/api/core';
import { getCurrentWebview } from '@tauri-apps/api/webview';
import type {
  AppInfo,
  Backend,
  CatalogItem,
  ChatEvent,
  ConversationSummary,
  InstalledModel,
  Preset,
  SearchHit,
  Settings,
  StartedJob,
  ThreadMessage,
} from './types';
import { toAppError } from './types';
import type {
  DownloadBackend,
  DownloadEvent,
  MachineCatalog,
  PullStarted,
  Recommendation,
} from './download-types';
import type {
  Detection,
  DocumentText,
  GlossaryItem,
  ModelChoice,
  TranslateBackend,
  TranslateEvent,
  TranslateLanguage,
  TranslationRecord,
  TranslationStarted,
  TranslationSummary,
} from './translate-types';
import type {
  AddedDocument,
  AskEvent,
  AskStarted,
  DocumentInfo,
  DocumentsBackend,
  DocumentSummary,
  Passage,
  RetrievalStatus,
  SummarizeEvent,
  SummaryStarted,
} from './document-types';

/** Every command the UI calls (the permissions test checks each against the app's list). */
export const COMMANDS = [
  'app_info',
  'conversations_list',
  'conversation_create',
  'conversation_rename',
  'conversation_delete',
  'conversation_thread',
  'branch_select',
  'messages_search',
  'chat_send',
  'chat_regenerate',
  'chat_cancel',
  'models_list',
  'model_import',
  'model_remove',
  'model_set_default',
  'settings_get',
  'settings_update',
  'presets_get',
  'presets_set',
  'catalog_list',
  'file_pick',
  'data_folder_set',
  'link_open',
  'catalog_for_machine',
  'model_recommendation',
  'model_pull',
  'model_pull_pause',
  'model_pull_cancel',
  'translate_languages',
  'translate_detect',
  'translate_model',
  'translate',
  'translate_cancel',
  'translation_list',
  'translation_search',
  'translation_get',
  'translation_delete',
  'translation_export',
  'glossary_list',
  'glossary_set',
  'glossary_delete',
  'translate_document_pick',
  'translate_document_read',
  'documents_pick',
  'document_add',
  'documents_list',
  'document_delete',
  'document_summarize',
  'summary_resume',
  'document_cancel',
  'summaries_interrupted',
  'document_summaries',
  'passage_get',
  'document_ask',
  'retrieval_status',
  'search_model_pull',
] as const;

export type Command = (typeof COMMANDS)[number];

async function call<T>(command: Command, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    throw toAppError(e);
  }
}

function channel(onEvent: (event: ChatEvent) => void): Channel<ChatEvent> {
  const ch = new Channel<ChatEvent>();
  ch.onmessage = onEvent;
  return ch;
}

const translateBackend: TranslateBackend = {
  translateLanguages: () => call<TranslateLanguage[]>('translate_languages'),
  detectLanguage: (text) => call<Detection | null>('translate_detect', { text }),
  translationModel: (source, target) => call<ModelChoice>('translate_model', { source, target }),
  translate: (request, onEvent) => {
    const ch = new Channel<TranslateEvent>();
    ch.onmessage = onEvent;
    return call<TranslationStarted>('translate', { request, onEvent: ch });
  },
  cancelTranslation: (jobId) => call('translate_cancel', { jobId }),
  translations: (limit, before) => call<TranslationSummary[]>('translation_list', { limit, before: before ?? null }),
  searchTranslations: (query) => call<TranslationSummary[]>('translation_search', { query }),
  translation: (id) => call<TranslationRecord>('translation_get', { id }),
  deleteTranslation: (id) => call('translation_delete', { id }),
  exportTranslation: (id, format, title) => call<string | null>('translation_export', { id, format, title }),
  glossary: (source, target) => call<GlossaryItem[]>('glossary_list', { source, target }),
  setGlossaryTerm: (source, target, term, translation) =>
    call<GlossaryItem>('glossary_set', { source, target, term, translation, note: null }),
  deleteGlossaryTerm: (id) => call('glossary_delete', { id }),
  pickTranslateDocument: (title) => call<string | null>('translate_document_pick', { title }),
  readTranslateDocument: (path) => call<DocumentText>('translate_document_read', { path }),
};

const downloadBackend: DownloadBackend = {
  catalogForMachine: (context) => call<MachineCatalog>('catalog_for_machine', { context: context ?? null }),
  modelRecommendation: () => call<Recommendation>('model_recommendation'),
  pullModel: (request, onEvent) => {
    const ch = new Channel<DownloadEvent>();
    ch.onmessage = onEvent;
    return call<PullStarted>('model_pull', { request, onEvent: ch });
  },
  pausePull: (jobId) => call('model_pull_pause', { jobId }),
  cancelPull: (jobId) => call('model_pull_cancel', { jobId }),
};

function stream<E>(onEvent: (event: E) => void): Channel<E> {
  const ch = new Channel<E>();
  ch.onmessage = onEvent;
  return ch;
}

const documentsBackend: DocumentsBackend = {
  pickDocuments: (title) => call<string[] | null>('documents_pick', { title }),
  addDocument: (path) => call<AddedDocument>('document_add', { path }),
  documents: () => call<DocumentInfo[]>('documents_list'),
  deleteDocument: (id) => call('document_delete', { id }),
  summarize: (request, onEvent) =>
    call<SummaryStarted>('document_summarize', { request, onEvent: stream<SummarizeEvent>(onEvent) }),
  resumeSummary: (summaryId, onEvent) =>
    call<SummaryStarted>('summary_resume', { summaryId, onEvent: stream<SummarizeEvent>(onEvent) }),
  cancelDocumentJob: (jobId) => call('document_cancel', { jobId }),
  interruptedSummaries: () => call<DocumentSummary[]>('summaries_interrupted'),
  documentSummaries: (documentId) => call<DocumentSummary[]>('document_summaries', { documentId }),
  passage: (chunkId) => call<Passage>('passage_get', { chunkId }),
  askDocument: (request, onEvent) =>
    call<AskStarted>('document_ask', { request, onEvent: stream<AskEvent>(onEvent) }),
  retrievalStatus: (documentId) => call<RetrievalStatus>('retrieval_status', { documentId }),
  pullSearchModel: (onEvent) => call<PullStarted>('search_model_pull', { onEvent: stream<DownloadEvent>(onEvent) }),
  // The search model's download is one of the app's downloads: the same cancel.
  cancelSearchModel: (jobId) => call('model_pull_cancel', { jobId }),
};

export const tauriBackend: Backend = {
  ...translateBackend,
  ...documentsBackend,
  ...downloadBackend,
  appInfo: () => call<AppInfo>('app_info'),
  conversations: () => call<ConversationSummary[]>('conversations_list'),
  createConversation: () => call<ConversationSummary>('conversation_create'),
  renameConversation: (id, title) => call('conversation_rename', { id, title }),
  deleteConversation: (id) => call('conversation_delete', { id }),
  thread: (id) => call<ThreadMessage[]>('conversation_thread', { id }),
  selectBranch: (messageId) => call('branch_select', { messageId }),
  search: (query) => call<SearchHit[]>('messages_search', { query }),
  send: (request, onEvent) => call<StartedJob>('chat_send', { request, onEvent: channel(onEvent) }),
  regenerate: (messageId, onEvent) =>
    call<StartedJob>('chat_regenerate', { messageId, onEvent: channel(onEvent) }),
  cancel: (jobId) => call('chat_cancel', { jobId }),
  models: () => call<InstalledModel[]>('models_list'),
  importModel: (path) => call<InstalledModel>('model_import', { path }),
  removeModel: (id) => call('model_remove', { id }),
  setDefaultModel: (id) => call('model_set_default', { id }),
  settings: () => call<Settings>('settings_get'),
  updateSettings: (settings) => call<Settings>('settings_update', { settings }),
  presets: () => call<Preset[]>('presets_get'),
  setPresets: (presets) => call('presets_set', { presets }),
  catalog: () => call<CatalogItem[]>('catalog_list'),
  pickFile: (kind, title) => call<string | null>('file_pick', { kind, title }),
  setDataFolder: (path) => call('data_folder_set', { path }),
  openLink: (url) => call('link_open', { url }),
  onFileDrop: async (listener) => {
    const unlisten = await getCurrentWebview().onDragDropEvent((event) => {
      const p = event.payload;
      if (p.type === 'enter') listener({ type: 'hover', paths: p.paths });
      else if (p.type === 'drop') listener({ type: 'drop', paths: p.paths });
      else if (p.type === 'leave') listener({ type: 'cancel' });
    });
    return unlisten;
  },
};

/** True inside the desktop app (false in a plain browser, where the mock backend is used). */
export function inTauri(): boolean {
  return isTauri();
}
