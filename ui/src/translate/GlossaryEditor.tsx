/**
 * The glossary of one language pair: the terms with their required translations, added,
 * changed (adding a term again) and removed. The backend applies them through the prompt and
 * reports the terms that did not come out.
 */
import { useEffect, useState } from 'preact/hooks';
import { useApp } from '../app/context';
import type { GlossaryItem } from '../backend/translate-types';
import { toAppError } from '../backend/types';
import { Icon } from '../icons';
import { useI18n } from '../i18n';
import { useLanguageName } from './languages';

interface Props {
  source: string | null;
  target: string;
  /** Called with the number of terms whenever the list changes. */
  onCount?(count: number): void;
}

export function GlossaryEditor({ source, target, onCount }: Props) {
  const { t } = useI18n();
  const { backend, report } = useApp();
  const name = useLanguageName();
  const [items, setItems] = useState<GlossaryItem[]>([]);
  const [term, setTerm] = useState('');
  const [translation, setTranslation] = useState('');

  useEffect(() => {
    if (!source) {
      setItems([]);
      return;
    }
    let alive = true;
    backend
      .glossary(source, target)
      .then((list) => alive && setItems(list))
      .catch((e) => alive && report(toAppError(e)));
    return () => {
      alive = false;
    };
  }, [backend, report, source, target]);

  useEffect(() => onCount?.(items.length), [items, onCount]);

  if (!source) {
    return <p class="field-hint">{t('translate.glossaryNeedsSource')}</p>;
  }

  const add = async (e: Event) => {
    e.preventDefault();
    if (!term.trim() || !translation.trim()) return;
    try {
      const item = await backend.setGlossaryTerm(source, target, term, translation);
      setItems((list) =>
        [...list.filter((x) => x.id !== item.id && x.term !== item.term), item].sort((a, b) => a.term.localeCompare(b.term)),
      );
      setTerm('');
      setTranslation('');
    } catch (err) {
      report(toAppError(err));
    }
  };

  const remove = async (id: number) => {
    try {
      await backend.deleteGlossaryTerm(id);
      setItems((list) => list.filter((x) => x.id !== id));
    } catch (err) {
      report(toAppError(err));
    }
  };

  return (
    <div class="glossary" data-testid="glossary">
      <p class="field-hint">{t('translate.glossaryHint', { source: name(source), target: name(target) })}</p>
      {items.length === 0 ? (
        <p class="field-hint">{t('translate.glossaryEmpty')}</p>
      ) : (
        <table class="glossary-table">
          <thead>
            <tr>
              <th scope="col">{t('translate.glossaryTerm')}</th>
              <th scope="col">{t('translate.glossaryTranslation')}</th>
              <th scope="col">
                <span class="visually-hidden">{t('translate.glossaryActions')}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((g) => (
              <tr key={g.id} data-term={g.term}>
                <td data-user>{g.term}</td>
                <td data-user>{g.translation}</td>
                <td>
                  <button
                    type="button"
                    class="icon-button"
                    aria-label={t('translate.glossaryRemove', { term: g.term })}
                    title={t('translate.glossaryRemove', { term: g.term })}
                    onClick={() => void remove(g.id)}
                  >
                    <Icon name="trash" />
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="glossary-add" onSubmit={add}>
        <label class="field">
          <span class="field-label">{t('translate.glossaryTerm')}</span>
          <input value={term} onInput={(e) => setTerm(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span class="field-label">{t('translate.glossaryTranslation')}</span>
          <input value={translation} onInput={(e) => setTranslation(e.currentTarget.value)} />
        </label>
        <button type="submit" class="button-quiet" disabled={!term.trim() || !translation.trim()}>
          <Icon name="plus" /> {t('translate.glossaryAdd')}
        </button>
      </form>
    </div>
  );
}
