/**
 * One message of the thread: the text (a reply as Markdown), its state, speed figures, and
 * actions: copy; edit a question (sent as a new version); regenerate a reply; and < n/m > to
 * switch between versions.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ThreadMessage } from '../backend/types';
import { Icon } from '../icons';
import { useI18n } from '../i18n';
import { copyText } from './copy';
import { Markdown } from './Markdown';

interface Props {
  message: ThreadMessage;
  /** This reply is streaming now. */
  streaming: boolean;
  /** Actions that start a reply or change the branch are off while one streams. */
  busy: boolean;
  onEdit(text: string): void;
  onRegenerate(): void;
  onSelect(messageId: number): void;
}

export function MessageItem({ message: m, streaming, busy, onEdit, onRegenerate, onSelect }: Props) {
  const { t } = useI18n();
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(m.content);
  const [copied, setCopied] = useState(false);
  const editRef = useRef<HTMLTextAreaElement>(null);
  const pending = m.id < 0;

  useEffect(() => {
    if (editing) editRef.current?.focus();
  }, [editing]);

  const copy = async () => {
    if (await copyText(m.content)) {
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    }
  };
  const submitEdit = (e?: Event) => {
    e?.preventDefault();
    if (!draft.trim()) return;
    setEditing(false);
    onEdit(draft);
  };

  const count = m.siblingIds.length;
  const who = m.role === 'user' ? t('chat.you') : t('chat.assistant');

  return (
    <article
      class={`message message-${m.role} status-${m.status}`}
      data-message-id={m.id}
      data-role={m.role}
      data-status={m.status}
      aria-label={who}
    >
      <div class="message-who" aria-hidden="true">
        {who}
      </div>
      {editing ? (
        <form class="message-edit" onSubmit={submitEdit}>
          <textarea
            ref={editRef}
            aria-label={t('msg.editLabel')}
            value={draft}
            rows={3}
            onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) submitEdit(e);
              if (e.key === 'Escape') {
                e.stopPropagation();
                setEditing(false);
              }
            }}
          />
          <div class="message-edit-actions">
            <button type="button" class="button-quiet" onClick={() => setEditing(false)}>
              {t('common.cancel')}
            </button>
            <button type="submit" class="button-primary" data-action="send-edit" disabled={!draft.trim()}>
              {t('msg.sendEdit')}
            </button>
          </div>
        </form>
      ) : m.role === 'assistant' ? (
        <div class="message-body">
          {m.content ? <Markdown text={m.content} /> : streaming ? <p class="message-waiting">{t('msg.waiting')}</p> : null}
          {streaming && <span class="cursor" aria-hidden="true" />}
        </div>
      ) : (
        <div class="message-body message-text" data-user>
          {m.content}
        </div>
      )}

      {m.status === 'cancelled' && <p class="message-state">{t('msg.stopped')}</p>}
      {m.status === 'failed' && (
        <p class="message-state message-failed">{t('msg.failed', { error: m.error ?? '' })}</p>
      )}

      {!editing && !pending && (
        <footer class="message-footer">
          {count > 1 && (
            <nav class="versions" aria-label={t('msg.versions')}>
              <button
                type="button"
                class="icon-button"
                aria-label={t('msg.prevVersion')}
                data-action="prev-version"
                disabled={busy || m.siblingIndex === 0}
                onClick={() => onSelect(m.siblingIds[m.siblingIndex - 1])}
              >
                <Icon name="left" />
              </button>
              <span class="versions-count" data-testid="version">
                {t('msg.versionOf', { index: m.siblingIndex + 1, count })}
              </span>
              <button
                type="button"
                class="icon-button"
                aria-label={t('msg.nextVersion')}
                data-action="next-version"
                disabled={busy || m.siblingIndex >= count - 1}
                onClick={() => onSelect(m.siblingIds[m.siblingIndex + 1])}
              >
                <Icon name="right" />
              </button>
            </nav>
          )}
          {!streaming && (
            <div class="message-actions">
              <button type="button" class="icon-button" data-action="copy" aria-label={t('msg.copy')} title={t('msg.copy')} onClick={copy}>
                <Icon name="copy" />
              </button>
              {copied && (
                <span class="copied" role="status">
                  {t('msg.copied')}
                </span>
              )}
              {m.role === 'user' && (
                <button
                  type="button"
                  class="icon-button"
                  data-action="edit"
                  aria-label={t('msg.edit')}
                  title={t('msg.edit')}
                  disabled={busy}
                  onClick={() => {
                    setDraft(m.content);
                    setEditing(true);
                  }}
                >
                  <Icon name="edit" />
                </button>
              )}
              {m.role === 'assistant' && (
                <button
                  type="button"
                  class="icon-button"
                  data-action="regenerate"
                  aria-label={t('msg.regenerate')}
                  title={t('msg.regenerate')}
                  disabled={busy}
                  onClick={onRegenerate}
                >
                  <Icon name="refresh" />
                </button>
              )}
            </div>
          )}
          {m.role === 'assistant' && !streaming && m.tokensPerSecond != null && (
            <span class="message-stats" data-testid="stats">
              {t('msg.stats', {
                tps: m.tokensPerSecond,
                ttft: m.ttftMs ?? 0,
                tokens: m.completionTokens ?? 0,
              })}
            </span>
          )}
        </footer>
      )}
    </article>
  );
}
