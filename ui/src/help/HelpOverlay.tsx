/** The list of keyboard shortcuts (F1 or Ctrl+/); Escape or the button closes it. */
import { useEffect, useRef } from 'preact/hooks';
import { Icon } from '../icons';
import { useI18n } from '../i18n';
import { SHORTCUTS } from '../shortcuts';

export function HelpOverlay({ onClose }: { onClose(): void }) {
  const { t } = useI18n();
  const closeRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    closeRef.current?.focus();
    return () => before?.focus?.();
  }, []);
  return (
    <div class="overlay" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="help-title">
        <header class="dialog-head">
          <h2 id="help-title">{t('help.title')}</h2>
          <button ref={closeRef} type="button" class="icon-button" aria-label={t('common.close')} onClick={onClose}>
            <Icon name="close" />
          </button>
        </header>
        <table class="shortcuts">
          <tbody>
            {SHORTCUTS.map((s) => (
              <tr key={s.label}>
                <th scope="row">{t(s.label)}</th>
                <td>
                  {s.keys.map((combo, i) => (
                    <span class="combo" key={i}>
                      {combo.map((k) => (
                        <kbd key={k}>{k}</kbd>
                      ))}
                    </span>
                  ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
