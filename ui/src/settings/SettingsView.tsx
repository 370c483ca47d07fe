/**
 * The Settings view: data folder (chosen for the next start), compute threads, download
 * endpoint, document limits, theme and language. Each control saves when changed; theme and
 * language apply at once.
 */
import { useEffect, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { DocumentLimits, Language, ThemeChoice } from '../backend/types';
import { toAppError } from '../backend/types';
import { Icon } from '../icons';
import { LANGUAGES, type MessageKey, useI18n } from '../i18n';

const THEMES: ThemeChoice[] = ['system', 'light', 'dark'];

/** The document limits, each with its label key and allowed range. */
const LIMITS: { key: keyof DocumentLimits; label: MessageKey; max: number }[] = [
  { key: 'maxFileMb', label: 'settings.maxFileMb', max: 16384 },
  { key: 'maxPages', label: 'settings.maxPages', max: 100000 },
  { key: 'maxDecompressedMb', label: 'settings.maxDecompressedMb', max: 65536 },
];

/** One whole-number limit: saved when the field is left or Enter is pressed. */
function LimitField(props: {
  id: string;
  label: string;
  value: number;
  max: number;
  onSave: (n: number) => void;
}) {
  const [text, setText] = useState(String(props.value));
  useEffect(() => setText(String(props.value)), [props.value]);
  return (
    <div class="field">
      <label class="field-label" for={props.id}>
        {props.label}
      </label>
      <input
        id={props.id}
        aria-describedby="documents-hint"
        type="number"
        min={1}
        max={props.max}
        step={1}
        value={text}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
        onChange={() => {
          const n = Math.floor(Number(text));
          if (Number.isFinite(n) && n !== props.value) props.onSave(n);
        }}
      />
    </div>
  );
}

export function SettingsView() {
  const { t } = useI18n();
  const { settings, saveSettings, info, backend, report, toast } = useApp();
  const [threads, setThreads] = useState(String(settings.threads));
  const [endpoint, setEndpoint] = useState(settings.downloadEndpoint ?? '');
  const [nextDir, setNextDir] = useState(info.dataDirNext);

  useEffect(() => setThreads(String(settings.threads)), [settings.threads]);
  useEffect(() => setEndpoint(settings.downloadEndpoint ?? ''), [settings.downloadEndpoint]);

  const save = async (patch: Partial<typeof settings>) => {
    if (await saveSettings({ ...settings, ...patch })) toast('settings.saved');
  };
  const chooseFolder = async () => {
    try {
      const picked = await backend.pickFile('folder', t('settings.dataFolderPickTitle'));
      if (!picked) return;
      await backend.setDataFolder(picked);
      setNextDir(picked);
      toast('settings.saved');
    } catch (e) {
      report(toAppError(e));
    }
  };
  const resetFolder = async () => {
    try {
      await backend.setDataFolder(null);
      setNextDir(null);
      toast('settings.saved');
    } catch (e) {
      report(toAppError(e));
    }
  };

  return (
    <div class="page settings-page">
      <h1>{t('settings.title')}</h1>

      <section class="card">
        <h2>{t('settings.theme')}</h2>
        <div class="segmented" role="radiogroup" aria-label={t('settings.theme')}>
          {THEMES.map((th) => (
            <label key={th} class={settings.theme === th ? 'segment checked' : 'segment'}>
              <input
                type="radio"
                name="theme"
                value={th}
                checked={settings.theme === th}
                onChange={() => void save({ theme: th })}
              />
              <span>{t(`theme.${th}`)}</span>
            </label>
          ))}
        </div>
      </section>

      <section class="card">
        <h2>
          <label for="language-select">{t('settings.language')}</label>
        </h2>
        <select
          id="language-select"
          value={settings.language}
          onChange={(e) => void save({ language: (e.target as HTMLSelectElement).value as Language })}
        >
          {LANGUAGES.map((l) => (
            <option key={l} value={l} lang={l}>
              {t(`language.${l}`)}
            </option>
          ))}
        </select>
      </section>

      <section class="card">
        <h2>{t('settings.dataFolder')}</h2>
        <p class="field-hint">{t('settings.dataFolderHint')}</p>
        <p class="data-dir" data-testid="data-dir">
          {t('settings.dataFolderCurrent', { path: settings.dataDir })}
        </p>
        {info.dataDirFromEnv ? (
          <p class="field-hint">{t('settings.dataFolderEnv')}</p>
        ) : (
          nextDir &&
          nextDir !== settings.dataDir && <p class="field-hint">{t('settings.dataFolderNext', { path: nextDir })}</p>
        )}
        <div class="button-row">
          <button type="button" class="button-quiet" onClick={() => void chooseFolder()}>
            <Icon name="folder" /> {t('settings.dataFolderChoose')}
          </button>
          {nextDir && (
            <button type="button" class="button-quiet" onClick={() => void resetFolder()}>
              {t('settings.dataFolderReset')}
            </button>
          )}
        </div>
      </section>

      <section class="card">
        <div class="field">
          <label class="field-label" for="threads-input">
            {t('settings.threads')}
          </label>
          <input
            id="threads-input"
            aria-describedby="threads-hint"
            type="number"
            min={0}
            max={256}
            step={1}
            value={threads}
            onInput={(e) => setThreads((e.target as HTMLInputElement).value)}
            onChange={() => {
              const n = Math.floor(Number(threads));
              if (Number.isFinite(n) && n >= 0 && n !== settings.threads) void save({ threads: n });
            }}
          />
          <span class="field-hint" id="threads-hint">
            {t('settings.threadsHint')}
          </span>
        </div>
      </section>

      <section class="card">
        <div class="field">
          <label class="field-label" for="endpoint-input">
            {t('settings.endpoint')}
          </label>
          <input
            id="endpoint-input"
            aria-describedby="endpoint-hint"
            type="url"
            placeholder={t('settings.endpointPlaceholder')}
            value={endpoint}
            onInput={(e) => setEndpoint((e.target as HTMLInputElement).value)}
            onChange={() => {
              const next = endpoint.trim() || null;
              if (next !== settings.downloadEndpoint) void save({ downloadEndpoint: next });
            }}
          />
          <span class="field-hint" id="endpoint-hint">
            {t('settings.endpointHint')}
          </span>
        </div>
      </section>

      <section class="card">
        <h2>{t('settings.documents')}</h2>
        <p class="field-hint" id="documents-hint">
          {t('settings.documentsHint')}
        </p>
        {LIMITS.map((l) => (
          <LimitField
            key={l.key}
            id={`limit-${l.key}`}
            label={t(l.label)}
            value={settings.documents[l.key]}
            max={l.max}
            onSave={(n) => void save({ documents: { ...settings.documents, [l.key]: n } })}
          />
        ))}
      </section>

      <p class="version">{t('settings.version', { version: info.version })}</p>
    </div>
  );
}
