import { clearMocks, mockIPC, mockWindows } from '@tauri-apps/api/mocks';
import type { Channel } from '@tauri-apps/api/core';
import { emit } from '@tauri-apps/api/event';
import { afterEach, describe, expect, it } from 'vitest';
import { COMMANDS, tauriBackend } from './ipc';
import type { ChatEvent, SendRequest } from './types';

afterEach(() => clearMocks());

describe('ipc', () => {
  it('calls each app command with the argument names the Rust side expects', async () => {
    const seen: [string, Record<string, unknown>][] = [];
    mockIPC((cmd, payload) => {
      seen.push([cmd, (payload ?? {}) as Record<string, unknown>]);
      if (cmd === 'chat_send' || cmd === 'chat_regenerate') return { jobId: 7, userMessageId: 1, assistantMessageId: 2 };
      return null;
    });
    const b = tauriBackend;
    const req: SendRequest = { conversationId: 3, text: 'hi', editOf: null };
    const noop = () => {};
    await b.appInfo();
    await b.conversations();
    await b.createConversation();
    await b.renameConversation(3, 'T');
    await b.deleteConversation(3);
    await b.thread(3);
    await b.selectBranch(9);
    await b.search('paris');
    await b.send(req, noop);
    await b.regenerate(2, noop);
    await b.cancel(7);
    await b.models();
    await b.importModel('/m.gguf');
    await b.removeModel('m');
    await b.setDefaultModel('m');
    await b.settings();
    await b.updateSettings({} as never);
    await b.presets();
    await b.setPresets([{ name: 'a', prompt: 'b' }]);
    await b.catalog();
    await b.pickFile('model', 'Pick');
    await b.setDataFolder(null);
    await b.openLink('https://example.org');
    await b.catalogForMachine();
    await b.modelRecommendation();
    await b.pullModel({ catalogId: 'smollm2-135m-instruct', quant: 'Q8_0', quantizeHere: false }, () => {});
    await b.pausePull(4);
    await b.cancelPull(4);
    await b.translateLanguages();
    await b.detectLanguage('Bonjour');
    await b.translationModel('en', 'zh');
    await b.translate({ text: 'Hi', sourceLang: null, targetLang: 'zh' }, () => {});
    await b.cancelTranslation(7);
    await b.translations(50);
    await b.searchTranslations('hello');
    await b.translation(1);
    await b.deleteTranslation(1);
    await b.exportTranslation(1, 'markdown', 'Save');
    await b.glossary('en', 'zh');
    await b.setGlossaryTerm('en', 'zh', 'Hearth', '炉火');
    await b.deleteGlossaryTerm(2);
    await b.pickTranslateDocument('Pick');
    await b.readTranslateDocument('/d.md');
    await b.pickDocuments('Pick');
    await b.addDocument('/d.pdf');
    await b.documents();
    await b.deleteDocument(1);
    await b.summarize({ documentId: 1, length: 'short', language: null, pages: [1, 2] }, noop);
    await b.resumeSummary(2, noop);
    await b.cancelDocumentJob(3);
    await b.interruptedSummaries();
    await b.documentSummaries(1);
    await b.passage(4);
    await b.askDocument({ documentId: 1, question: 'What?' }, noop);
    await b.retrievalStatus(1);
    await b.pullSearchModel(noop);

    const args = Object.fromEntries(seen.map(([c, p]) => [c, Object.keys(p).sort()]));
    expect(args).toEqual({
      app_info: [],
      conversations_list: [],
      conversation_create: [],
      conversation_rename: ['id', 'title'],
      conversation_delete: ['id'],
      conversation_thread: ['id'],
      branch_select: ['messageId'],
      messages_search: ['query'],
      chat_send: ['onEvent', 'request'],
      chat_regenerate: ['messageId', 'onEvent'],
      chat_cancel: ['jobId'],
      models_list: [],
      model_import: ['path'],
      model_remove: ['id'],
      model_set_default: ['id'],
      settings_get: [],
      settings_update: ['settings'],
      presets_get: [],
      presets_set: ['presets'],
      catalog_list: [],
      file_pick: ['kind', 'title'],
      data_folder_set: ['path'],
      link_open: ['url'],
      catalog_for_machine: ['context'],
      model_recommendation: [],
      model_pull: ['onEvent', 'request'],
      model_pull_pause: ['jobId'],
      model_pull_cancel: ['jobId'],
      translate_languages: [],
      translate_detect: ['text'],
      translate_model: ['source', 'target'],
      translate: ['onEvent', 'request'],
      translate_cancel: ['jobId'],
      translation_list: ['before', 'limit'],
      translation_search: ['query'],
      translation_get: ['id'],
      translation_delete: ['id'],
      translation_export: ['format', 'id', 'title'],
      glossary_list: ['source', 'target'],
      glossary_set: ['note', 'source', 'target', 'term', 'translation'],
      glossary_delete: ['id'],
      translate_document_pick: ['title'],
      translate_document_read: ['path'],
      documents_pick: ['title'],
      document_add: ['path'],
      documents_list: [],
      document_delete: ['id'],
      document_summarize: ['onEvent', 'request'],
      summary_resume: ['onEvent', 'summaryId'],
      document_cancel: ['jobId'],
      summaries_interrupted: [],
      document_summaries: ['documentId'],
      passage_get: ['chunkId'],
      document_ask: ['onEvent', 'request'],
      retrieval_status: ['documentId'],
      search_model_pull: ['onEvent'],
    });
    // Every command ipc.ts declares is used, and nothing else is.
    expect(seen.map(([c]) => c).sort()).toEqual([...COMMANDS].sort());
    expect(seen.find(([c]) => c === 'chat_send')?.[1].request).toEqual(req);
  });

  it('passes streamed events from the channel to the caller', async () => {
    let channel: Channel<ChatEvent> | null = null;
    mockIPC((cmd, payload) => {
      if (cmd === 'chat_send') {
        channel = (payload as { onEvent: Channel<ChatEvent> }).onEvent;
        return { jobId: 1, userMessageId: 1, assistantMessageId: 2 };
      }
      return null;
    });
    const got: ChatEvent[] = [];
    const job = await tauriBackend.send({ conversationId: 1, text: 'q' }, (e) => got.push(e));
    expect(job.jobId).toBe(1);
    channel!.onmessage({ type: 'delta', jobId: 1, text: 'Paris' });
    expect(got).toEqual([{ type: 'delta', jobId: 1, text: 'Paris' }]);
  });

  it('rethrows failures as {code, message}', async () => {
    mockIPC((cmd) => {
      if (cmd === 'model_import') throw { code: 'engine.not_gguf', message: 'Not a GGUF file.' };
      throw 'command models_list not allowed by ACL';
    });
    await expect(tauriBackend.importModel('/x')).rejects.toEqual({ code: 'engine.not_gguf', message: 'Not a GGUF file.' });
    await expect(tauriBackend.models()).rejects.toEqual({ code: 'ipc', message: 'command models_list not allowed by ACL' });
  });

  it('reports files dropped on the window', async () => {
    mockWindows('main');
    mockIPC(() => 1, { shouldMockEvents: true });
    const events: unknown[] = [];
    const stop = await tauriBackend.onFileDrop((e) => events.push(e));
    const position = { x: 1, y: 1 };
    await emit('tauri://drag-enter', { paths: ['/m/a.gguf'], position });
    await emit('tauri://drag-drop', { paths: ['/m/a.gguf'], position });
    await emit('tauri://drag-leave', null);
    expect(events).toEqual([
      { type: 'hover', paths: ['/m/a.gguf'] },
      { type: 'drop', paths: ['/m/a.gguf'] },
      { type: 'cancel' },
    ]);
    stop();
  });
});
