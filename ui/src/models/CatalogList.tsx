/**
 * The curated catalog: what each model is, its size and languages. Downloading comes with the
 * download work in a later version; this section says so.
 */
import { useEffect, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { CatalogItem } from '../backend/types';
import { toAppError } from '../backend/types';
import { useI18n } from '../i18n';
import { formatBytes } from './format';

export function CatalogList() {
  const { t, lang } = useI18n();
  const { backend, report } = useApp();
  const [items, setItems] = useState<CatalogItem[] | null>(null);

  useEffect(() => {
    backend.catalog().then(setItems, (e) => report(toAppError(e)));
  }, [backend, report]);

  const compact = new Intl.NumberFormat(lang, { notation: 'compact', maximumFractionDigits: 1 });
  const names = typeof Intl.DisplayNames === 'function' ? new Intl.DisplayNames([lang], { type: 'language' }) : null;
  const languageList = (codes: string[]) =>
    new Intl.ListFormat(lang, { style: 'narrow', type: 'conjunction' }).format(codes.map((c) => names?.of(c) ?? c));

  return (
    <section class="card" aria-labelledby="catalog-title" data-testid="catalog">
      <h2 id="catalog-title">{t('models.catalogTitle')}</h2>
      <p class="field-hint">{t('models.catalogHint')}</p>
      <p class="catalog-pending" data-testid="catalog-pending">
        {t('models.catalogPending')}
      </p>
      {items && (
        <ul class="catalog-list">
          {items.map((m) => (
            <li key={m.id} class="catalog-item" data-catalog-id={m.id}>
              <div class="model-head">
                <span class="model-name" data-user>
                  {m.name}
                </span>
                <span class="badge">{t('catalog.parameters', { count: compact.format(m.parameters) })}</span>
              </div>
              <p class="catalog-description" data-user>
                {m.description}
              </p>
              <p class="catalog-facts">
                <span>{t('catalog.size', { size: formatBytes(m.estimatedBytes, lang), quant: m.recommendedQuant })}</span>
                <span>{t('catalog.context', { count: m.contextLength })}</span>
                <span>{t('catalog.languages', { list: languageList(m.languages) })}</span>
                <span>{t('catalog.license', { license: m.license })}</span>
              </p>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
