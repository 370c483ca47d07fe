/**
 * The translating part of the in-memory mock backend (see `mock.ts`), behaving as the app's
 * commands do: a translation starts with the source's blocks (paragraphs; Markdown headings,
 * list items and code fences, code copied untouched), then streams per block `progress`,
 * `delta`s and `segment`, then `done` (or `cancelled` when stopped); the stored glossary of the
 * pair is checked and terms whose required translation did not come out are reported. History,
 * search, export and the glossary live in memory.
 *
 * The "translation" of a block is `options.translateBlock(text, target)`, by default the
 * target's code and the text (`zh: Hello.`), which keeps source terms as they are: a glossary
 * term then comes out untranslated and is flagged, as with a model that ignored it. A block whose
 * "translation" is its own text is reported in `wrongLanguage`, as the app reports a block the
 * model answered in the source language.
 */
import type { AppError } from './types';
import type {
  AlignedSegment,
  BlockKind,
  Detection,
  DocumentText,
  ExportFormat,
  GlossaryIssue,
  GlossaryItem,
  ModelChoice,
  TranslateBackend,
  TranslateEvent,
  TranslateLanguage,
  TranslationRecord,
  TranslationSummary,
} from './translate-types';

export interface MockTranslateOptions {
  translateBlock?: (text: string, target: string) => string;
  /** Milliseconds between streamed chunks (default 5). */
  chunkDelayMs?: number;
  /** Characters per streamed chunk (default 8). */
  chunkChars?: number;
  /** Documents `readTranslateDocument` knows, by path. */
  documents?: Record<string, DocumentText>;
  /** Paths `pickTranslateDocument` returns, in order (null: cancelled). */
  documentPicks?: (string | null)[];
  /** Paths `exportTranslation` "saves" to, in order (null: cancelled). */
  exportPicks?: (string | null)[];
  /** Whether a model is installed (default: true). */
  hasModel?: () => boolean;
}

export interface MockTranslateExtras {
  /** Files written by exportTranslation: path → content. */
  exported: Map<string, string>;
}

export const MOCK_LANGUAGES: TranslateLanguage[] = [
  { code: 'en', name: 'English', nativeName: 'English' },
  { code: 'zh', name: 'Chinese', nativeName: '中文' },
  { code: 'fr', name: 'French', nativeName: 'Français' },
  { code: 'de', name: 'German', nativeName: 'Deutsch' },
  { code: 'es', name: 'Spanish', nativeName: 'Español' },
  { code: 'ja', name: 'Japanese', nativeName: '日本語' },
  { code: 'ko', name: 'Korean', nativeName: '한국어' },
  { code: 'ru', name: 'Russian', nativeName: 'Русский' },
  { code: 'it', name: 'Italian', nativeName: 'Italiano' },
  { code: 'pt', name: 'Portuguese', nativeName: 'Português' },
];

const fail = (code: string, message: string): AppError => ({ code, message });

/** Detection as the mock does it: Han → zh, kana → ja, hangul → ko, Cyrillic → ru, Latin → en. */
export function mockDetect(text: string): Detection | null {
  if (/[\u3040-\u30ff]/.test(text)) return { language: 'ja', confidence: 0.9 };
  if (/[\uac00-\ud7af]/.test(text)) return { language: 'ko', confidence: 0.9 };
  if (/[\u4e00-\u9fff]/.test(text)) return { language: 'zh', confidence: 0.95 };
  if (/[\u0400-\u04ff]/.test(text)) return { language: 'ru', confidence: 0.9 };
  if (/\p{L}/u.test(text)) return { language: 'en', confidence: text.length > 20 ? 0.9 : 0.5 };
  return null;
}

interface Block {
  kind: BlockKind;
  range: [number, number];
  /** The text to translate (markup taken off); null: copied as it is. */
  text: string | null;
  /** Markup put back before the translated text. */
  prefix: string;
}

