/**
 * Citations as the Documents view shows them: a button per page range (PDF) or section that
 * opens the passages it points at, and the passage panel itself (its pages or section, then its
 * text). What a citation opens is the passages of its chunks that lie in that range or section.
 */
import { useEffect, useRef } from 'preact/hooks';
import type { Citation, Passage, PageRange } from '../backend/document-types';
import { Icon } from '../icons';
import { useI18n, type Translate } from '../i18n';

/** One clickable place a citation points at. */
export interface CiteTarget {
  label: string;
  /** The chunks to open (all of the citation's, filtered by `range` or `section` once loaded). */
  chunkIds: number[];
  range: PageRange | null;
  section: string | null;
}

export function pagesLabel(t: Translate, start: number, end: number): string {
  return start === end ? t('documents.page', { page: start }) : t('documents.pageRange', { start, end });
}

export function passageWhere(t: Translate, p: Passage): string {
  if (p.pageStart !== null) {
    const end = p.pageEnd ?? p.pageStart;
    return p.pageStart === end
      ? t('documents.passagePage', { page: p.pageStart })
      : t('documents.passagePages', { start: p.pageStart, end });
  }
  if (p.section) return p.section;
  return t('documents.passageNumber', { n: p.ordinal + 1 });
}

/** The places a citation points at: its page ranges, else its sections, else its chunks. */
export function citeTargets(t: Translate, c: Citation): CiteTarget[] {
  if (c.pages.length > 0) {
    return c.pages.map((r) => ({ label: pagesLabel(t, r.start, r.end), chunkIds: c.chunkIds, range: r, section: null }));
  }
  if (c.sections.length > 0) {
    return [...new Set(c.sections)].map((s) => ({ label: s, chunkIds: c.chunkIds, range: null, section: s }));
  }
  return c.chunkIds.map((id, i) => ({
    label: t('documents.passageNumber', { n: (c.chunkOrdinals[i] ?? i) + 1 }),
    chunkIds: [id],
    range: null,
    section: null,
  }));
}

/** Whether a loaded passage belongs to the place a citation button named. */
export function inTarget(p: Passage, target: CiteTarget): boolean {
  if (target.range) {
    const start = p.pageStart ?? -1;
    const end = p.pageEnd ?? start;
    return start <= target.range.end && end >= target.range.start;
  }
  if (target.section) return p.section === target.section;
  return true;
}

export function CiteButtons({ cites, onOpen }: { cites: Citation; onOpen: (target: CiteTarget, button: HTMLElement) => void }) {
  const { t } = useI18n();
  return (
    <span class="doc-cites">
      {citeTargets(t, cites).map((target) => (
        <button
          key={target.label}
          type="button"
          class="doc-cite"
          data-cite={target.label}
          aria-label={t('documents.openCitation', { where: target.label })}
          onClick={(e) => onOpen(target, e.currentTarget)}
        >
          {target.label}
        </button>
      ))}
    </span>
  );
}

export interface OpenPassages {
  /** What was clicked: a citation of the summary, or a numbered source of an answer. */
  from: { kind: 'cite'; target: CiteTarget } | { kind: 'source'; number: number; passage: Passage };
  passages: Passage[];
}

/** The panel's title, in the UI's current language. */
export function openedTitle(t: Translate, open: OpenPassages): string {
  const f = open.from;
  if (f.kind === 'source') return `[${f.number}] ${passageWhere(t, f.passage)}`;
  if (f.target.range) return pagesLabel(t, f.target.range.start, f.target.range.end);
  if (f.target.section) return f.target.section;
  return f.target.label;
}

/** The passages a citation opened; takes the focus when it opens, Escape or Close closes it. */
export function PassagePanel({ open, onClose }: { open: OpenPassages; onClose: () => void }) {
  const { t } = useI18n();
  const ref = useRef<HTMLElement>(null);
  useEffect(() => {
    ref.current?.focus();
  }, [open]);
  return (
    <section
      ref={ref}
      class="doc-passage"
      tabIndex={-1}
      aria-labelledby="doc-passage-title"
      data-testid="passage"
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.stopPropagation();
          onClose();
        }
      }}
    >
      <div class="doc-passage-head">
        <h3 id="doc-passage-title">{t('documents.passageTitle', { where: openedTitle(t, open) })}</h3>
        <button type="button" class="icon-button" aria-label={t('documents.closePassage')} title={t('documents.closePassage')} onClick={onClose}>
          <Icon name="close" />
        </button>
      </div>
      {open.passages.map((p) => (
        <article key={p.chunkId} class="doc-passage-item" data-chunk-id={p.chunkId}>
          <p class="doc-passage-where" data-testid="passage-where">
            {passageWhere(t, p)}
          </p>
          <p class="doc-passage-text" data-user>
            {p.text}
          </p>
        </article>
      ))}
    </section>
  );
}
