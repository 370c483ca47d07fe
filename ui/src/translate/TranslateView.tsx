/**
 * The Translate view: source text (typed, pasted, or read from a document picked or dropped on
 * the window), its language detected as it is typed (and overridable), the target language, and
 * the translation streamed beside it block by block. Source block i and result block i are
 * counterparts: hovering or focusing one highlights the other. Progress (block i of n) and
 * cancel for long texts, swap, copy, export, the glossary of the pair with the terms that did
 * not come out flagged, which model translated, and the history with search.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { AppError } from '../backend/types';
import { toAppError } from '../backend/types';
import type { Detection, ExportFormat, ModelChoice, TextFormat, TranslateEvent } from '../backend/translate-types';
import { copyText } from '../chat/copy';
import { Icon } from '../icons';
import { useI18n, type MessageKey } from '../i18n';
import { GlossaryEditor } from './GlossaryEditor';
import { TRANSLATE_LANGUAGES, useLanguageName } from './languages';
import { apply, fromRecord, resultOf, startRun, type PaneBlock, type Run } from './run';
import { TranslationHistory } from './TranslationHistory';
import './translate.css';

const AUTO = 'auto';
const DOCUMENT_EXTENSIONS = /\.(txt|text|md|markdown|mdown|mkd|docx|odt|pdf|epub|html?)$/i;

/** Backend errors this view words itself (in the UI's language). */
const ERRORS: Record<string, MessageKey> = {
  'translate.empty': 'translate.error.empty',
  'translate.undetected_language': 'translate.error.undetected',
  'translate.unsupported_language': 'translate.error.unsupportedLanguage',
  'translate.document_too_large': 'translate.error.documentTooLarge',
  'translate.unsupported_document': 'translate.error.unsupportedDocument',
};