/** Blocks separated by blank lines; headings, list items and fenced code recognised. */
export function mockBlocks(source: string): Block[] {
  const blocks: Block[] = [];
  const lines = source.split('\n');
  let at = 0;
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      at += line.length + 1;
      i++;
      continue;
    }
    const start = at;
    if (line.startsWith('```')) {
      let j = i + 1;
      while (j < lines.length && !lines[j].startsWith('```')) j++;
      const last = Math.min(j, lines.length - 1);
      for (let k = i; k <= last; k++) at += lines[k].length + 1;
      i = last + 1;
      const end = Math.min(at - 1, source.length);
      blocks.push({ kind: 'code', range: [start, end], text: null, prefix: '' });
      continue;
    }
    let j = i;
    while (j < lines.length && lines[j].trim() && !(j > i && lines[j].startsWith('```'))) {
      at += lines[j].length + 1;
      j++;
    }
    i = j;
    const end = Math.min(at - 1, source.length);
    const body = source.slice(start, end);
    const heading = /^(#{1,6} )/.exec(body);
    const item = /^([-*] |\d+\. )/.exec(body);
    if (heading) blocks.push({ kind: 'heading', range: [start, end], text: body.slice(heading[1].length), prefix: heading[1] });
    else if (item) blocks.push({ kind: 'listItem', range: [start, end], text: body.slice(item[1].length), prefix: item[1] });
    else blocks.push({ kind: 'paragraph', range: [start, end], text: body, prefix: '' });
  }
  return blocks;
}

interface Stored {
  id: number;
  sourceText: string;
  resultText: string;
  sourceLang: string;
  targetLang: string;
  status: string;
  segments: AlignedSegment[];
  createdAt: number;
}

const preview = (s: string) => {
  const one = s.split(/\s+/).filter(Boolean).join(' ');
  return one.length > 120 ? `${one.slice(0, 120)}…` : one;
};

