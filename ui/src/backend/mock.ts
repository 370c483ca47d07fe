/**
 * An in-memory `Backend` with the same behaviour the app's commands have: conversations with
 * branching message trees, streamed replies that can be stopped, search with highlights,
 * installed models and settings. Component tests use it; so does the UI when it runs in a plain
 * browser (`npm run dev:ui`). Replies are produced by `options.reply` and streamed in chunks.
 */
import type {
  AppError,
  AppInfo,
  Backend,
  CatalogItem,
  ChatEvent,
  ConversationSummary,
  FileDropEvent,
  InstalledModel,
  MessageStatus,
  Preset,
  SearchHit,
  Settings,
  StartedJob,
  ThreadMessage,
} from './types';
import { DEFAULT_SAMPLING, DEFAULT_SYSTEM_PROMPT, NEW_CONVERSATION_TITLE } from './defaults';
import { createMockDownloads, type MockDownloadExtras, type MockDownloadOptions } from './mock-downloads';
import type { MachineCatalog, Recommendation } from './download-types';
import { createMockDocuments, type MockDocumentsOptions } from './mock-documents';
import { createMockTranslate, type MockTranslateExtras, type MockTranslateOptions } from './mock-translate';

export interface MockOptions {
  /** The reply to a question (default: a short Markdown answer that quotes it). */
  reply?: (question: string) => string;
  /** Milliseconds between streamed chunks (default 5). */
  chunkDelayMs?: number;
  /** Characters per streamed chunk (default 8). */
  chunkChars?: number;
  models?: InstalledModel[];
  settings?: Partial<Settings>;
  info?: Partial<AppInfo>;
  catalog?: CatalogItem[];
  /** Paths `pickFile` returns, in order (null: the user cancelled). */
  picks?: (string | null)[];
  /** The download part (see mock-downloads.ts). */
  downloads?: MockDownloadOptions & { catalog?: MachineCatalog; recommendation?: Recommendation };
  /** The translation part (see mock-translate.ts). */
  translate?: MockTranslateOptions;
  /** The documents part (see mock-documents.ts). */
  documents?: MockDocumentsOptions;
}

interface StoredMessage extends ThreadMessage {
  conversationId: number;
}

interface StoredConversation extends ConversationSummary {
  leaf: number | null;
}

const MOCK_NEW_TITLE = NEW_CONVERSATION_TITLE;

export const SAMPLE_CATALOG: CatalogItem[] = [
  {
    id: 'qwen2.5-0.5b-instruct',
    name: 'Qwen2.5 0.5B Instruct',
    architecture: 'qwen2',
    parameters: 494_032_768,
    contextLength: 32768,
    license: 'Apache-2.0',
    languages: ['en', 'zh', 'fr'],
    strengths: ['multilingual', 'fast'],
    description: 'A small multilingual model.',
    recommendedQuant: 'Q4_K_M',
    estimatedBytes: 300_000_000,
  },
  {
    id: 'smollm2-135m-instruct',
    name: 'SmolLM2 135M Instruct',
    architecture: 'llama',
    parameters: 134_515_008,
    contextLength: 8192,
    license: 'Apache-2.0',
    languages: ['en'],
    strengths: ['very fast on any computer'],
    description: "Hugging Face's smallest instruction-tuned model.",
    recommendedQuant: 'Q8_0',
    estimatedBytes: 142_922_196,
  },
];

export function defaultSettings(): Settings {
  return {
    threads: 0,
    theme: 'system',
    language: 'en',
    systemPrompt: DEFAULT_SYSTEM_PROMPT,
    sampling: { ...DEFAULT_SAMPLING },
    downloadEndpoint: null,
    documents: { maxFileMb: 200, maxPages: 2000, maxDecompressedMb: 512 },
    dataDir: '/home/user/.local/share/hearth',
  };
}

export function sampleModel(over: Partial<InstalledModel> = {}): InstalledModel {
  return {
    id: 'smollm2-135m-instruct-q4_1',
    name: 'SmolLM2 135M Instruct',
    path: '/models/smollm2-135m-instruct-q4_1.gguf',
    arch: 'llama',
    quant: 'Q4_1',
    sizeBytes: 98_362_432,
    contextLength: 8192,
    isDefault: true,
    available: true,
    ...over,
  };
}

