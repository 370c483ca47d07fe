/**
 * A download's progress and controls, shown in a catalog card and on the welcome screen: a
 * progress bar (bytes, rate, time left; the quantizing stage by tensors), Pause / Resume /
 * Cancel, and the error in the UI language with Try again. `useDownloadControls` starts a
 * download with the app's reactions wired in (models refreshed, confirmation, announcements).
 */
import { useApp } from '../app/context';
import { describeError } from '../errors';
import { useI18n } from '../i18n';
import { formatBytes } from './format';
import { type DownloadState, useDownloads } from './useDownloads';

export function useDownloadControls() {
  const { backend, refreshModels, toast, announce } = useApp();
  const { t } = useI18n();
  const downloads = useDownloads(backend);
  const start = (catalogId: string, name: string, quant: string, quantizeHere: boolean, onInstalled?: () => void) =>
    downloads.start(catalogId, quant, quantizeHere, {
      onDone: (model) => {
        void refreshModels().then(() => {
          toast('download.done', { name: model.name || name });
          onInstalled?.();
        });
      },
      onPaused: () => announce(t('download.pausedAnnounce', { name })),
      onCancelled: () => announce(t('download.cancelledAnnounce', { name })),
      onError: (e) => announce(describeError(e, t)),
    });
  return { ...downloads, start };
}

function eta(seconds: number, t: ReturnType<typeof useI18n>['t']): string {
  if (seconds < 90) return t('download.etaSeconds', { count: Math.max(1, Math.round(seconds)) });
  if (seconds < 5400) return t('download.etaMinutes', { count: Math.round(seconds / 60) });
  return t('download.etaHours', { count: Math.round(seconds / 360) / 10 });
}

export function DownloadPanel({ state: s, name }: { state: DownloadState; name: string }) {
  const { t, lang } = useI18n();
  const { backend } = useApp();
  const { pause, resume, cancel } = useDownloads(backend);
  const quantizing = s.phase === 'quantizing';
  const percent = quantizing
    ? s.tensorsTotal > 0
      ? Math.floor((100 * s.tensorsDone) / s.tensorsTotal)
      : 0
    : s.total
      ? Math.floor((100 * s.downloaded) / s.total)
      : 0;
  const running = s.phase === 'starting' || s.phase === 'downloading' || quantizing;
  const facts: string[] = [];
  if (quantizing) {
    facts.push(t('download.quantizing', { done: s.tensorsDone, total: s.tensorsTotal }));
  } else if (s.total) {
    facts.push(t('download.bytes', { done: formatBytes(s.downloaded, lang), total: formatBytes(s.total, lang) }));
    if (s.phase === 'downloading' && s.bytesPerSecond > 0) {
      facts.push(t('download.rate', { rate: formatBytes(s.bytesPerSecond, lang) }));
      if (s.etaSeconds != null) facts.push(eta(s.etaSeconds, t));
    }
  }
  const status =
    s.phase === 'starting'
      ? t('download.starting')
      : s.phase === 'paused'
        ? t('download.paused')
        : s.phase === 'failed'
          ? t('download.failed')
          : quantizing
            ? t('download.quantizingTitle')
            : t('download.downloading');
  return (
    <div class={`download download-${s.phase}`} data-testid="download" data-phase={s.phase}>
      <div class="download-head">
        <span class="download-status">{status}</span>
        <span class="download-facts" data-l10n="intl">
          {facts.join(' · ')}
        </span>
      </div>
      <div
        class="progress"
        role="progressbar"
        aria-label={t('download.progressLabel', { name })}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        aria-valuetext={facts.join(', ') || status}
      >
        <div class="progress-fill" style={{ width: `${percent}%` }} />
      </div>
      {s.error && (
        <p class="download-error" role="alert">
          {describeError(s.error, t)}
        </p>
      )}
      <div class="download-actions">
        {running && (
          <button type="button" class="button-quiet" data-action="pause-download" disabled={s.jobId == null} onClick={() => void pause(s.catalogId)}>
            {t('download.pause')}
          </button>
        )}
        {s.phase === 'paused' && (
          <button type="button" class="button-primary" data-action="resume-download" onClick={() => void resume(s.catalogId)}>
            {t('download.resume')}
          </button>
        )}
        {s.phase === 'failed' && (
          <button type="button" class="button-primary" data-action="retry-download" onClick={() => void resume(s.catalogId)}>
            {t('download.retry')}
          </button>
        )}
        <button type="button" class="button-quiet" data-action="cancel-download" disabled={running && s.jobId == null} onClick={() => void cancel(s.catalogId)}>
          {t('download.cancel')}
        </button>
      </div>
    </div>
  );
}
