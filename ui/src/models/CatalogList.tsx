/**
 * The curated catalog judged for this computer: for each model a fit badge, the memory it needs,
 * the predicted speed here (and the measured one once installed), a choice of quantization, the
 * option to quantize on this computer, and Download with progress, pause, resume and cancel.
 */
import { useEffect, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { CatalogModel, Fit, MachineCatalog, QuantChoice } from '../backend/download-types';
import { toAppError } from '../backend/types';
import { Icon } from '../icons';
import { type MessageKey, useI18n } from '../i18n';
import { DownloadPanel, useDownloadControls } from './DownloadPanel';
import { formatBytes } from './format';

const FIT_KEY: Record<Fit, MessageKey> = {
  fits: 'models.fit.fits',
  tight: 'models.fit.tight',
  wont_fit: 'models.fit.wont_fit',
};

export function FitBadge({ fit, memory }: { fit: Fit; memory: string }) {
  const { t } = useI18n();
  return (
    <span class={`badge badge-fit badge-fit-${fit}`} data-fit={fit} title={t('models.fitHint', { memory })}>
      {t(FIT_KEY[fit])}
    </span>
  );
}

/** "~N tok/s on this computer", and the measured speed when there is one. */
export function SpeedFacts({ q }: { q: QuantChoice }) {
  const { t } = useI18n();
  const round = (v: number) => (v >= 10 ? Math.round(v) : Math.round(v * 10) / 10);
  return (
    <>
      {q.predictedTokensPerSecond != null && (
        <span class="speed-predicted" data-testid="predicted-speed">
          {t('models.predicted', { tps: round(q.predictedTokensPerSecond) })}
        </span>
      )}
      {q.installed && q.measuredTokensPerSecond != null && (
        <span class="speed-measured" data-testid="measured-speed">
          {t('models.measured', { tps: round(q.measuredTokensPerSecond) })}
        </span>
      )}
    </>
  );
}

export function CatalogList() {
  const { t, lang } = useI18n();
  const { backend, report } = useApp();
  const { version } = useDownloadControls();
  const [catalog, setCatalog] = useState<MachineCatalog | null>(null);

  useEffect(() => {
    backend.catalogForMachine().then(setCatalog, (e) => report(toAppError(e)));
  }, [backend, report, version]);

  const m = catalog?.machine;
  return (
    <section class="card" aria-labelledby="catalog-title" data-testid="catalog">
      <h2 id="catalog-title">{t('models.catalogTitle')}</h2>
      <p class="field-hint">{t('models.catalogHint')}</p>
      {m && catalog && (
        <p class="catalog-machine" data-testid="machine" data-l10n="intl">
          {t('models.machine', {
            memory: formatBytes(m.availableMemory, lang),
            total: formatBytes(m.totalMemory, lang),
            cores: m.logicalCores,
            context: catalog.context,
          })}
        </p>
      )}
      {catalog && (
        <ul class="catalog-list">
          {catalog.models.map((model) => (
            <CatalogCard key={model.id} model={model} />
          ))}
        </ul>
      )}
    </section>
  );
}

function CatalogCard({ model }: { model: CatalogModel }) {
  const { t, lang } = useI18n();
  const { states, start } = useDownloadControls();
  const [quant, setQuant] = useState(model.quants[0]?.quant ?? model.recommendedQuant);
  const [here, setHere] = useState(false);
  const q = model.quants.find((x) => x.quant === quant) ?? model.quants[0];
  const download = states.get(model.id);
  const compact = new Intl.NumberFormat(lang, { notation: 'compact', maximumFractionDigits: 1 });
  const names = typeof Intl.DisplayNames === 'function' ? new Intl.DisplayNames([lang], { type: 'language' }) : null;
  const languageList = (codes: string[]) =>
    new Intl.ListFormat(lang, { style: 'narrow', type: 'conjunction' }).format(codes.map((c) => names?.of(c) ?? c));
  if (!q) return null;
  const madeHere = q.comesFrom === 'quantize';
  const selectId = `quant-${model.id}`;
  const hereId = `here-${model.id}`;
  return (
    <li class="catalog-item" data-catalog-id={model.id}>
      <div class="model-head">
        <span class="model-name" data-user>
          {model.name}
        </span>
        <span class="badge">{t('catalog.parameters', { count: compact.format(model.parameters) })}</span>
        <FitBadge fit={q.fit} memory={formatBytes(q.memoryNeeded, lang)} />
        {q.installed && (
          <span class="badge badge-installed" data-testid="installed-badge">
            <Icon name="model" /> {q.isDefault ? t('models.installedDefault') : t('models.installedBadge')}
          </span>
        )}
      </div>
      <p class="catalog-description" data-user>
        {model.description}
      </p>
      <p class="catalog-facts">
        <span>{t('catalog.size', { size: formatBytes(q.fileBytes, lang), quant: q.quant })}</span>
        <span>{t('models.memoryNeeded', { memory: formatBytes(q.memoryNeeded, lang) })}</span>
        <span>{t('catalog.context', { count: model.contextLength })}</span>
        <span>{t('catalog.languages', { list: languageList(model.languages) })}</span>
        <span>{t('catalog.license', { license: model.license })}</span>
      </p>
      <p class="catalog-speed">
        <SpeedFacts q={q} />
      </p>
      {download ? (
        <DownloadPanel state={download} name={model.name} />
      ) : (
        <div class="catalog-actions">
          {model.quants.length > 1 && (
            <span class="field-inline">
              <label for={selectId}>{t('models.quantChoice')}</label>
              <select id={selectId} value={quant} onChange={(e) => setQuant((e.target as HTMLSelectElement).value)}>
                {model.quants.map((c) => (
                  <option key={c.quant} value={c.quant}>
                    {c.recommended
                      ? t('models.quantOptionRecommended', { quant: c.quant, size: formatBytes(c.fileBytes, lang) })
                      : t('models.quantOption', { quant: c.quant, size: formatBytes(c.fileBytes, lang) })}
                  </option>
                ))}
              </select>
            </span>
          )}
          {model.canQuantizeHere && !q.installed && (
            <span class="field-inline">
              <input
                id={hereId}
                type="checkbox"
                checked={here || madeHere}
                disabled={madeHere}
                onChange={(e) => setHere((e.target as HTMLInputElement).checked)}
              />
              <label for={hereId} title={t('models.quantizeHereHint')}>
                {t('models.quantizeHere')}
              </label>
            </span>
          )}
          {!q.installed && (
            <button
              type="button"
              class="button-primary"
              data-action="download"
              aria-label={t('download.getNamed', { name: model.name, quant: q.quant })}
              onClick={() => void start(model.id, model.name, q.quant, here && !madeHere)}
            >
              <Icon name="download" /> {t('download.get')}
            </button>
          )}
        </div>
      )}
    </li>
  );
}
