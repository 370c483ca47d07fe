/**
 * UI strings in English and Simplified Chinese. Components get `t` from `useI18n()` and never
 * write user-visible text themselves; `t(key, vars)` fills `{name}` placeholders (numbers are
 * formatted for the language). A pseudo-language (tests only) marks every string so a test can
 * prove that nothing on screen bypasses the catalog.
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Language } from '../backend/types';
import { en } from './en';
import { zhCN } from './zh-CN';

export type MessageKey = keyof typeof en;
export type Messages = Record<MessageKey, string>;
export type Vars = Record<string, string | number>;
export type Translate = (key: MessageKey, vars?: Vars) => string;

export const LANGUAGES: Language[] = ['en', 'zh-CN'];
export const catalogs: Record<Language, Messages> = { en, 'zh-CN': zhCN };

export const PSEUDO_OPEN = '⟦';
export const PSEUDO_CLOSE = '⟧';

/** Every string wrapped in ⟦ ⟧ (for the test that finds untranslated text). */
export function pseudoMessages(): Messages {
  const out = {} as Messages;
  for (const k of Object.keys(en) as MessageKey[]) out[k] = PSEUDO_OPEN + en[k] + PSEUDO_CLOSE;
  return out;
}

export function translator(messages: Messages, locale: string): Translate {
  const numbers = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
  return (key, vars) => {
    const text = messages[key] ?? en[key] ?? key;
    if (!vars) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name: string) => {
      const v = vars[name];
      if (v === undefined) return whole;
      return typeof v === 'number' ? numbers.format(v) : v;
    });
  };
}

export interface I18n {
  lang: string;
  t: Translate;
}

export const I18nContext = createContext<I18n>({ lang: 'en', t: translator(en, 'en') });

export function useI18n(): I18n {
  return useContext(I18nContext);
}

export function i18nFor(language: string, messages?: Messages): I18n {
  const lang = language === 'zh-CN' ? 'zh-CN' : 'en';
  return { lang, t: translator(messages ?? catalogs[lang], lang) };
}
