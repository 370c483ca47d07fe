import { describe, expect, it } from 'vitest';
import type { TranslationStarted } from '../backend/translate-types';
import { apply, fromRecord, resultOf, startRun } from './run';

const source = '# Title\n\nFirst.\n\n```\ncode\n```';
const started: TranslationStarted = {
  jobId: 4,
  translationId: 9,
  sourceLang: 'en',
  detected: { language: 'en', confidence: 0.8 },
  targetLang: 'fr',
  model: {
    model: {
      id: 'm',
      name: 'Model M',
      path: '/m.gguf',
      arch: 'qwen2',
      parameters: 1,
      family: 'qwen',
      languages: ['en', 'fr'],
      languagesFrom: 'architecture table',
      contextLength: 4096,
    },
    supportsPair: true,
    reason: 'Model M handles English and French',
  },
  format: 'markdown',
  segments: [
    { index: 0, kind: 'heading', translate: true, range: [0, 7] },
    { index: 1, kind: 'paragraph', translate: true, range: [9, 15] },
    { index: 2, kind: 'code', translate: false, range: [17, 29] },
  ],
};

describe('a translation run', () => {
  it('pairs the source blocks by their UTF-16 ranges and fills the result from the events', () => {
    let run = startRun(started, source);
    expect(run.blocks.map((b) => b.source)).toEqual(['# Title', 'First.', '```\ncode\n```']);
    expect(run.total).toBe(2);
    run = apply(run, { type: 'progress', jobId: 4, segment: 0, done: 0, total: 2 });
    run = apply(run, { type: 'delta', jobId: 4, segment: 0, text: 'Ti' });
    run = apply(run, { type: 'delta', jobId: 4, segment: 0, text: 'tre' });
    // Another job's events are ignored.
    run = apply(run, { type: 'delta', jobId: 5, segment: 0, text: 'zzz' });
    expect(run.blocks[0]).toMatchObject({ target: 'Titre', state: 'writing' });
    // A piece asked for again: what was streamed for it goes, the new answer takes its place.
    run = apply(run, { type: 'rewrite', jobId: 4, segment: 0, text: '' });
    expect(run.blocks[0]).toMatchObject({ target: '', state: 'writing' });
    run = apply(run, { type: 'delta', jobId: 4, segment: 0, text: 'Titre' });
    expect(run.blocks[0]).toMatchObject({ target: 'Titre', state: 'writing' });
    run = apply(run, { type: 'segment', jobId: 4, segment: 0, translated: true, text: 'Titre', rendered: '# Titre', glossaryIssues: [] });
    run = apply(run, { type: 'progress', jobId: 4, segment: 1, done: 1, total: 2 });
    run = apply(run, { type: 'delta', jobId: 4, segment: 1, text: 'Prem' });
    expect(run.done).toBe(1);
    expect(resultOf(run)).toBe('# Titre\n\nPrem');
    // Cancelled mid-block: the finished block stays, the one cut short is dropped.
    run = apply(run, {
      type: 'done',
      jobId: 4,
      status: 'cancelled',
      result: {
        translationId: 9,
        sourceLang: 'en',
        targetLang: 'fr',
        modelId: 'm',
        modelName: 'Model M',
        format: 'markdown',
        text: '# Titre',
        segments: [],
        glossaryIssues: [],
        lostCode: [],
        wrongLanguage: [1],
        stats: { requests: 2, promptTokens: 10, completionTokens: 3, elapsedMs: 5 },
      },
    });
    expect(run.status).toBe('cancelled');
    expect(run.wrongLanguage).toEqual([1]);
    expect(run.blocks.map((b) => [b.target, b.state])).toEqual([
      ['# Titre', 'done'],
      ['', 'waiting'],
      ['', 'waiting'],
    ]);
    expect(resultOf(run)).toBe('# Titre');
  });

  it('a stored translation whose blocks no longer pair shows as one block each side', () => {
    const run = fromRecord({
      id: 3,
      sourceText: 'a\n\nb',
      resultText: 'A B',
      sourceLang: 'en',
      targetLang: 'de',
      modelId: 'm',
      status: 'done',
      error: null,
      format: 'plain',
      segments: [],
      createdAt: 1,
      updatedAt: 1,
    });
    expect(run.blocks).toEqual([{ index: 0, kind: 'paragraph', translate: true, source: 'a\n\nb', target: 'A B', state: 'done' }]);
    expect(resultOf(run)).toBe('A B');
  });
});