export function TranslateView() {
  const { t } = useI18n();
  const { backend, report, announce, toast, view, settings, models } = useApp();
  const name = useLanguageName();
  const [text, setText] = useState('');
  const [format, setFormat] = useState<TextFormat | null>(null);
  const [docName, setDocName] = useState<string | null>(null);
  const [source, setSource] = useState<string>(AUTO);
  const uiLang = settings.language === 'zh-CN' ? 'zh' : 'en';
  const [target, setTarget] = useState<string>(uiLang);
  /** Set once the user chose the target: it is then never changed for them. */
  const targetChosen = useRef(false);
  const setTargetChosen = (v: boolean) => {
    targetChosen.current = v;
  };
  const [detected, setDetected] = useState<Detection | null>(null);
  const [planned, setPlanned] = useState<ModelChoice | null>(null);
  const [run, setRun] = useState<Run | null>(null);
  const [editing, setEditing] = useState(true);
  const [active, setActive] = useState<number | null>(null);
  const [glossaryOpen, setGlossaryOpen] = useState(false);
  const [glossaryCount, setGlossaryCount] = useState(0);
  const [historyVersion, setHistoryVersion] = useState(0);
  const [copied, setCopied] = useState(false);
  const sourceRef = useRef<HTMLTextAreaElement>(null);
  const runRef = useRef<Run | null>(null);
  runRef.current = run;
  const visible = view === 'translate';

  const explain = useCallback(
    (e: unknown): AppError => {
      const err = toAppError(e);
      const key = ERRORS[err.code];
      return key ? { code: err.code, message: t(key) } : err;
    },
    [t],
  );

  // The source language, detected as the text is typed.
  useEffect(() => {
    if (!editing) return;
    const sample = text.slice(0, 2000);
    if (!sample.trim()) {
      setDetected(null);
      return;
    }
    let alive = true;
    const timer = setTimeout(async () => {
      try {
        const d = await backend.detectLanguage(sample);
        if (alive) setDetected(d);
      } catch {
        if (alive) setDetected(null);
      }
    }, 250);
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [backend, text, editing]);

  const effectiveSource = source === AUTO ? (detected?.language ?? null) : source;

  // Text already in the UI's language is translated into English (or Chinese from English),
  // until the user picks a target.
  useEffect(() => {
    if (!effectiveSource) return;
    const wanted = effectiveSource === uiLang ? (uiLang === 'en' ? 'zh' : 'en') : uiLang;
    setTarget((current) => (targetChosen.current ? current : wanted));
  }, [effectiveSource, uiLang]);

  // The model a translation of this pair would use.
  useEffect(() => {
    if (!effectiveSource || models.length === 0) {
      setPlanned(null);
      return;
    }
    let alive = true;
    backend
      .translationModel(effectiveSource, target)
      .then((c) => alive && setPlanned(c))
      .catch(() => alive && setPlanned(null));
    return () => {
      alive = false;
    };
  }, [backend, effectiveSource, target, models]);

  const running = run?.status === 'running';

  const translate = async () => {
    if (running || !text.trim()) return;
    const sourceText = text;
    try {
      let pending: TranslateEvent[] = [];
      let current: Run | null = null;
      const onEvent = (e: TranslateEvent) => {
        if (!current) {
          pending.push(e);
          return;
        }
        current = apply(current, e);
        setRun(current);
        if (e.type === 'done') {
          announce(t(e.status === 'done' ? 'translate.announceDone' : 'translate.announceCancelled'));
          setHistoryVersion((v) => v + 1);
        } else if (e.type === 'failed') {
          report(explain(e.error));
          announce(t('translate.announceFailed'));
          setHistoryVersion((v) => v + 1);
        }
      };
      const started = await backend.translate(
        { text: sourceText, sourceLang: source === AUTO ? null : source, targetLang: target, format },
        onEvent,
      );
      current = startRun(started, sourceText);
      for (const e of pending) onEvent(e);
      pending = [];
      setRun(current);
      setEditing(false);
      setActive(null);
      if (started.detected) setDetected(started.detected);
      announce(t('translate.announceStarted', { source: name(started.sourceLang), target: name(started.targetLang) }));
    } catch (e) {
      report(explain(e));
    }
  };

  const cancel = useCallback(async () => {
    const r = runRef.current;
    if (!r || r.status !== 'running' || r.jobId === null) return false;
    try {
      await backend.cancelTranslation(r.jobId);
    } catch (e) {
      report(toAppError(e));
    }
    return true;
  }, [backend, report]);

  // Escape stops a running translation while this view is shown.
  useEffect(() => {
    if (!visible) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || runRef.current?.status !== 'running') return;
      if (document.querySelector('.overlay')) return;
      e.preventDefault();
      void cancel();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [visible, cancel]);

  const loadDocument = useCallback(
    async (path: string) => {
      try {
        const doc = await backend.readTranslateDocument(path);
        setText(doc.text);
        setFormat(doc.format);
        setDocName(doc.name);
        setRun(null);
        setEditing(true);
        announce(t('translate.documentLoaded', { name: doc.name }));
      } catch (e) {
        report(explain(e));
      }
    },
    [backend, report, announce, explain, t],
  );

  // Documents dropped on the window while this view is shown go to the source box.
  useEffect(() => {
    if (!visible) return;
    let stop: (() => void) | null = null;
    let alive = true;
    backend
      .onFileDrop((event) => {
        if (event.type !== 'drop') return;
        const path = event.paths.find((p) => DOCUMENT_EXTENSIONS.test(p)) ?? event.paths[0];
        if (path) void loadDocument(path);
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
  }, [backend, visible, loadDocument]);

  const pickDocument = async () => {
    try {
      const path = await backend.pickTranslateDocument(t('translate.pickTitle'));
      if (path) await loadDocument(path);
    } catch (e) {
      report(toAppError(e));
    }
  };

  const swap = () => {
    if (running) return;
    const from = effectiveSource;
    if (!from) return;
    const result = run ? resultOf(run) : '';
    setSource(target);
    setTarget(from);
    setTargetChosen(true);
    if (result.trim()) {
      setText(result);
      setFormat(run?.blocks.some((b) => b.kind !== 'paragraph') ? 'markdown' : format);
      setDocName(null);
    }
    setRun(null);
    setEditing(true);
    setActive(null);
  };

  const copy = async () => {
    if (!run) return;
    const ok = await copyText(resultOf(run));
    if (ok) {
      setCopied(true);
      announce(t('translate.copied'));
      setTimeout(() => setCopied(false), 1500);
    }
  };

  const exportAs = async (fmt: ExportFormat) => {
    if (!run || running) return;
    try {
      const path = await backend.exportTranslation(run.translationId, fmt, t('translate.exportTitle'));
      if (path) toast('translate.exported', { path });
    } catch (e) {
      report(toAppError(e));
    }
  };

  const open = async (id: number) => {
    if (running) return;
    try {
      const record = await backend.translation(id);
      const r = fromRecord(record);
      setRun(r);
      setText(record.sourceText);
      setFormat(record.format);
      setDocName(null);
      setSource(record.sourceLang);
      setTarget(record.targetLang);
      setTargetChosen(true);
      setEditing(false);
      setActive(null);
    } catch (e) {
      report(toAppError(e));
    }
  };

  const showBlocks = run !== null && !editing;
  const issuesBySegment = new Map<number, number>();
  for (const i of run?.issues ?? []) issuesBySegment.set(i.segment, (issuesBySegment.get(i.segment) ?? 0) + 1);
  const current = run && running ? Math.min(run.done + 1, Math.max(run.total, 1)) : 0;
  const modelName = run?.modelName ?? planned?.model.name ?? null;
  const languages = TRANSLATE_LANGUAGES;

  return (
    <div class="translate" data-testid="translate-view">
      <TranslationHistory
        version={historyVersion}
        currentId={run?.translationId ?? null}
        onOpen={(id) => void open(id)}
        onDeleted={(id) => {
          if (run?.translationId === id && !running) {
            setRun(null);
            setEditing(true);
          }
        }}
      />
      <div class="translate-main">
        <header class="translate-header">
          <h1>{t('translate.title')}</h1>
          <div class="translate-langs">
            <label class="field">
              <span class="field-label">{t('translate.from')}</span>
              <select value={source} onChange={(e) => setSource(e.currentTarget.value)} disabled={running} data-testid="source-lang">
                <option value={AUTO}>
                  {detected && source === AUTO
                    ? t('translate.detectedOption', { language: name(detected.language) })
                    : t('translate.detect')}
                </option>
                {languages.map((code) => (
                  <option key={code} value={code}>
                    {name(code)}
                  </option>
                ))}
              </select>
            </label>
            <button
              type="button"
              class="icon-button translate-swap"
              aria-label={t('translate.swap')}
              title={t('translate.swap')}
              disabled={running || !effectiveSource}
              onClick={swap}
            >
              <Icon name="swap" />
            </button>
            <label class="field">
              <span class="field-label">{t('translate.to')}</span>
              <select
                value={target}
                onChange={(e) => {
                  setTarget(e.currentTarget.value);
                  setTargetChosen(true);
                }} disabled={running} data-testid="target-lang">
                {languages.map((code) => (
                  <option key={code} value={code}>
                    {name(code)}
                  </option>
                ))}
              </select>
            </label>
            <div class="translate-actions">
              {running ? (
                <button type="button" class="button-quiet" data-action="cancel-translation" onClick={() => void cancel()}>
                  <Icon name="stop" /> {t('translate.cancel')}
                </button>
              ) : (
                <button
                  type="button"
                  class="button-primary"
                  data-action="translate"
                  disabled={!text.trim()}
                  onClick={() => void translate()}
                >
                  {t('translate.translate')}
                </button>
              )}
            </div>
          </div>
          <p class="translate-status field-hint">
            {source === AUTO && detected && (
              <span data-testid="detected">
                {t('translate.detected', { language: name(detected.language), confidence: Math.round(detected.confidence * 100) })}
              </span>
            )}
            {source !== AUTO && detected && detected.language !== source && (
              <span>{t('translate.overridden', { language: name(detected.language) })}</span>
            )}
            {modelName && (
              <span data-testid="model-used">
                {t(run ? 'translate.modelUsed' : 'translate.modelPlanned', { name: modelName })}
              </span>
            )}
            {planned && !planned.supportsPair && <span class="translate-warn">{t('translate.modelWeak')}</span>}
            {effectiveSource && effectiveSource === target && <span class="translate-warn">{t('translate.sameLanguage')}</span>}
          </p>
        </header>

        {run && running && (
          <div class="translate-progress" data-testid="progress">
            <progress max={Math.max(run.total, 1)} value={run.done} aria-label={t('translate.progressLabel')} />
            <span>{t('translate.progress', { current, total: run.total })}</span>
          </div>
        )}

        <div class="translate-panes">
          <section class="translate-pane" aria-labelledby="translate-source-title">
            <div class="translate-pane-head">
              <h2 id="translate-source-title">{t('translate.source')}</h2>
              {docName && (
                <span class="badge" title={t('translate.documentBadge')}>
                  <Icon name="file" />
                  <span data-user>{docName}</span>
                </span>
              )}
            </div>
            {showBlocks ? (
              <div class="translate-blocks" data-testid="source-blocks">
                {run.blocks.map((b) => (
                  <Block key={b.index} block={b} side="source" active={active} setActive={setActive} flagged={false} />
                ))}
              </div>
            ) : (
              <textarea
                ref={sourceRef}
                class="translate-input"
                aria-label={t('translate.sourceLabel')}
                placeholder={t('translate.sourcePlaceholder')}
                value={text}
                onInput={(e) => {
                  setText(e.currentTarget.value);
                  if (docName) setDocName(null);
                  if (format) setFormat(null);
                }}
                onKeyDown={(e) => {
                  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
                    e.preventDefault();
                    void translate();
                  }
                }}
              />
            )}
            <div class="translate-pane-foot">
              <button type="button" class="button-quiet" onClick={() => void pickDocument()} disabled={running}>
                <Icon name="file" /> {t('translate.openDocument')}
              </button>
              {showBlocks && (
                <button
                  type="button"
                  class="button-quiet"
                  disabled={running}
                  onClick={() => {
                    setEditing(true);
                    setTimeout(() => sourceRef.current?.focus(), 0);
                  }}
                >
                  <Icon name="edit" /> {t('translate.editSource')}
                </button>
              )}
            </div>
          </section>
          <section class="translate-pane" aria-labelledby="translate-target-title">
            <div class="translate-pane-head">
              <h2 id="translate-target-title">{t('translate.result')}</h2>
            </div>
            <div
              class="translate-blocks translate-output"
              data-testid="target-blocks"
              data-status={run?.status ?? 'empty'}
              aria-live="polite"
              aria-busy={running ? 'true' : 'false'}
              aria-label={t('translate.resultLabel')}
              role="region"
            >
              {!run && <p class="field-hint">{t('translate.resultEmpty')}</p>}
              {run?.blocks
                .filter((b) => b.target || b.state !== 'waiting')
                .map((b) => (
                  <Block
                    key={b.index}
                    block={b}
                    side="target"
                    active={active}
                    setActive={setActive}
                    flagged={issuesBySegment.has(b.index)}
                  />
                ))}
              {run?.status === 'cancelled' && <p class="field-hint">{t('translate.stopped')}</p>}
            </div>
            <div class="translate-pane-foot">
              <button type="button" class="button-quiet" disabled={!run || !resultOf(run)} onClick={() => void copy()}>
                <Icon name="copy" /> {copied ? t('translate.copied') : t('translate.copy')}
              </button>
              <button type="button" class="button-quiet" disabled={!run || running} onClick={() => void exportAs('markdown')}>
                {t('translate.exportMarkdown')}
              </button>
              <button type="button" class="button-quiet" disabled={!run || running} onClick={() => void exportAs('text')}>
                {t('translate.exportText')}
              </button>
            </div>
          </section>
        </div>

        {run && run.issues.length > 0 && (
          <section class="translate-flags card" aria-labelledby="translate-flags-title" data-testid="glossary-flags">
            <h2 id="translate-flags-title">{t('translate.flagsTitle')}</h2>
            <ul>
              {run.issues.map((i, n) => (
                <li key={n}>
                  {t('translate.flag', { term: i.sourceTerm, expected: i.expected, block: i.segment + 1 })}
                </li>
              ))}
            </ul>
          </section>
        )}

        {run && run.wrongLanguage.length > 0 && (
          <section class="translate-flags card" aria-labelledby="translate-wrong-language-title" data-testid="language-flags">
            <h2 id="translate-wrong-language-title">{t('translate.wrongLanguageTitle')}</h2>
            <ul>
              {run.wrongLanguage.map((b) => (
                <li key={b}>
                  {t('translate.wrongLanguage', { block: b + 1, source: name(run.sourceLang), target: name(run.targetLang) })}
                </li>
              ))}
            </ul>
          </section>
        )}

        <section class="translate-glossary card">
          <button
            type="button"
            class="link-button translate-glossary-toggle"
            aria-expanded={glossaryOpen ? 'true' : 'false'}
            aria-controls="translate-glossary-body"
            onClick={() => setGlossaryOpen((o) => !o)}
          >
            {effectiveSource
              ? t('translate.glossaryFor', { source: name(effectiveSource), target: name(target) })
              : t('translate.glossary')}
            {!glossaryOpen && glossaryCount > 0 && (
              <span class="badge">{t('translate.glossaryCount', { count: glossaryCount })}</span>
            )}
          </button>
          <div id="translate-glossary-body" hidden={!glossaryOpen}>
            <GlossaryEditor source={effectiveSource} target={target} onCount={setGlossaryCount} />
          </div>
        </section>
      </div>
    </div>
  );
}

interface BlockProps {
  block: PaneBlock;
  side: 'source' | 'target';
  active: number | null;
  setActive(i: number | null): void;
  flagged: boolean;
}

/** One block of a pane; hovering or focusing it highlights its counterpart. */
function Block({ block: b, side, active, setActive, flagged }: BlockProps) {
  const { t } = useI18n();
  const text = side === 'source' ? b.source : b.target;
  const classes = ['translate-block', `kind-${b.kind}`];
  if (active === b.index) classes.push('aligned');
  if (flagged) classes.push('flagged');
  if (side === 'target' && b.state === 'writing') classes.push('writing');
  const Tag = b.kind === 'code' ? 'pre' : 'div';
  return (
    <Tag
      class={classes.join(' ')}
      data-segment={b.index}
      data-side={side}
      tabIndex={0}
      onMouseEnter={() => setActive(b.index)}
      onMouseLeave={() => setActive(null)}
      onFocus={() => setActive(b.index)}
      onBlur={() => setActive(null)}
    >
      <span data-user>{text}</span>
      {flagged && <span class="translate-flag-mark">{t('translate.flagMark')}</span>}
    </Tag>
  );
}
