/**
 * First run (no model yet): what Hearth is, one model recommended for this computer that one
 * click downloads (progress shown here; the chat opens when it is installed), and importing a
 * model file instead.
 */
import { useEffect, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { Recommendation, RecommendationReason } from '../backend/download-types';
import { FitBadge, SpeedFacts } from '../models/CatalogList';
import { DownloadPanel, useDownloadControls } from '../models/DownloadPanel';
import { formatBytes } from '../models/format';
import { ImportForm } from '../models/ImportForm';
import { type MessageKey, useI18n } from '../i18n';
import { Icon } from '../icons';

const REASON_KEY: Record<RecommendationReason, MessageKey> = {
  comfortable: 'welcome.reason.comfortable',
  slow: 'welcome.reason.slow',
  tight: 'welcome.reason.tight',
};

export function Welcome({ onSkip }: { onSkip(): void }) {
  const { t, lang } = useI18n();
  const { backend, setView } = useApp();
  const { states, start } = useDownloadControls();
  const [rec, setRec] = useState<Recommendation | null>(null);

  useEffect(() => {
    // Without a recommendation (no catalog, an error) the welcome screen still offers import.
    backend.modelRecommendation().then(setRec, () => setRec(null));
  }, [backend]);

  const choice = rec?.model.quants.find((q) => q.quant === rec.quant) ?? rec?.model.quants[0];
  const download = rec ? states.get(rec.model.id) : undefined;
  const round = (v: number | null) => (v == null ? 0 : v >= 10 ? Math.round(v) : Math.round(v * 10) / 10);

  return (
    <main class="welcome" aria-labelledby="welcome-title">
      <div class="welcome-card">
        <img src="/hearth.svg" alt="" width={96} height={96} />
        <h1 id="welcome-title">{t('welcome.title')}</h1>
        <p class="welcome-body">{t('welcome.body')}</p>
        {rec && choice && (
          <section class="recommendation" aria-labelledby="recommendation-title" data-testid="recommendation">
            <h2 id="recommendation-title">{t('welcome.recommendTitle')}</h2>
            <div class="model-head">
              <span class="model-name" data-user>
                {rec.model.name}
              </span>
              <FitBadge fit={choice.fit} memory={formatBytes(choice.memoryNeeded, lang)} />
            </div>
            <p class="recommendation-reason">
              {t(REASON_KEY[rec.reason], { tps: round(choice.predictedTokensPerSecond) })}
            </p>
            <p class="catalog-speed">
              <SpeedFacts q={choice} />
            </p>
            {download ? (
              <DownloadPanel state={download} name={rec.model.name} />
            ) : (
              <button
                type="button"
                class="button-primary"
                data-action="get-recommended"
                onClick={() => void start(rec.model.id, rec.model.name, choice.quant, false, () => setView('chat'))}
              >
                <Icon name="download" />{' '}
                {t('welcome.get', { name: rec.model.name, size: formatBytes(choice.fileBytes, lang) })}
              </button>
            )}
          </section>
        )}
        <p class="welcome-step">{rec ? t('welcome.orImport') : t('welcome.step')}</p>
        <ImportForm onImported={() => setView('chat')} />
        <p class="field-hint">{t('models.dropHere')}</p>
        <button type="button" class="link-button" data-action="skip-welcome" onClick={onSkip}>
          {t('welcome.skip')}
        </button>
      </div>
    </main>
  );
}
