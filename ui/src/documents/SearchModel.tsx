/**
 * How a document's passages are found for questions, shown above the question box: by words
 * only until the search model (an embedding model, 90 MB) is installed, with a button that
 * downloads it (progress, time left, Cancel); while a document is being indexed by meaning, how
 * far that has got. The download is the app's own (resumable, verified); once installed, every
 * document is indexed in the background and questions find passages by meaning too.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { RetrievalStatus } from '../backend/document-types';
import type { DownloadEvent } from '../backend/download-types';
import { toAppError } from '../backend/types';
import { Icon } from '../icons';
import { useI18n } from '../i18n';
import { formatBytes } from '../models/format';

interface Pull {
  jobId: number | null;
  downloaded: number;
  total: number | null;
  etaSeconds: number | null;
}

export function SearchModel(props: { documentId: number }) {
  const { t, lang } = useI18n();
  const { backend, report, announce } = useApp();
  const [status, setStatus] = useState<RetrievalStatus | null>(null);
  const [pull, setPull] = useState<Pull | null>(null);
  const pullRef = useRef(pull);
  pullRef.current = pull;

  const refresh = useCallback(async () => {
    try {
      setStatus(await backend.retrievalStatus(props.documentId));
    } catch {
      // Not worth a message: questions still work by words.
      setStatus(null);
    }
  }, [backend, props.documentId]);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  // While passages are being indexed by meaning, look again now and then.
  useEffect(() => {
    if (!status?.modelInstalled || status.embeddedChunks >= status.totalChunks) return;
    const timer = setInterval(() => void refresh(), 3000);
    return () => clearInterval(timer);
  }, [status, refresh]);

  const onEvent = (e: DownloadEvent) => {
    switch (e.type) {
      case 'started':
        setPull((p) => (p ? { ...p, jobId: e.jobId } : p));
        break;
      case 'progress':
        setPull({ jobId: e.jobId, downloaded: e.downloaded, total: e.total, etaSeconds: e.etaSeconds });
        break;
      case 'installed':
        setPull(null);
        announce(t('search.installed'));
        void refresh();
        break;
      case 'cancelled':
        setPull(null);
        break;
      case 'failed':
        setPull(null);
        report(e.error);
        break;
      default:
        break;
    }
  };

  const download = async () => {
    setPull({ jobId: null, downloaded: 0, total: null, etaSeconds: null });
    try {
      const started = await backend.pullSearchModel(onEvent);
      setPull((p) => (p ? { ...p, jobId: started.jobId } : p));
    } catch (e) {
      setPull(null);
      report(toAppError(e));
    }
  };

  const cancel = async () => {
    const id = pullRef.current?.jobId;
    if (id == null) return;
    try {
      await backend.cancelSearchModel(id);
    } catch (e) {
      report(toAppError(e));
    }
  };

  if (!status) return null;
  if (status.modelInstalled) {
    if (status.embeddedChunks >= status.totalChunks) return null;
    return (
      <p class="field-hint search-status" data-testid="search-status">
        {t('search.indexing', { done: status.embeddedChunks, total: status.totalChunks })}
      </p>
    );
  }
  const percent = pull?.total ? Math.round((100 * pull.downloaded) / pull.total) : null;
  return (
    <div class="search-model" data-testid="search-model">
      <p class="field-hint">{t('search.wordsOnly')}</p>
      {pull ? (
        <div class="search-model-progress">
          <div
            class="progress"
            role="progressbar"
            aria-label={t('search.downloading')}
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={percent ?? undefined}
          >
            <div class="progress-fill" style={{ width: `${percent ?? 0}%` }} />
          </div>
          <span class="field-hint" aria-live="polite">
            {pull.total
              ? t('search.progress', {
                  done: formatBytes(pull.downloaded, lang),
                  total: formatBytes(pull.total, lang),
                })
              : t('search.downloading')}
          </span>
          <button type="button" class="button-quiet" data-action="cancel-search-model" onClick={() => void cancel()}>
            <Icon name="stop" /> {t('documents.cancel')}
          </button>
        </div>
      ) : (
        <button type="button" class="button-quiet" data-action="get-search-model" onClick={() => void download()}>
          <Icon name="download" /> {t('search.download')}
        </button>
      )}
    </div>
  );
}