function fail(code: string, message: string): AppError {
  return { code, message };
}

export interface MockBackend extends Backend, MockTranslateExtras, MockDownloadExtras {
  /** Simulates files dragged onto the window. */
  dropFiles(event: FileDropEvent): void;
  /** Calls made, as [method, args] (for assertions). */
  calls: [string, unknown[]][];
  /** Links passed to openLink. */
  openedLinks: string[];
}

export function createMockBackend(options: MockOptions = {}): MockBackend {
  const now = () => Date.now();
  let nextId = 1;
  const conversations = new Map<number, StoredConversation>();
  const messages = new Map<number, StoredMessage>();
  let models: InstalledModel[] = [...(options.models ?? [])];
  let settings: Settings = { ...defaultSettings(), ...options.settings };
  let presets: Preset[] = [];
  const picks = [...(options.picks ?? [])];
  const jobs = new Map<number, { cancelled: boolean }>();
  let nextJob = 1;
  const dropListeners = new Set<(e: FileDropEvent) => void>();
  const calls: [string, unknown[]][] = [];
  const openedLinks: string[] = [];
  const delay = options.chunkDelayMs ?? 5;
  const chunk = options.chunkChars ?? 8;
  const reply =
    options.reply ??
    ((q: string) =>
      `You asked: **${q}**\n\nHere is an example:\n\n\`\`\`python\nprint("hello")\n\`\`\`\n\nThat is all.`);

  const record = (name: string, args: unknown[]) => calls.push([name, args]);
  const later = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), 0));

  function conversation(id: number): StoredConversation {
    const c = conversations.get(id);
    if (!c) throw fail('store.not_found', 'That conversation no longer exists.');
    return c;
  }

  function children(conversationId: number, parentId: number | null): StoredMessage[] {
    return [...messages.values()]
      .filter((m) => m.conversationId === conversationId && m.parentId === parentId)
      .sort((a, b) => a.id - b.id);
  }

  function pathTo(leaf: number | null): StoredMessage[] {
    const path: StoredMessage[] = [];
    let at = leaf === null ? undefined : messages.get(leaf);
    while (at) {
      path.unshift(at);
      at = at.parentId === null ? undefined : messages.get(at.parentId);
    }
    return path;
  }

  function withSiblings(m: StoredMessage): ThreadMessage {
    const siblings = children(m.conversationId, m.parentId);
    const { conversationId: _c, ...rest } = m;
    return { ...rest, siblingIds: siblings.map((s) => s.id), siblingIndex: siblings.indexOf(m) };
  }

  function addMessage(
    conversationId: number,
    parentId: number | null,
    role: 'user' | 'assistant',
    content: string,
    status: MessageStatus,
  ): StoredMessage {
    const m: StoredMessage = {
      id: nextId++,
      conversationId,
      parentId,
      role,
      content,
      status,
      error: null,
      model: role === 'assistant' ? (models.find((x) => x.isDefault)?.id ?? null) : null,
      siblingIds: [],
      siblingIndex: 0,
      promptTokens: null,
      completionTokens: null,
      ttftMs: null,
      tokensPerSecond: null,
      createdAt: now(),
    };
    messages.set(m.id, m);
    return m;
  }

  function stream(answer: StoredMessage, question: string, onEvent: (e: ChatEvent) => void): StartedJob {
    const jobId = nextJob++;
    const job = { cancelled: false };
    jobs.set(jobId, job);
    const text = reply(question);
    const promptTokens = 20 + Math.ceil(question.length / 4);
    const started = now();
    let sent = 0;
    const finish = (status: 'done' | 'cancelled') => {
      const completionTokens = Math.ceil(answer.content.length / 4);
      answer.status = status;
      answer.promptTokens = promptTokens;
      answer.completionTokens = completionTokens;
      answer.ttftMs = 12;
      answer.tokensPerSecond = 42.5;
      jobs.delete(jobId);
      onEvent({
        type: 'done',
        jobId,
        status,
        stats: {
          promptTokens,
          completionTokens,
          ttftMs: 12,
          tokensPerSecond: 42.5,
          droppedMessages: 0,
        },
      });
    };
    const step = () => {
      if (job.cancelled) return finish('cancelled');
      if (sent >= text.length) return finish('done');
      const piece = text.slice(sent, sent + chunk);
      sent += piece.length;
      answer.content += piece;
      onEvent({ type: 'delta', jobId, text: piece });
      setTimeout(step, delay);
    };
    setTimeout(() => {
      onEvent({
        type: 'started',
        jobId,
        assistantMessageId: answer.id,
        promptTokens,
        droppedMessages: 0,
        contextLength: models.find((m) => m.isDefault)?.contextLength ?? 0,
      });
      void started;
      setTimeout(step, delay);
    }, 0);
    return { jobId, userMessageId: answer.parentId ?? 0, assistantMessageId: answer.id };
  }

  function requireModel() {
    if (!models.some((m) => m.isDefault)) {
      throw fail('models.none', 'No model is installed yet. Import a model file first.');
    }
  }

  const backend: MockBackend = {
    ...createMockTranslate({ hasModel: () => models.length > 0, ...options.translate }, record),
    ...createMockDocuments(options.documents ?? {}, record),
    ...createMockDownloads(
      options.downloads ?? {},
      {
        install(model) {
          models = [...models.filter((m) => m.id !== model.id), model];
          return { ...model };
        },
        hasDefault: () => models.some((m) => m.isDefault),
      },
      record,
    ),
    calls,
    openedLinks,
    dropFiles(event) {
      for (const l of dropListeners) l(event);
    },
    async appInfo() {
      record('appInfo', []);
      return later({
        version: '0.1.0',
        notice: null,
        startupError: null,
        dataDirNext: null,
        dataDirFromEnv: false,
        ...options.info,
      });
    },
    async conversations() {
      record('conversations', []);
      const list = [...conversations.values()]
        .sort((a, b) => b.updatedAt - a.updatedAt || b.id - a.id)
        .map(({ leaf: _l, ...c }) => c);
      return later(list);
    },
    async createConversation() {
      record('createConversation', []);
      const c: StoredConversation = {
        id: nextId++,
        title: MOCK_NEW_TITLE,
        createdAt: now(),
        updatedAt: now(),
        leaf: null,
      };
      conversations.set(c.id, c);
      const { leaf: _l, ...summary } = c;
      return later(summary);
    },
    async renameConversation(id, title) {
      record('renameConversation', [id, title]);
      if (!title.trim()) throw fail('chat.invalid_title', 'A title cannot be empty.');
      conversation(id).title = title.trim();
      return later(undefined);
    },
    async deleteConversation(id) {
      record('deleteConversation', [id]);
      conversations.delete(id);
      for (const m of [...messages.values()]) if (m.conversationId === id) messages.delete(m.id);
      return later(undefined);
    },
    async thread(id) {
      record('thread', [id]);
      return later(pathTo(conversation(id).leaf).map(withSiblings));
    },
    async selectBranch(messageId) {
      record('selectBranch', [messageId]);
      const m = messages.get(messageId);
      if (!m) throw fail('store.not_found', 'That message no longer exists.');
      let leaf = m;
      for (;;) {
        const kids = children(m.conversationId, leaf.id);
        if (kids.length === 0) break;
        leaf = kids[kids.length - 1];
      }
      conversation(m.conversationId).leaf = leaf.id;
      return later(undefined);
    },
    async search(query) {
      record('search', [query]);
      const q = query.trim().toLowerCase();
      if (!q) return later([]);
      const hits: SearchHit[] = [];
      for (const m of messages.values()) {
        const at = m.content.toLowerCase().indexOf(q);
        if (at < 0) continue;
        const c = conversations.get(m.conversationId);
        if (!c) continue;
        hits.push({
          conversationId: c.id,
          conversationTitle: c.title,
          messageId: m.id,
          role: m.role,
          snippet: m.content,
          highlights: [[at, at + q.length]],
          createdAt: m.createdAt,
        });
      }
      return later(hits.sort((a, b) => b.createdAt - a.createdAt));
    },
    async send(request, onEvent) {
      record('send', [request]);
      if (!request.text.trim()) throw fail('chat.empty', 'Type a message first.');
      requireModel();
      const c = conversation(request.conversationId);
      let parent = c.leaf;
      if (request.editOf != null) {
        const edited = messages.get(request.editOf);
        if (!edited || edited.role !== 'user') throw fail('chat.invalid_edit', 'Only a question can be edited.');
        parent = edited.parentId;
      }
      if (c.title === MOCK_NEW_TITLE && c.leaf === null) {
        c.title = request.text.split('\n')[0].slice(0, 48).trim();
      }
      const user = addMessage(c.id, parent, 'user', request.text.trimEnd(), 'done');
      const answer = addMessage(c.id, user.id, 'assistant', '', 'streaming');
      c.leaf = answer.id;
      c.updatedAt = now();
      return later(stream(answer, request.text, onEvent));
    },
    async regenerate(messageId, onEvent) {
      record('regenerate', [messageId]);
      requireModel();
      const old = messages.get(messageId);
      if (!old || old.role !== 'assistant' || old.parentId === null) {
        throw fail('chat.invalid_regenerate', 'Only an answer can be written again.');
      }
      const question = messages.get(old.parentId);
      const answer = addMessage(old.conversationId, old.parentId, 'assistant', '', 'streaming');
      conversation(old.conversationId).leaf = answer.id;
      return later(stream(answer, question?.content ?? '', onEvent));
    },
    async cancel(jobId) {
      record('cancel', [jobId]);
      const job = jobs.get(jobId);
      if (job) job.cancelled = true;
      return later(undefined);
    },
    async models() {
      record('models', []);
      return later(models.map((m) => ({ ...m })));
    },
    async importModel(path) {
      record('importModel', [path]);
      if (!path.toLowerCase().endsWith('.gguf')) {
        throw fail('engine.not_gguf', `${path} is not a GGUF model file.`);
      }
      const file = path.split(/[\\/]/).pop() ?? path;
      const id = file.replace(/\.gguf$/i, '');
      const existing = models.find((m) => m.id === id);
      if (existing) return later({ ...existing });
      const m = sampleModel({ id, name: id, path, isDefault: models.length === 0 });
      models.push(m);
      return later({ ...m });
    },
    async removeModel(id) {
      record('removeModel', [id]);
      const was = models.find((m) => m.id === id);
      models = models.filter((m) => m.id !== id);
      if (was?.isDefault && models.length > 0) models[0].isDefault = true;
      return later(undefined);
    },
    async setDefaultModel(id) {
      record('setDefaultModel', [id]);
      if (!models.some((m) => m.id === id)) throw fail('models.not_found', 'That model is not installed.');
      models = models.map((m) => ({ ...m, isDefault: m.id === id }));
      return later(undefined);
    },
    async settings() {
      record('settings', []);
      return later(structuredClone(settings));
    },
    async updateSettings(next) {
      record('updateSettings', [next]);
      if (next.downloadEndpoint && !/^https?:\/\//.test(next.downloadEndpoint)) {
        throw fail('settings.invalid', 'The download endpoint must be an http:// or https:// address.');
      }
      const d = next.documents;
      if (!(d.maxFileMb >= 1 && d.maxFileMb <= 16384)) {
        throw fail('settings.invalid', 'The largest document must be between 1 MB and 16,384 MB.');
      }
      if (!(d.maxPages >= 1 && d.maxPages <= 100000)) {
        throw fail('settings.invalid', 'The page limit must be between 1 and 100,000 pages.');
      }
      if (!(d.maxDecompressedMb >= 1 && d.maxDecompressedMb <= 65536)) {
        throw fail('settings.invalid', 'The decompression limit must be between 1 MB and 65,536 MB.');
      }
      settings = { ...structuredClone(next), dataDir: settings.dataDir };
      return later(structuredClone(settings));
    },
    async presets() {
      record('presets', []);
      return later(presets.map((p) => ({ ...p })));
    },
    async setPresets(next) {
      record('setPresets', [next]);
      presets = next.map((p) => ({ ...p }));
      return later(undefined);
    },
    async catalog() {
      record('catalog', []);
      return later(options.catalog ?? SAMPLE_CATALOG);
    },
    async pickFile(kind, title) {
      record('pickFile', [kind, title]);
      return later(picks.length > 0 ? (picks.shift() ?? null) : null);
    },
    async setDataFolder(path) {
      record('setDataFolder', [path]);
      options.info = { ...options.info, dataDirNext: path };
      return later(undefined);
    },
    async openLink(url) {
      record('openLink', [url]);
      openedLinks.push(url);
      return later(undefined);
    },
    async onFileDrop(listener) {
      dropListeners.add(listener);
      return () => dropListeners.delete(listener);
    },
  };
  return backend;
}
