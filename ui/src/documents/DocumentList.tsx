/**
 * The Documents view's list: every stored document with its kind, size and summary status
 * (none, running, done, stopped, failed, or interrupted by a previous run), an "Add documents"
 * button, and delete with a confirmation in place.
 */
import { useState } from 'preact/hooks';
import type { DocumentInfo } from '../backend/document-types';
import { Icon } from '../icons';
import { useI18n, type MessageKey } from '../i18n';

export type DocStatus = 'none' | 'running' | 'done' | 'cancelled' | 'failed' | 'interrupted';

const STATUS: Record<DocStatus, MessageKey> = {
  none: 'documents.status.none',
  running: 'documents.status.running',
  done: 'documents.status.done',
  cancelled: 'documents.status.cancelled',
  failed: 'documents.status.failed',
  interrupted: 'documents.status.interrupted',
};

interface Props {
  documents: DocumentInfo[];
  currentId: number | null;
  adding: string[];
  statusOf: (d: DocumentInfo) => DocStatus;
  onOpen: (id: number) => void;
  onAdd: () => void;
  onDelete: (d: DocumentInfo) => void;
}

export function DocumentList({ documents, currentId, adding, statusOf, onOpen, onAdd, onDelete }: Props) {
  const { t } = useI18n();
  const [confirming, setConfirming] = useState<number | null>(null);
  return (
    <aside class="sidebar doc-list" aria-label={t('documents.list')}>
      <div class="sidebar-top">
        <h2 class="doc-list-title">{t('documents.title')}</h2>
        <button type="button" class="button-primary doc-add" data-action="add-documents" onClick={onAdd}>
          <Icon name="plus" /> {t('documents.add')}
        </button>
        <p class="field-hint">{t('documents.dropHint')}</p>
      </div>
      {adding.length > 0 && (
        <p class="doc-adding" role="status">
          {adding.map((name) => (
            <span key={name} data-user>
              {t('documents.adding', { name })}
            </span>
          ))}
        </p>
      )}
      {documents.length === 0 ? (
        <p class="sidebar-empty">{t('documents.empty')}</p>
      ) : (
        <ul class="doc-items">
          {documents.map((d) => {
            const status = statusOf(d);
            return (
              <li key={d.id} class={d.id === currentId ? 'doc-row current' : 'doc-row'} data-document-id={d.id}>
                {confirming === d.id ? (
                  <div class="doc-confirm" role="group" aria-label={t('documents.deleteConfirm', { name: d.name })}>
                    <span class="doc-confirm-text">{t('documents.deleteConfirm', { name: d.name })}</span>
                    <button
                      type="button"
                      class="button-danger"
                      data-action="confirm-delete"
                      onClick={() => {
                        setConfirming(null);
                        onDelete(d);
                      }}
                    >
                      {t('common.yes')}
                    </button>
                    <button type="button" class="button-quiet" onClick={() => setConfirming(null)}>
                      {t('common.no')}
                    </button>
                  </div>
                ) : (
                  <>
                    <button
                      type="button"
                      class="doc-item"
                      aria-current={d.id === currentId ? 'true' : undefined}
                      onClick={() => onOpen(d.id)}
                    >
                      <span class="doc-item-name" data-user>
                        {d.name}
                      </span>
                      <span class="doc-item-meta">
                        <span class="doc-kind">{d.kind.toUpperCase()}</span>
                        <span data-testid="doc-size">
                          {d.pages !== null
                            ? t('documents.pages', { count: d.pages })
                            : t('documents.chunks', { count: d.chunks })}
                        </span>
                        <span class={`doc-status doc-status-${status}`} data-status={status}>
                          {t(STATUS[status])}
                        </span>
                      </span>
                    </button>
                    <div class="doc-row-actions">
                      <button
                        type="button"
                        class="icon-button"
                        data-action="delete-document"
                        aria-label={t('documents.deleteNamed', { name: d.name })}
                        title={t('documents.delete')}
                        onClick={() => setConfirming(d.id)}
                      >
                        <Icon name="trash" />
                      </button>
                    </div>
                  </>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </aside>
  );
}
