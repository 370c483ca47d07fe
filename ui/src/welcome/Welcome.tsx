/** First run (no model yet): what Hearth is, and importing a model file to begin. */
import { useApp } from '../app/context';
import { useI18n } from '../i18n';
import { ImportForm } from '../models/ImportForm';

export function Welcome({ onSkip }: { onSkip(): void }) {
  const { t } = useI18n();
  const { setView } = useApp();
  return (
    <main class="welcome" aria-labelledby="welcome-title">
      <div class="welcome-card">
        <img src="/hearth.svg" alt="" width={96} height={96} />
        <h1 id="welcome-title">{t('welcome.title')}</h1>
        <p class="welcome-body">{t('welcome.body')}</p>
        <p class="welcome-step">{t('welcome.step')}</p>
        <ImportForm onImported={() => setView('chat')} />
        <p class="field-hint">{t('models.dropHere')}</p>
        <p class="field-hint" data-testid="download-placeholder">
          {t('welcome.downloadPending')}
        </p>
        <button type="button" class="link-button" data-action="skip-welcome" onClick={onSkip}>
          {t('welcome.skip')}
        </button>
      </div>
    </main>
  );
}
