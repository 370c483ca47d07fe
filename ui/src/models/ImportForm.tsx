/** Importing a model file: the system picker, or a path typed in (both call the same import). */
import { useState } from 'preact/hooks';
import { useApp } from '../app/context';
import { toAppError } from '../backend/types';
import { Icon } from '../icons';
import { useI18n } from '../i18n';

export function ImportForm({ onImported }: { onImported?: () => void }) {
  const { t } = useI18n();
  const { backend, importModel, report } = useApp();
  const [path, setPath] = useState('');
  const [busy, setBusy] = useState(false);

  const run = async (p: string) => {
    setBusy(true);
    const model = await importModel(p);
    setBusy(false);
    if (model) {
      setPath('');
      onImported?.();
    }
  };
  const pick = async () => {
    try {
      const picked = await backend.pickFile('model', t('models.pickTitle'));
      if (picked) await run(picked);
    } catch (e) {
      report(toAppError(e));
    }
  };

  return (
    <div class="import-form">
      <button type="button" class="button-primary" data-action="pick-model" disabled={busy} onClick={() => void pick()}>
        <Icon name="file" /> {t('models.choose')}
      </button>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (path.trim()) void run(path);
        }}
      >
        <input
          class="path-input"
          name="model-path"
          aria-label={t('models.pathLabel')}
          placeholder={t('models.pathPlaceholder')}
          value={path}
          onInput={(e) => setPath((e.target as HTMLInputElement).value)}
        />
        <button type="submit" class="button-quiet" data-action="import-path" disabled={busy || !path.trim()}>
          {busy ? t('models.importing') : t('models.importButton')}
        </button>
      </form>
    </div>
  );
}
