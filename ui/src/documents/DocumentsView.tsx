/**
 * The Documents view: the list of documents (added with the picker or dropped anywhere on the
 * window), and for the chosen one its summary (length, language and page range; progress with
 * stage, step i of n and time left; Cancel or Esc; the summary streamed into an aria-live region;
 * key points with their page or section citations), a question box whose answer lists the
 * passages it rests on, and the passage a citation opens. A summary keeps running while another
 * document or view is shown; one left unfinished by a previous run offers Resume.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type {
  AskEvent,
  DocumentInfo,
  DocumentSummary,
  KeyPoint,
  Passage,
  Source,
  SummarizeEvent,
  SummaryLength,
  SummaryStage,
} from '../backend/document-types';
import { toAppError } from '../backend/types';
import { Icon } from '../icons';
import { useI18n, type MessageKey } from '../i18n';
import { TRANSLATE_LANGUAGES, useLanguageName } from '../translate/languages';
import { CiteButtons, inTarget, passageWhere, PassagePanel, type CiteTarget, type OpenPassages } from './citations';
import { DocumentList, type DocStatus } from './DocumentList';
import { SearchModel } from './SearchModel';
import './documents.css';

/** Files the Documents view takes from a drop (models go to the Models view). */
export const isDocumentPath = (p: string) => !/\.gguf$/i.test(p);

interface SumRun {
  jobId: number | null;
  summaryId: number | null;
  status: 'running' | 'done' | 'cancelled' | 'failed';
  stage: SummaryStage;
  done: number;
  total: number;
  etaMs: number | null;
  text: string;
  summary: DocumentSummary | null;
}

interface AskRun {
  jobId: number | null;
  question: string;
  text: string;
  passages: Source[];
  cited: number[];
  status: 'running' | 'done' | 'cancelled' | 'failed';
}

const STAGES: Record<SummaryStage, MessageKey> = {
  map: 'documents.stage.map',
  reduce: 'documents.stage.reduce',
  final: 'documents.stage.final',
};

const FOUND_BY: Record<string, MessageKey> = {
  keywords: 'documents.foundBy.keywords',
  meaning: 'documents.foundBy.meaning',
  both: 'documents.foundBy.both',
};

function applyEvent(run: SumRun, e: SummarizeEvent): SumRun {
  switch (e.type) {
    case 'started':
      return { ...run, jobId: e.jobId, summaryId: e.summaryId, total: e.chunks, done: e.resumedParts };
    case 'progress':
      return { ...run, stage: e.stage, done: e.done, total: e.total, etaMs: e.etaMs };
    case 'part':
      return run;
    case 'delta':
      return { ...run, text: run.text + e.text };
    case 'done':
      return {
        ...run,
        status: e.status === 'done' ? 'done' : 'cancelled',
        summary: e.summary,
        text: e.summary.text || run.text,
        etaMs: null,
      };
    case 'failed':
      return { ...run, status: 'failed', etaMs: null };
  }
}

