/**
 * Past translations, newest first, searchable (every word of the query, in the source or the
 * result); each can be opened again or deleted.
 */
import { useEffect, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { TranslationSummary } from '../backend/translate-types';
import { toAppError } from '../backend/types';
import { Icon } from '../icons';
import { useI18n } from '../i18n';
import { useLanguageName } from './languages';

interface Props {
  /** Changes when a translation finished, so the list is read again. */
  version: number;
  currentId: number | null;
  onOpen(id: number): void;
  onDeleted(id: number): void;
}

export function TranslationHistory({ version, currentId, onOpen, onDeleted }: Props) {
  const { t } = useI18n();
  const { backend, report } = useApp();
  const name = useLanguageName();
  const [query, setQuery] = useState('');
  const [items, setItems] = useState<TranslationSummary[]>([]);
  const [confirming, setConfirming] = useState<number | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    let alive = true;
    const q = query.trim();
    const timer = setTimeout(
      async () => {
        try {
          const list = q ? await backend.searchTranslations(q) : await backend.translations(100);
          if (alive) setItems(list);
        } catch (e) {
          if (alive) report(toAppError(e));
        }
      },
      q ? 150 : 0,
    );
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [backend, report, query, version, reload]);

  const remove = async (id: number) => {
    setConfirming(null);
    try {
      await backend.deleteTranslation(id);
      onDeleted(id);
      setReload((n) => n + 1);
    } catch (e) {
      report(toAppError(e));
    }
  };

  return (
    <aside class="sidebar translate-history" aria-label={t('translate.history')}>
      <div class="sidebar-top">
        <h2 class="translate-history-title">{t('translate.history')}</h2>
        <label class="search-box">
          <Icon name="search" />
          <span class="visually-hidden">{t('translate.historySearch')}</span>
          <input
            type="search"
            class="translate-search-input"
            placeholder={t('translate.historySearchPlaceholder')}
            value={query}
            onInput={(e) => setQuery(e.currentTarget.value)}
          />
        </label>
      </div>
      {items.length === 0 ? (
        <p class="sidebar-empty">{query.trim() ? t('translate.historyNoResults') : t('translate.historyEmpty')}</p>
      ) : (
        <ul class="translate-history-list">
          {items.map((item) => (
            <li
              key={item.id}
              class={item.id === currentId ? 'translate-history-row current' : 'translate-history-row'}
              data-translation-id={item.id}
            >
              {confirming === item.id ? (
                <div class="translate-confirm">
                  <span class="translate-confirm-text">{t('translate.historyDeleteConfirm')}</span>
                  <button type="button" class="button-danger" onClick={() => void remove(item.id)}>
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
                    class="translate-history-item"
                    aria-current={item.id === currentId ? 'true' : undefined}
                    onClick={() => onOpen(item.id)}
                  >
                    <span class="translate-history-pair">
                      {t('translate.pair', { source: name(item.sourceLang), target: name(item.targetLang) })}
                    </span>
                    <span class="translate-history-source" data-user>
                      {item.sourcePreview}
                    </span>
                    <span class="snippet" data-user>
                      {item.resultPreview}
                    </span>
                  </button>
                  <div class="translate-history-actions">
                    <button
                      type="button"
                      class="icon-button"
                      aria-label={t('translate.historyDelete')}
                      title={t('translate.historyDelete')}
                      onClick={() => setConfirming(item.id)}
                    >
                      <Icon name="trash" />
                    </button>
                  </div>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
    </aside>
  );
}
