/**
 * A translation as the view shows it: the source's blocks and their counterparts, filled in by
 * the backend's events (`apply`), or rebuilt from a stored translation (`fromRecord`). Pure
 * functions, so the streaming logic is tested without rendering.
 */
import type {
  AlignedSegment,
  BlockKind,
  Detection,
  GlossaryIssue,
  TranslateEvent,
  TranslationRecord,
  TranslationStarted,
} from '../backend/translate-types';

export interface PaneBlock {
  index: number;
  kind: BlockKind;
  /** False for blocks copied as they are (code, tables). */
  translate: boolean;
  source: string;
  target: string;
  state: 'waiting' | 'writing' | 'done';
}

export type RunStatus = 'running' | 'done' | 'cancelled' | 'failed';

export interface Run {
  jobId: number | null;
  translationId: number;
  sourceText: string;
  sourceLang: string;
  targetLang: string;
  detected: Detection | null;
  modelName: string | null;
  modelReason: string | null;
  blocks: PaneBlock[];
  /** Blocks translated so far and to translate (copied blocks not counted). */
  done: number;
  total: number;
  status: RunStatus;
  issues: GlossaryIssue[];
  /** Blocks the model answered in the source language (known when the run ends). */
  wrongLanguage: number[];
  resultText: string;
}

export function startRun(started: TranslationStarted, sourceText: string): Run {
  return {
    jobId: started.jobId,
    translationId: started.translationId,
    sourceText,
    sourceLang: started.sourceLang,
    targetLang: started.targetLang,
    detected: started.detected,
    modelName: started.model.model.name,
    modelReason: started.model.reason,
    blocks: started.segments.map((s) => ({
      index: s.index,
      kind: s.kind,
      translate: s.translate,
      source: sourceText.slice(s.range[0], s.range[1]),
      target: '',
      state: 'waiting',
    })),
    done: 0,
    total: started.segments.filter((s) => s.translate).length,
    status: 'running',
    issues: [],
    wrongLanguage: [],
    resultText: '',
  };
}

function withBlock(run: Run, index: number, f: (b: PaneBlock) => PaneBlock): PaneBlock[] {
  return run.blocks.map((b) => (b.index === index ? f(b) : b));
}

/** The blocks once the job ended: finished ones from the result, a block cut short dropped. */
function fromAligned(run: Run, segments: AlignedSegment[]): PaneBlock[] {
  const byIndex = new Map(segments.map((s) => [s.index, s]));
  return run.blocks.map((b) => {
    const s = byIndex.get(b.index);
    if (s) return { ...b, target: s.targetText, state: 'done' };
    return b.state === 'done' ? b : { ...b, target: '', state: 'waiting' };
  });
}

/** The run after one event (events of another job leave it as it is). */
export function apply(run: Run, e: TranslateEvent): Run {
  if (run.jobId !== null && e.jobId !== run.jobId) return run;
  switch (e.type) {
    case 'started':
      return { ...run, total: e.total };
    case 'progress':
      return {
        ...run,
        done: e.done,
        total: e.total,
        blocks: withBlock(run, e.segment, (b) => ({ ...b, target: '', state: 'writing' })),
      };
    case 'delta':
      return { ...run, blocks: withBlock(run, e.segment, (b) => ({ ...b, target: b.target + e.text, state: 'writing' })) };
    case 'rewrite':
      return { ...run, blocks: withBlock(run, e.segment, (b) => ({ ...b, target: e.text, state: 'writing' })) };
    case 'segment':
      return {
        ...run,
        done: e.translated ? Math.min(run.done + 1, run.total) : run.done,
        blocks: withBlock(run, e.segment, (b) => ({ ...b, target: e.rendered.replace(/^\s+/, ''), state: 'done' })),
        issues: [...run.issues, ...e.glossaryIssues],
        resultText: run.resultText + e.rendered,
      };
    case 'done':
      return {
        ...run,
        status: e.status,
        blocks: fromAligned(run, e.result.segments),
        issues: e.result.glossaryIssues,
        wrongLanguage: e.result.wrongLanguage ?? [],
        resultText: e.result.text,
        modelName: e.result.modelName || run.modelName,
        done: e.status === 'done' ? run.total : run.done,
      };
    case 'failed':
      return {
        ...run,
        status: 'failed',
        blocks: fromAligned(run, e.partial?.segments ?? []),
        resultText: e.partial?.text ?? run.resultText,
        wrongLanguage: e.partial?.wrongLanguage ?? run.wrongLanguage,
      };
  }
}

/** A stored translation, with its blocks paired when the backend could pair them. */
export function fromRecord(r: TranslationRecord): Run {
  const blocks: PaneBlock[] =
    r.segments.length > 0
      ? r.segments.map((s) => ({
          index: s.index,
          kind: s.kind,
          translate: s.translated,
          source: s.sourceText,
          target: s.targetText,
          state: 'done',
        }))
      : [{ index: 0, kind: 'paragraph', translate: true, source: r.sourceText, target: r.resultText, state: 'done' }];
  const status: RunStatus = r.status === 'done' || r.status === 'cancelled' ? r.status : r.status === 'failed' ? 'failed' : 'done';
  return {
    jobId: null,
    translationId: r.id,
    sourceText: r.sourceText,
    sourceLang: r.sourceLang,
    targetLang: r.targetLang,
    detected: null,
    modelName: r.modelId,
    modelReason: null,
    blocks,
    done: blocks.filter((b) => b.translate).length,
    total: blocks.filter((b) => b.translate).length,
    status,
    issues: [],
    wrongLanguage: [],
    resultText: r.resultText,
  };
}

/** The translated text so far (the whole result once done). */
export function resultOf(run: Run): string {
  if (run.status !== 'running' && run.resultText) return run.resultText;
  return run.blocks
    .filter((b) => b.target)
    .map((b) => b.target)
    .join('\n\n');
}