export function DocumentsView() {
  const { t } = useI18n();
  const { backend, report, announce, toast, view, setView, droppedDocuments, takeDroppedDocuments } = useApp();
  const languageName = useLanguageName();
  const [documents, setDocuments] = useState<DocumentInfo[]>([]);
  const [currentId, setCurrentId] = useState<number | null>(null);
  const [adding, setAdding] = useState<string[]>([]);
  const [interrupted, setInterrupted] = useState<DocumentSummary[]>([]);
  const [runs, setRuns] = useState<Record<number, SumRun>>({});
  const [stored, setStored] = useState<DocumentSummary | null>(null);
  const [length, setLength] = useState<SummaryLength>('short');
  const [language, setLanguage] = useState('');
  const [fromPage, setFromPage] = useState('');
  const [toPage, setToPage] = useState('');
  const [opened, setOpened] = useState<OpenPassages | null>(null);
  const [question, setQuestion] = useState('');
  const [asks, setAsks] = useState<Record<number, AskRun>>({});
  /** The citation button that opened the passage: it gets the focus back when it closes. */
  const opener = useRef<HTMLElement | null>(null);
  const viewRef = useRef(view);
  viewRef.current = view;
  const runsRef = useRef(runs);
  runsRef.current = runs;
  const asksRef = useRef(asks);
  asksRef.current = asks;
  const visible = view === 'documents';
  const current = documents.find((d) => d.id === currentId) ?? null;

  const reload = useCallback(async () => {
    try {
      const [list, left] = await Promise.all([backend.documents(), backend.interruptedSummaries()]);
      setDocuments(list);
      setInterrupted(left);
      return list;
    } catch (e) {
      report(toAppError(e));
      return null;
    }
  }, [backend, report]);

  useEffect(() => {
    void reload();
  }, [reload]);

  // The chosen document's newest stored summary.
  useEffect(() => {
    setStored(null);
    setOpened(null);
    if (currentId === null) return;
    let alive = true;
    backend
      .documentSummaries(currentId)
      .then((list) => alive && setStored(list.length ? list[list.length - 1] : null))
      .catch(() => alive && setStored(null));
    return () => {
      alive = false;
    };
  }, [backend, currentId, runs[currentId ?? -1]?.status]);

  const addPaths = useCallback(
    async (paths: string[]) => {
      let last: number | null = null;
      for (const path of paths) {
        const name = path.split(/[\\/]/).pop() ?? path;
        setAdding((list) => [...list, name]);
        try {
          const added = await backend.addDocument(path);
          last = added.document.id;
          if (added.alreadyKnown) toast('documents.alreadyKnown', { name: added.document.name });
          else toast('documents.added', { name: added.document.name });
          announce(t(added.alreadyKnown ? 'documents.alreadyKnown' : 'documents.added', { name: added.document.name }));
        } catch (e) {
          report(toAppError(e));
        } finally {
          setAdding((list) => {
            const i = list.indexOf(name);
            return i < 0 ? list : [...list.slice(0, i), ...list.slice(i + 1)];
          });
        }
      }
      await reload();
      if (last !== null) setCurrentId(last);
    },
    [backend, reload, report, toast, announce, t],
  );

  // Documents dropped anywhere on the window (but on the Translate view, which reads them
  // itself) come here; .gguf files are models, which the app imports.
  useEffect(() => {
    let stop: (() => void) | null = null;
    let alive = true;
    backend
      .onFileDrop((event) => {
        if (event.type !== 'drop' || viewRef.current === 'translate') return;
        const paths = event.paths.filter(isDocumentPath);
        if (paths.length === 0) return;
        setView('documents');
        void addPaths(paths);
      })
      .then((unlisten) => {
        if (alive) stop = unlisten;
        else unlisten();
      })
      .catch(() => {
        /* no drops outside the desktop app */
      });
    return () => {
      alive = false;
      stop?.();
    };
  }, [backend, addPaths, setView]);

  // Files dropped on the welcome screen, before this view existed.
  useEffect(() => {
    if (droppedDocuments.length === 0) return;
    takeDroppedDocuments();
    void addPaths(droppedDocuments);
  }, [droppedDocuments, takeDroppedDocuments, addPaths]);

  const pick = async () => {
    try {
      const paths = await backend.pickDocuments(t('documents.pickTitle'));
      if (paths && paths.length) await addPaths(paths);
    } catch (e) {
      report(toAppError(e));
    }
  };

  const remove = async (d: DocumentInfo) => {
    const r = runsRef.current[d.id];
    try {
      if (r?.status === 'running' && r.jobId !== null) await backend.cancelDocumentJob(r.jobId);
      await backend.deleteDocument(d.id);
      toast('documents.deleted', { name: d.name });
      announce(t('documents.deleted', { name: d.name }));
      if (currentId === d.id) setCurrentId(null);
    } catch (e) {
      report(toAppError(e));
    }
    await reload();
  };

  const sink = (docId: number) => (e: SummarizeEvent) => {
    setRuns((all) => {
      const run = all[docId];
      return run ? { ...all, [docId]: applyEvent(run, e) } : all;
    });
    if (e.type === 'done') {
      announce(t(e.status === 'done' ? 'documents.announceDone' : 'documents.announceCancelled'));
      void reload();
    } else if (e.type === 'failed') {
      report(e.error);
      announce(t('documents.announceFailed'));
      void reload();
    }
  };

  const fresh = (): SumRun => ({
    jobId: null,
    summaryId: null,
    status: 'running',
    stage: 'map',
    done: 0,
    total: 0,
    etaMs: null,
    text: '',
    summary: null,
  });

  const start = async (restart: boolean, resumeId: number | null = null) => {
    const doc = current;
    if (!doc || runsRef.current[doc.id]?.status === 'running') return;
    const first = parseInt(fromPage, 10);
    const last = parseInt(toPage, 10);
    const pages: [number, number] | null =
      doc.pages !== null && (first > 0 || last > 0)
        ? [first > 0 ? first : 1, last > 0 ? last : doc.pages]
        : null;
    setRuns((all) => ({ ...all, [doc.id]: fresh() }));
    setOpened(null);
    try {
      const started =
        resumeId !== null
          ? await backend.resumeSummary(resumeId, sink(doc.id))
          : await backend.summarize(
              { documentId: doc.id, length, language: language || null, pages, restart },
              sink(doc.id),
            );
      setRuns((all) => {
        const run = all[doc.id];
        return run ? { ...all, [doc.id]: { ...run, jobId: started.jobId, summaryId: started.summaryId } } : all;
      });
      announce(t('documents.announceStarted', { name: doc.name }));
      void reload();
    } catch (e) {
      setRuns((all) => {
        const { [doc.id]: _gone, ...rest } = all;
        return rest;
      });
      report(toAppError(e));
    }
  };

  const cancel = useCallback(async () => {
    if (currentId === null) return false;
    const r = runsRef.current[currentId];
    const a = asksRef.current[currentId];
    const job = r?.status === 'running' ? r.jobId : a?.status === 'running' ? a.jobId : null;
    if (job === null || job === undefined) return false;
    try {
      await backend.cancelDocumentJob(job);
    } catch (e) {
      report(toAppError(e));
    }
    return true;
  }, [backend, report, currentId]);

  // Escape stops the running summary (or answer) while this view is shown.
  useEffect(() => {
    if (!visible) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || e.defaultPrevented) return;
      if (document.querySelector('.overlay')) return;
      if (currentId === null) return;
      const r = runsRef.current[currentId];
      const a = asksRef.current[currentId];
      if (r?.status !== 'running' && a?.status !== 'running') return;
      e.preventDefault();
      void cancel();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [visible, cancel, currentId]);

  const closePassage = () => {
    setOpened(null);
    const back = opener.current;
    if (back) setTimeout(() => back.isConnected && back.focus(), 0);
  };

  const openCitation = async (target: CiteTarget, button: HTMLElement) => {
    opener.current = button;
    try {
      const loaded: Passage[] = [];
      for (const id of target.chunkIds.slice(0, 40)) {
        const p = await backend.passage(id);
        if (inTarget(p, target)) loaded.push(p);
      }
      setOpened({ from: { kind: 'cite', target }, passages: loaded });
    } catch (e) {
      report(toAppError(e));
    }
  };

  const openSource = (s: Source, button: HTMLElement) => {
    opener.current = button;
    setOpened({ from: { kind: 'source', number: s.number, passage: s.passage }, passages: [s.passage] });
  };

  const ask = async () => {
    const doc = current;
    const q = question.trim();
    if (!doc || !q || asksRef.current[doc.id]?.status === 'running') return;
    const docId = doc.id;
    setAsks((all) => ({ ...all, [docId]: { jobId: null, question: q, text: '', passages: [], cited: [], status: 'running' } }));
    const onEvent = (e: AskEvent) => {
      setAsks((all) => {
        const a = all[docId];
        if (!a) return all;
        if (e.type === 'delta') return { ...all, [docId]: { ...a, text: a.text + e.text } };
        if (e.type === 'done')
          return {
            ...all,
            [docId]: {
              ...a,
              text: e.answer.text,
              passages: e.answer.passages,
              cited: e.answer.cited,
              status: e.answer.status === 'done' ? 'done' : 'cancelled',
            },
          };
        return { ...all, [docId]: { ...a, status: 'failed' } };
      });
      if (e.type === 'done') announce(t(e.answer.status === 'done' ? 'documents.answerDone' : 'documents.answerStopped'));
      else if (e.type === 'failed') report(e.error);
    };
    try {
      const started = await backend.askDocument({ documentId: docId, question: q }, onEvent);
      setAsks((all) => {
        const a = all[docId];
        return a ? { ...all, [docId]: { ...a, jobId: started.jobId, passages: a.passages.length ? a.passages : started.passages } } : all;
      });
    } catch (e) {
      setAsks((all) => {
        const { [docId]: _gone, ...rest } = all;
        return rest;
      });
      report(toAppError(e));
    }
  };

  const statusOf = (d: DocumentInfo): DocStatus => {
    const r = runs[d.id];
    if (r) return r.status;
    if (d.summaryStatus === 'running') return interrupted.some((s) => s.documentId === d.id) ? 'interrupted' : 'running';
    return (d.summaryStatus as DocStatus | null) ?? 'none';
  };

  const run = current ? runs[current.id] : undefined;
  const askRun = current ? asks[current.id] : undefined;
  const running = run?.status === 'running';
  const leftOver = current
    ? (interrupted.find((s) => s.documentId === current.id) ??
      (!run && stored && stored.status === 'cancelled' ? stored : null))
    : null;
  // The finished summary on show (a stopped one shows what was written, and no key points).
  const shown: DocumentSummary | null = run
    ? run.status === 'done'
      ? run.summary
      : null
    : stored && stored.status === 'done'
      ? stored
      : null;
  const summaryText = run ? run.text : (shown?.text ?? '');
  const keyPoints: KeyPoint[] = shown?.keyPoints ?? [];

  return (
    <div class="documents" data-testid="documents-view">
      <DocumentList
        documents={documents}
        currentId={currentId}
        adding={adding}
        statusOf={statusOf}
        onOpen={setCurrentId}
        onAdd={() => void pick()}
        onDelete={(d) => void remove(d)}
      />
      <div class="doc-main">
        {!current ? (
          <div class="doc-empty">
            <h1>{t('documents.title')}</h1>
            <p>{t('documents.select')}</p>
          </div>
        ) : (
          <>
            <header class="doc-header">
              <h1 data-user>{current.name}</h1>
              <p class="field-hint">
                {current.kind.toUpperCase()} ·{' '}
                {current.pages !== null ? t('documents.pages', { count: current.pages }) + ' · ' : ''}
                {t('documents.chunks', { count: current.chunks })}
              </p>
            </header>
            <section class="doc-card" aria-labelledby="doc-summary-title">
              <h2 id="doc-summary-title">{t('documents.summary')}</h2>
              <div class="doc-options">
                <label class="field">
                  <span class="field-label">{t('documents.length')}</span>
                  <select value={length} disabled={running} onChange={(e) => setLength(e.currentTarget.value as SummaryLength)} data-testid="summary-length">
                    <option value="short">{t('documents.length.short')}</option>
                    <option value="medium">{t('documents.length.medium')}</option>
                    <option value="long">{t('documents.length.long')}</option>
                  </select>
                </label>
                <label class="field">
                  <span class="field-label">{t('documents.language')}</span>
                  <select value={language} disabled={running} onChange={(e) => setLanguage(e.currentTarget.value)} data-testid="summary-language">
                    <option value="">{t('documents.languageDocument')}</option>
                    {TRANSLATE_LANGUAGES.map((code) => (
                      <option key={code} value={code}>
                        {languageName(code)}
                      </option>
                    ))}
                  </select>
                </label>
                {current.pages !== null && (
                  <>
                    <label class="field doc-page-field">
                      <span class="field-label">{t('documents.fromPage')}</span>
                      <input type="number" min={1} max={current.pages} value={fromPage} placeholder="1" disabled={running} onInput={(e) => setFromPage(e.currentTarget.value)} data-testid="from-page" />
                    </label>
                    <label class="field doc-page-field">
                      <span class="field-label">{t('documents.toPage')}</span>
                      <input type="number" min={1} max={current.pages} value={toPage} placeholder={String(current.pages)} disabled={running} onInput={(e) => setToPage(e.currentTarget.value)} data-testid="to-page" />
                    </label>
                  </>
                )}
                <div class="doc-actions">
                  {running ? (
                    <button type="button" class="button-quiet" data-action="cancel-summary" onClick={() => void cancel()}>
                      <Icon name="stop" /> {t('documents.cancel')}
                    </button>
                  ) : (
                    <button type="button" class="button-primary" data-action="summarize" onClick={() => void start(shown !== null)}>
                      {shown ? t('documents.summarizeAgain') : t('documents.summarize')}
                    </button>
                  )}
                </div>
              </div>
              {leftOver && !running && (
                <div class="doc-resume" data-testid="resume-note">
                  <span>{t('documents.interruptedNote', { done: leftOver.chunksSummarized, total: leftOver.chunksTotal })}</span>
                  <button type="button" class="button-quiet" data-action="resume-summary" onClick={() => void start(false, leftOver.summaryId)}>
                    <Icon name="refresh" /> {t('documents.resume')}
                  </button>
                </div>
              )}
              {run && running && (
                <div class="doc-progress" data-testid="summary-progress">
                  <progress max={Math.max(run.total, 1)} value={run.done} aria-label={t('documents.progressLabel')} />
                  <span data-testid="progress-text">
                    {t('documents.progress', {
                      stage: t(STAGES[run.stage]),
                      current: Math.min(run.done + 1, Math.max(run.total, 1)),
                      total: Math.max(run.total, 1),
                    })}
                  </span>
                  {run.etaMs !== null && <span data-testid="eta">{eta(t, run.etaMs)}</span>}
                </div>
              )}
              {run?.status === 'cancelled' && <p class="field-hint" data-testid="summary-cancelled">{t('documents.summaryCancelled')}</p>}
              <div class="doc-summary-text" aria-live="polite" aria-busy={running} data-testid="summary-text" data-user>
                {summaryText}
              </div>
              {keyPoints.length > 0 && (
                <>
                  <h3 class="doc-subtitle">{t('documents.keyPoints')}</h3>
                  <ol class="doc-keypoints" data-testid="key-points">
                    {keyPoints.map((k) => (
                      <li key={k.partId}>
                        <span data-user>{k.text}</span> <CiteButtons cites={k.cites} onOpen={(target, button) => void openCitation(target, button)} />
                      </li>
                    ))}
                  </ol>
                </>
              )}
              {shown && (
                <p class="field-hint">
                  {t('documents.model', { name: shown.modelId })}
                </p>
              )}
            </section>
            {opened?.from.kind === 'cite' && <PassagePanel open={opened} onClose={closePassage} />}
            <section class="doc-card" aria-labelledby="doc-ask-title">
              <h2 id="doc-ask-title">{t('documents.ask')}</h2>
              <SearchModel documentId={current.id} />
              <form
                class="doc-ask"
                onSubmit={(e) => {
                  e.preventDefault();
                  void ask();
                }}
              >
                <input
                  type="text"
                  class="doc-ask-input"
                  aria-label={t('documents.askLabel')}
                  placeholder={t('documents.askPlaceholder')}
                  value={question}
                  onInput={(e) => setQuestion(e.currentTarget.value)}
                  data-testid="question"
                />
                {askRun?.status === 'running' ? (
                  <button type="button" class="button-quiet" data-action="cancel-answer" onClick={() => void cancel()}>
                    <Icon name="stop" /> {t('documents.cancel')}
                  </button>
                ) : (
                  <button type="submit" class="button-primary" data-action="ask" disabled={!question.trim()}>
                    {t('documents.askButton')}
                  </button>
                )}
              </form>
              {askRun && (
                <div class="doc-answer">
                  {askRun.status === 'running' && !askRun.text && (
                    <p class="field-hint" data-testid="answering">
                      {t('documents.answering')}
                    </p>
                  )}
                  <p class="doc-answer-text" aria-live="polite" aria-busy={askRun.status === 'running'} data-testid="answer" data-user>
                    {askRun.text}
                  </p>
                  {askRun.status === 'cancelled' && (
                    <p class="field-hint" data-testid="answer-stopped">
                      {t('documents.answerStoppedHint')}
                    </p>
                  )}
                  {askRun.passages.length > 0 && (
                    <>
                      <h3 class="doc-subtitle">{t('documents.sources')}</h3>
                      <ul class="doc-sources" data-testid="sources">
                        {askRun.passages.map((s) => {
                          const cited = askRun.cited.includes(s.number);
                          return (
                            <li key={s.number} class={cited ? 'doc-source cited' : 'doc-source'}>
                              <button
                                type="button"
                                class="doc-cite"
                                data-source={s.number}
                                aria-label={t('documents.openSource', { n: s.number, where: passageWhere(t, s.passage) })}
                                onClick={(e) => openSource(s, e.currentTarget)}
                              >
                                [{s.number}] {passageWhere(t, s.passage)}
                              </button>
                              {cited && <span class="badge">{t('documents.cited')}</span>}
                              {s.foundBy && FOUND_BY[s.foundBy] && (
                                <span class="doc-found-by" data-found-by={s.foundBy}>
                                  {t(FOUND_BY[s.foundBy])}
                                </span>
                              )}
                              <span class="doc-source-preview" data-user>
                                {s.passage.text.slice(0, 140)}
                              </span>
                            </li>
                          );
                        })}
                      </ul>
                    </>
                  )}
                </div>
              )}
            </section>
            {opened?.from.kind === 'source' && <PassagePanel open={opened} onClose={closePassage} />}
          </>
        )}
      </div>
    </div>
  );
}

function eta(t: (key: MessageKey, vars?: Record<string, string | number>) => string, ms: number): string {
  const s = Math.max(1, Math.round(ms / 1000));
  const time = s < 90 ? t('documents.seconds', { n: s }) : t('documents.minutes', { n: Math.round(s / 60) });
  return t('documents.eta', { time });
}
