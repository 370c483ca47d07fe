/**
 * The Models view: import a .gguf file (system picker, a typed path, or a file dropped on the
 * window), the installed models with their details, the default model, removal; and the place
 * where the catalog and downloads will go.
 */
import { useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { InstalledModel } from '../backend/types';
import { toAppError } from '../backend/types';
import { Icon } from '../icons';
import { useI18n } from '../i18n';
import { CatalogList } from './CatalogList';
import { formatBytes } from './format';
import { ImportForm } from './ImportForm';

export function ModelsView() {
  const { t } = useI18n();
  const { models } = useApp();
  return (
    <div class="page models-page">
      <h1>{t('models.title')}</h1>
      <section class="card" aria-labelledby="import-title">
        <h2 id="import-title">{t('models.import')}</h2>
        <p class="field-hint">{t('models.importHint')}</p>
        <ImportForm />
      </section>
      <section class="card" aria-labelledby="installed-title">
        <h2 id="installed-title">{t('models.installed')}</h2>
        {models.length === 0 ? (
          <p class="field-hint">{t('models.none')}</p>
        ) : (
          <ul class="model-list">
            {models.map((m) => (
              <ModelRow key={m.id} model={m} />
            ))}
          </ul>
        )}
      </section>
      <CatalogList />
    </div>
  );
}

function ModelRow({ model: m }: { model: InstalledModel }) {
  const { t, lang } = useI18n();
  const { backend, report, refreshModels } = useApp();
  const [confirming, setConfirming] = useState(false);
  const act = async (f: () => Promise<void>) => {
    try {
      await f();
    } catch (e) {
      report(toAppError(e));
    }
    await refreshModels();
  };
  return (
    <li class={m.isDefault ? 'model default' : 'model'} data-model-id={m.id}>
      <div class="model-head">
        <Icon name="model" />
        <span class="model-name" data-user>
          {m.name}
        </span>
        {m.isDefault && (
          <span class="badge" data-testid="default-badge">
            <Icon name="star" /> {t('models.default')}
          </span>
        )}
        {!m.available && <span class="badge badge-warn">{t('models.missing')}</span>}
      </div>
      <dl class="model-facts">
        <dt>{t('models.arch')}</dt>
        <dd data-user>{m.arch ?? t('models.unknown')}</dd>
        <dt>{t('models.quant')}</dt>
        <dd data-user>{m.quant ?? t('models.unknown')}</dd>
        <dt>{t('models.size')}</dt>
        <dd data-l10n="intl">{formatBytes(m.sizeBytes, lang)}</dd>
        <dt>{t('models.context')}</dt>
        <dd>{m.contextLength ? t('models.contextValue', { count: m.contextLength }) : t('models.unknown')}</dd>
        <dt>{t('models.file')}</dt>
        <dd class="model-path" data-user>
          {m.path}
        </dd>
      </dl>
      <div class="model-actions">
        {!m.isDefault && (
          <button type="button" class="button-quiet" data-action="make-default" onClick={() => void act(() => backend.setDefaultModel(m.id))}>
            {t('models.makeDefault')}
          </button>
        )}
        {confirming ? (
          <span class="confirm" role="group" aria-label={t('models.removeConfirm', { name: m.name })}>
            <span>{t('models.removeConfirm', { name: m.name })}</span>
            <button type="button" class="button-danger" data-action="confirm-remove" onClick={() => void act(() => backend.removeModel(m.id))}>
              {t('common.yes')}
            </button>
            <button type="button" class="button-quiet" onClick={() => setConfirming(false)}>
              {t('common.no')}
            </button>
          </span>
        ) : (
          <button type="button" class="button-quiet" data-action="remove" onClick={() => setConfirming(true)}>
            <Icon name="trash" /> {t('models.remove')}
          </button>
        )}
      </div>
    </li>
  );
}
