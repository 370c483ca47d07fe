/**
 * The sidebar: new chat, search (the store's full-text search, with matches highlighted) and
 * the conversations, newest first, each with rename and delete.
 */
import type { Ref } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { ConversationSummary, SearchHit } from '../backend/types';
import { toAppError } from '../backend/types';
import { NEW_CONVERSATION_TITLE } from '../backend/defaults';
import { Icon } from '../icons';
import { useI18n, type Translate } from '../i18n';

interface Props {
  conversations: ConversationSummary[];
  currentId: number | null;
  onOpen(id: number, messageId?: number): void;
  onNew(): void;
  onRename(id: number, title: string): void;
  onDelete(id: number): void;
  searchRef: Ref<HTMLInputElement>;
}

/** A conversation's title as shown ("New chat" from the store is translated). */
export function shownTitle(c: { title: string }, t: Translate): string {
  return c.title === NEW_CONVERSATION_TITLE || !c.title.trim() ? t('chat.untitled') : c.title;
}

export function ConversationList({ conversations, currentId, onOpen, onNew, onRename, onDelete, searchRef }: Props) {
  const { t } = useI18n();
  const { backend, report } = useApp();
  const [query, setQuery] = useState('');
  const [hits, setHits] = useState<SearchHit[] | null>(null);

  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setHits(null);
      return;
    }
    let alive = true;
    const timer = setTimeout(async () => {
      try {
        const found = await backend.search(q);
        if (alive) setHits(found);
      } catch (e) {
        if (alive) report(toAppError(e));
      }
    }, 150);
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [query, backend, report]);

  return (
    <aside class="sidebar" aria-label={t('chat.conversations')}>
      <div class="sidebar-top">
        <button type="button" class="button-primary new-chat" data-action="new-chat" onClick={onNew}>
          <Icon name="plus" /> {t('chat.newChat')}
        </button>
        <div class="search-box">
          <Icon name="search" />
          <input
            ref={searchRef}
            type="search"
            class="search-input"
            aria-label={t('chat.search')}
            placeholder={t('chat.searchPlaceholder')}
            value={query}
            onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
            onKeyDown={(e) => {
              if (e.key === 'Escape' && query) {
                e.stopPropagation();
                setQuery('');
              }
            }}
          />
          {query && (
            <button type="button" class="icon-button" aria-label={t('chat.clearSearch')} onClick={() => setQuery('')}>
              <Icon name="close" />
            </button>
          )}
        </div>
      </div>
      {hits ? (
        <SearchResults hits={hits} onOpen={onOpen} />
      ) : conversations.length === 0 ? (
        <p class="sidebar-empty">{t('chat.noConversations')}</p>
      ) : (
        <ul class="conversations">
          {conversations.map((c) => (
            <ConversationRow
              key={c.id}
              c={c}
              current={c.id === currentId}
              onOpen={() => onOpen(c.id)}
              onRename={(title) => onRename(c.id, title)}
              onDelete={() => onDelete(c.id)}
            />
          ))}
        </ul>
      )}
    </aside>
  );
}

function ConversationRow({
  c,
  current,
  onOpen,
  onRename,
  onDelete,
}: {
  c: ConversationSummary;
  current: boolean;
  onOpen(): void;
  onRename(title: string): void;
  onDelete(): void;
}) {
  const { t } = useI18n();
  const [mode, setMode] = useState<'show' | 'rename' | 'confirm'>('show');
  const [draft, setDraft] = useState(c.title);
  const input = useRef<HTMLInputElement>(null);
  const title = shownTitle(c, t);

  useEffect(() => {
    if (mode === 'rename') input.current?.select();
  }, [mode]);

  if (mode === 'rename') {
    const save = () => {
      setMode('show');
      if (draft.trim() && draft.trim() !== c.title) onRename(draft.trim());
    };
    return (
      <li class="conversation-row editing">
        <input
          ref={input}
          class="rename-input"
          aria-label={t('chat.renameLabel')}
          value={draft}
          onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
          onBlur={save}
          onKeyDown={(e) => {
            if (e.key === 'Enter') save();
            if (e.key === 'Escape') {
              e.stopPropagation();
              setMode('show');
            }
          }}
        />
      </li>
    );
  }
  if (mode === 'confirm') {
    return (
      <li class="conversation-row confirming" role="group" aria-label={t('chat.deleteConfirm', { title })}>
        <span class="confirm-text">{t('chat.deleteConfirm', { title })}</span>
        <button type="button" class="button-danger" data-action="confirm-delete" onClick={onDelete}>
          {t('common.yes')}
        </button>
        <button type="button" class="button-quiet" onClick={() => setMode('show')}>
          {t('common.no')}
        </button>
      </li>
    );
  }
  return (
    <li class={current ? 'conversation-row current' : 'conversation-row'}>
      <button
        type="button"
        class="conversation"
        aria-current={current ? 'true' : undefined}
        data-conversation-id={c.id}
        onClick={onOpen}
      >
        <span class="conversation-title" data-user>
          {title}
        </span>
      </button>
      <span class="row-actions" role="group" aria-label={t('chat.actionsFor', { title })}>
        <button
          type="button"
          class="icon-button"
          data-action="rename"
          aria-label={t('chat.rename')}
          title={t('chat.rename')}
          onClick={() => {
            setDraft(c.title);
            setMode('rename');
          }}
        >
          <Icon name="rename" />
        </button>
        <button
          type="button"
          class="icon-button"
          data-action="delete"
          aria-label={t('chat.delete')}
          title={t('chat.delete')}
          onClick={() => setMode('confirm')}
        >
          <Icon name="trash" />
        </button>
      </span>
    </li>
  );
}

function SearchResults({ hits, onOpen }: { hits: SearchHit[]; onOpen(id: number, messageId?: number): void }) {
  const { t } = useI18n();
  if (hits.length === 0) return <p class="sidebar-empty">{t('chat.noResults')}</p>;
  return (
    <div class="search-results">
      <p class="result-count" role="status">
        {hits.length === 1 ? t('chat.resultOne') : t('chat.resultCount', { count: hits.length })}
      </p>
      <ul class="conversations">
        {hits.map((h) => (
          <li key={h.messageId} class="conversation-row">
            <button
              type="button"
              class="conversation search-hit"
              data-conversation-id={h.conversationId}
              onClick={() => onOpen(h.conversationId, h.messageId)}
            >
              <span class="conversation-title" data-user>
                {shownTitle({ title: h.conversationTitle }, t)}
              </span>
              <span class="snippet" data-user>
                {highlight(h.snippet, h.highlights)}
              </span>
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** The snippet with its matches in <mark> (ranges are UTF-16 offsets, as JS strings index). */
function highlight(text: string, ranges: [number, number][]) {
  const parts = [];
  let at = 0;
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  for (const [start, end] of sorted) {
    if (start < at || end > text.length || end <= start) continue;
    if (start > at) parts.push(text.slice(at, start));
    parts.push(<mark key={start}>{text.slice(start, end)}</mark>);
    at = end;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}
