import { describe, expect, it } from 'vitest';
import { catalogs, LANGUAGES, translator } from './index';
import { en } from './en';

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe('string catalogs', () => {
  it('every language has exactly the English keys, none empty', () => {
    for (const lang of LANGUAGES) {
      const c = catalogs[lang];
      expect(Object.keys(c).sort()).toEqual(Object.keys(en).sort());
      for (const [k, v] of Object.entries(c)) expect(v.trim(), `${lang} ${k}`).not.toBe('');
    }
  });

  it('every translation keeps the same placeholders', () => {
    for (const lang of LANGUAGES) {
      for (const k of Object.keys(en) as (keyof typeof en)[]) {
        const mine = placeholders(catalogs[lang][k]);
        // An error's sentence may leave out the backend's English details.
        if (k.startsWith('error.') && mine.length === 0) continue;
        expect(mine, `${lang} ${k}`).toEqual(placeholders(en[k]));
      }
    }
  });

  it('Chinese strings are really translated (not English left in place)', () => {
    const same = (Object.keys(en) as (keyof typeof en)[]).filter(
      (k) => catalogs['zh-CN'][k] === en[k] && !(k.startsWith('error.') && en[k] === '{message}'),
    );
    // Names, key names and formats that read the same in both languages.
    expect(same.sort()).toEqual(
      [
        'app.name',
        'chat.assistant',
        'language.en',
        'language.zh-CN',
        'models.pathPlaceholder',
        'msg.versionOf',
        'panel.minP',
        'panel.topK',
        'panel.topP',
        'settings.endpointPlaceholder',
        'settings.version',
      ].sort(),
    );
  });

  it('fills placeholders and formats numbers for the language', () => {
    const t = translator(catalogs.en, 'en');
    expect(t('chat.contextUsage', { used: 1234, total: 8192 })).toBe('1,234 / 8,192 tokens');
    const zh = translator(catalogs['zh-CN'], 'zh-CN');
    expect(zh('msg.stats', { tps: 42.46, ttft: 120, tokens: 7 })).toBe('每秒 42.5 个词元 · 首个词元用时 120 毫秒 · 共 7 个词元');
  });
});
