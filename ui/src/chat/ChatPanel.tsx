/**
 * Chat settings: the system prompt, saved presets of it, and the sampling settings. Changes are
 * saved to the app's settings when a field is left (they apply to the next reply).
 */
import { useEffect, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import { DEFAULT_SAMPLING } from '../backend/defaults';
import type { Preset, SamplingSettings } from '../backend/types';
import { toAppError } from '../backend/types';
import { Icon } from '../icons';
import { useI18n, type MessageKey } from '../i18n';

type NumberField = Exclude<keyof SamplingSettings, 'seed'>;

const FIELDS: { key: NumberField; label: MessageKey; min: number; max: number; step: number }[] = [
  { key: 'temperature', label: 'panel.temperature', min: 0, max: 2, step: 0.05 },
  { key: 'topK', label: 'panel.topK', min: 0, max: 1000, step: 1 },
  { key: 'topP', label: 'panel.topP', min: 0, max: 1, step: 0.01 },
  { key: 'minP', label: 'panel.minP', min: 0, max: 1, step: 0.01 },
  { key: 'repeatPenalty', label: 'panel.repeatPenalty', min: 0.5, max: 2, step: 0.01 },
  { key: 'maxTokens', label: 'panel.maxTokens', min: 1, max: 32768, step: 1 },
];

export function ChatPanel({ id }: { id: string }) {
  const { t } = useI18n();
  const { settings, saveSettings, backend, report, toast } = useApp();
  const [prompt, setPrompt] = useState(settings.systemPrompt);
  const [presets, setPresets] = useState<Preset[]>([]);
  const [presetName, setPresetName] = useState('');

  useEffect(() => setPrompt(settings.systemPrompt), [settings.systemPrompt]);
  useEffect(() => {
    backend.presets().then(setPresets, (e) => report(toAppError(e)));
  }, [backend, report]);

  const savePrompt = async (value: string) => {
    if (value === settings.systemPrompt) return;
    if (await saveSettings({ ...settings, systemPrompt: value })) toast('panel.saved');
  };
  const saveSampling = async (sampling: SamplingSettings) => {
    if (await saveSettings({ ...settings, sampling })) toast('panel.saved');
  };
  const storePresets = async (next: Preset[]) => {
    try {
      await backend.setPresets(next);
      setPresets(next);
    } catch (e) {
      report(toAppError(e));
    }
  };

  return (
    <section class="chat-panel" id={id} aria-label={t('chat.settingsToggle')}>
      <div class="panel-column">
        <div class="field">
          <label class="field" for="system-prompt">
            <span class="field-label">{t('panel.systemPrompt')}</span>
          </label>
          <textarea
            id="system-prompt"
            class="system-prompt"
            rows={3}
            aria-describedby="system-prompt-hint"
            value={prompt}
            onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
            onBlur={() => void savePrompt(prompt)}
          />
          <span class="field-hint" id="system-prompt-hint">
            {t('panel.systemPromptHint')}
          </span>
        </div>
        <fieldset class="presets">
          <legend>{t('panel.presets')}</legend>
          {presets.length === 0 ? (
            <p class="field-hint">{t('panel.presetNone')}</p>
          ) : (
            <ul class="preset-list">
              {presets.map((p, i) => (
                <li key={`${p.name}-${i}`}>
                  <button
                    type="button"
                    class="chip"
                    aria-label={t('panel.presetUse', { name: p.name })}
                    onClick={() => {
                      setPrompt(p.prompt);
                      void savePrompt(p.prompt);
                    }}
                  >
                    <span data-user>{p.name}</span>
                  </button>
                  <button
                    type="button"
                    class="icon-button"
                    aria-label={t('panel.presetDelete', { name: p.name })}
                    onClick={() => void storePresets(presets.filter((_, j) => j !== i))}
                  >
                    <Icon name="close" />
                  </button>
                </li>
              ))}
            </ul>
          )}
          <div class="inline-form">
            <input
              aria-label={t('panel.presetName')}
              placeholder={t('panel.presetName')}
              value={presetName}
              onInput={(e) => setPresetName((e.target as HTMLInputElement).value)}
            />
            <button
              type="button"
              class="button-quiet"
              disabled={!presetName.trim()}
              onClick={() => {
                void storePresets([...presets, { name: presetName.trim(), prompt }]);
                setPresetName('');
              }}
            >
              {t('panel.presetSave')}
            </button>
          </div>
        </fieldset>
      </div>
      <fieldset class="panel-column sampling">
        <legend>{t('panel.sampling')}</legend>
        <div class="sampling-grid">
          {FIELDS.map((f) => (
            <label class="field" key={f.key}>
              <span class="field-label">{t(f.label)}</span>
              <input
                type="number"
                min={f.min}
                max={f.max}
                step={f.step}
                value={settings.sampling[f.key]}
                onChange={(e) => {
                  const v = Number((e.target as HTMLInputElement).value);
                  if (Number.isFinite(v)) void saveSampling({ ...settings.sampling, [f.key]: v });
                }}
              />
            </label>
          ))}
          <label class="field">
            <span class="field-label">{t('panel.seed')}</span>
            <input
              type="number"
              min={0}
              step={1}
              value={settings.sampling.seed ?? ''}
              onChange={(e) => {
                const raw = (e.target as HTMLInputElement).value.trim();
                const seed = raw === '' ? null : Math.floor(Number(raw));
                if (seed === null || Number.isFinite(seed)) void saveSampling({ ...settings.sampling, seed });
              }}
            />
          </label>
        </div>
        <button type="button" class="button-quiet" onClick={() => void saveSampling({ ...DEFAULT_SAMPLING })}>
          {t('panel.reset')}
        </button>
      </fieldset>
    </section>
  );
}
