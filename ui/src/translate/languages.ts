/**
 * Language names as the UI shows them (in the UI's language, from the catalogs), for the codes
 * translation offers.
 */
import { en } from '../i18n/en';
import { useI18n, type MessageKey, type Translate } from '../i18n';

/** The codes translation offers, in the order the selects list them. */
export const TRANSLATE_LANGUAGES = ['en', 'zh', 'fr', 'de', 'es', 'ja', 'ko', 'ru', 'it', 'pt'];

export function languageName(code: string, t: Translate): string {
  const key = `translate.lang.${code}`;
  return key in en ? t(key as MessageKey) : code;
}

export function useLanguageName(): (code: string) => string {
  const { t } = useI18n();
  return (code) => languageName(code, t);
}