export function createMockTranslate(
  options: MockTranslateOptions,
  record: (name: string, args: unknown[]) => void,
): TranslateBackend & MockTranslateExtras {
  const delay = options.chunkDelayMs ?? 5;
  const chunk = options.chunkChars ?? 8;
  const translateBlock = options.translateBlock ?? ((text: string, target: string) => `${target}: ${text}`);
  const hasModel = options.hasModel ?? (() => true);
  const stored = new Map<number, Stored>();
  const glossary: GlossaryItem[] = [];
  const jobs = new Map<number, { cancelled: boolean }>();
  const documentPicks = [...(options.documentPicks ?? [])];
  const exportPicks = [...(options.exportPicks ?? [])];
  const exported = new Map<string, string>();
  let nextId = 1;
  let nextGlossary = 1;
  let nextJob = 1000;
  let clock = 0;
  const later = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), 0));
  const known = (code: string) => MOCK_LANGUAGES.some((l) => l.code === code);
  const summary = (t: Stored): TranslationSummary => ({
    id: t.id,
    sourceLang: t.sourceLang,
    targetLang: t.targetLang,
    modelId: 'qwen2.5-0.5b-instruct-q4_k_m',
    status: t.status,
    sourcePreview: preview(t.sourceText),
    resultPreview: preview(t.resultText),
    createdAt: t.createdAt,
    updatedAt: t.createdAt,
  });
  const choice = (source: string, target: string): ModelChoice => ({
    model: {
      id: 'qwen2.5-0.5b-instruct-q4_k_m',
      name: 'Qwen2.5 0.5B Instruct',
      path: '/models/qwen2.5-0.5b-instruct-q4_k_m.gguf',
      arch: 'qwen2',
      parameters: 494_032_768,
      family: 'qwen',
      languages: MOCK_LANGUAGES.map((l) => l.code),
      languagesFrom: 'catalog:qwen2.5-0.5b-instruct',
      contextLength: 32768,
    },
    supportsPair: true,
    reason: `Qwen2.5 0.5B Instruct handles ${source} and ${target}`,
  });
  const requireModel = () => {
    if (!hasModel()) throw fail('models.none', 'No model is installed yet. Add a model file in Models first.');
  };

  return {
    exported,
    async translateLanguages() {
      record('translateLanguages', []);
      return later(MOCK_LANGUAGES.map((l) => ({ ...l })));
    },
    async detectLanguage(text) {
      record('detectLanguage', [text]);
      return later(mockDetect(text));
    },
    async translationModel(source, target) {
      record('translationModel', [source, target]);
      requireModel();
      return later(choice(source, target));
    },
    async translate(request, onEvent) {
      record('translate', [request]);
      const text = request.text;
      if (!text.trim()) throw fail('translate.empty', 'There is nothing to translate.');
      if (!known(request.targetLang)) {
        throw fail('translate.unsupported_language', `The target language '${request.targetLang}' is not one Hearth translates.`);
      }
      requireModel();
      const detected = request.sourceLang ? null : mockDetect(text);
      const source = request.sourceLang ?? detected?.language;
      if (!source) {
        throw fail('translate.undetected_language', 'The text has no words to tell its language by. Choose the source language.');
      }
      const target = request.targetLang;
      const blocks = mockBlocks(text);
      const terms = [
        ...(request.glossary ?? []),
        ...glossary
          .filter((g) => g.sourceLang === source && g.targetLang === target)
          .map((g) => ({ source: g.term, target: g.translation })),
      ];
      const id = nextId++;
      const entry: Stored = {
        id,
        sourceText: text,
        resultText: '',
        sourceLang: source,
        targetLang: target,
        status: 'running',
        segments: [],
        createdAt: ++clock,
      };
      stored.set(id, entry);
      const jobId = nextJob++;
      const job = { cancelled: false };
      jobs.set(jobId, job);
      const total = blocks.filter((b) => b.text !== null).length;
      const issues: GlossaryIssue[] = [];
      const wrongLanguage: number[] = [];
      let result = '';
      const segments: AlignedSegment[] = [];
      let done = 0;
      let b = 0;

      const finish = (status: 'done' | 'cancelled') => {
        jobs.delete(jobId);
        entry.status = status;
        entry.resultText = result;
        entry.segments = segments;
        onEvent({
          type: 'done',
          jobId,
          status,
          result: {
            translationId: id,
            sourceLang: source,
            targetLang: target,
            modelId: 'qwen2.5-0.5b-instruct-q4_k_m',
            modelName: 'Qwen2.5 0.5B Instruct',
            format: request.format ?? 'plain',
            text: result,
            segments,
            glossaryIssues: issues,
            lostCode: [],
            wrongLanguage,
            stats: { requests: total, promptTokens: text.length, completionTokens: result.length, elapsedMs: 10 },
          },
        });
      };
      const addBlock = (i: number, translatedText: string, translated: boolean, blockIssues: GlossaryIssue[]) => {
        const blk = blocks[i];
        const spacing = result ? '\n\n' : '';
        const body = blk.prefix + translatedText;
        const start = result.length + spacing.length;
        result += spacing + body;
        segments.push({
          index: i,
          kind: blk.kind,
          translated,
          sourceRange: blk.range,
          targetRange: [start, start + body.length],
          sourceText: text.slice(blk.range[0], blk.range[1]),
          targetText: body,
        });
        onEvent({ type: 'segment', jobId, segment: i, translated, text: translatedText, rendered: spacing + body, glossaryIssues: blockIssues });
      };
      const nextBlock = () => {
        if (job.cancelled) return finish('cancelled');
        if (b >= blocks.length) return finish('done');
        const i = b++;
        const blk = blocks[i];
        if (blk.text === null) {
          addBlock(i, text.slice(blk.range[0], blk.range[1]), false, []);
          return setTimeout(nextBlock, delay);
        }
        onEvent({ type: 'progress', jobId, segment: i, done, total });
        const out = translateBlock(blk.text, target);
        let sent = 0;
        const step = () => {
          if (job.cancelled) return finish('cancelled');
          if (sent < out.length) {
            const piece = out.slice(sent, sent + chunk);
            sent += piece.length;
            onEvent({ type: 'delta', jobId, segment: i, text: piece });
            setTimeout(step, delay);
            return;
          }
          const blockIssues = terms
            .filter((g) => blk.text!.toLowerCase().includes(g.source.toLowerCase()))
            .filter((g) => !out.toLowerCase().includes(g.target.toLowerCase()))
            .map((g) => ({ segment: i, sourceTerm: g.source, expected: g.target }));
          issues.push(...blockIssues);
          if (source !== target && out.trim() === blk.text!.trim()) wrongLanguage.push(i);
          done++;
          addBlock(i, out, true, blockIssues);
          setTimeout(nextBlock, delay);
        };
        setTimeout(step, delay);
      };
      setTimeout(() => {
        onEvent({ type: 'started', jobId, translationId: id, total } as TranslateEvent);
        setTimeout(nextBlock, delay);
      }, 0);
      return later({
        jobId,
        translationId: id,
        sourceLang: source,
        detected,
        targetLang: target,
        model: choice(source, target),
        format: request.format ?? 'plain',
        segments: blocks.map((blk, i) => ({ index: i, kind: blk.kind, translate: blk.text !== null, range: blk.range })),
      });
    },
    async cancelTranslation(jobId) {
      record('cancelTranslation', [jobId]);
      const job = jobs.get(jobId);
      if (job) job.cancelled = true;
      return later(undefined);
    },
    async translations(limit, before) {
      record('translations', [limit, before]);
      const list = [...stored.values()]
        .filter((t) => before == null || t.id < before)
        .sort((a, b) => b.id - a.id)
        .slice(0, limit)
        .map(summary);
      return later(list);
    },
    async searchTranslations(query) {
      record('searchTranslations', [query]);
      const words = query.toLowerCase().split(/\s+/).filter(Boolean);
      if (words.length === 0) return later([]);
      const list = [...stored.values()]
        .filter((t) => {
          const hay = `${t.sourceText}\n${t.resultText}`.toLowerCase();
          return words.every((w) => hay.includes(w));
        })
        .sort((a, b) => b.id - a.id)
        .map(summary);
      return later(list);
    },
    async translation(id) {
      record('translation', [id]);
      const t = stored.get(id);
      if (!t) throw fail('store.not_found', 'That translation no longer exists.');
      const rec: TranslationRecord = {
        id: t.id,
        sourceText: t.sourceText,
        resultText: t.resultText,
        sourceLang: t.sourceLang,
        targetLang: t.targetLang,
        modelId: 'qwen2.5-0.5b-instruct-q4_k_m',
        status: t.status,
        error: null,
        format: 'plain',
        segments: t.segments.map((s) => ({ ...s })),
        createdAt: t.createdAt,
        updatedAt: t.createdAt,
      };
      return later(rec);
    },
    async deleteTranslation(id) {
      record('deleteTranslation', [id]);
      stored.delete(id);
      return later(undefined);
    },
    async exportTranslation(id, format: ExportFormat, title) {
      record('exportTranslation', [id, format, title]);
      const t = stored.get(id);
      if (!t) throw fail('store.not_found', 'That translation no longer exists.');
      const path = exportPicks.length > 0 ? (exportPicks.shift() ?? null) : null;
      if (path === null) return later(null);
      const text = format === 'text' ? t.resultText.replace(/^#{1,6} /gm, '') : t.resultText;
      exported.set(path, text);
      return later(path);
    },
    async glossary(source, target) {
      record('glossary', [source, target]);
      return later(
        glossary
          .filter((g) => g.sourceLang === source && g.targetLang === target)
          .sort((a, b) => a.term.localeCompare(b.term))
          .map((g) => ({ ...g })),
      );
    },
    async setGlossaryTerm(source, target, term, translation) {
      record('setGlossaryTerm', [source, target, term, translation]);
      if (!term.trim() || !translation.trim()) {
        throw fail('translate.invalid_glossary', 'A glossary entry needs a term and its translation.');
      }
      const existing = glossary.find((g) => g.sourceLang === source && g.targetLang === target && g.term === term.trim());
      if (existing) {
        existing.translation = translation.trim();
        return later({ ...existing });
      }
      const item: GlossaryItem = {
        id: nextGlossary++,
        sourceLang: source,
        targetLang: target,
        term: term.trim(),
        translation: translation.trim(),
        note: null,
      };
      glossary.push(item);
      return later({ ...item });
    },
    async deleteGlossaryTerm(id) {
      record('deleteGlossaryTerm', [id]);
      const at = glossary.findIndex((g) => g.id === id);
      if (at >= 0) glossary.splice(at, 1);
      return later(undefined);
    },
    async pickTranslateDocument(title) {
      record('pickTranslateDocument', [title]);
      return later(documentPicks.length > 0 ? (documentPicks.shift() ?? null) : null);
    },
    async readTranslateDocument(path) {
      record('readTranslateDocument', [path]);
      const doc = options.documents?.[path];
      if (!doc) throw fail('translate.document_unreadable', `Cannot open ${path}: No such file or directory`);
      return later({ ...doc });
    },
  };
}
