/** The message box: Enter sends, Shift+Enter adds a line; Stop while a reply streams. */
import type { Ref } from 'preact';
import { useState } from 'preact/hooks';
import { Icon } from '../icons';
import { useI18n } from '../i18n';

interface Props {
  inputRef: Ref<HTMLTextAreaElement>;
  streaming: boolean;
  /** A reply streams in another conversation: sending waits for it. */
  blocked: boolean;
  /** Resolves to true when the message was accepted (the box is then cleared). */
  onSend(text: string): Promise<boolean>;
  onStop(): void;
}

export function Composer({ inputRef, streaming, blocked, onSend, onStop }: Props) {
  const { t } = useI18n();
  const [text, setText] = useState('');
  const canSend = !streaming && !blocked && text.trim().length > 0;

  const submit = async (e?: Event) => {
    e?.preventDefault();
    if (!canSend) return;
    const sent = text;
    setText('');
    const ok = await onSend(sent);
    if (!ok) setText((now) => now || sent);
  };

  return (
    <form class="composer" onSubmit={submit}>
      <textarea
        ref={inputRef}
        class="composer-input"
        aria-label={t('chat.inputLabel')}
        placeholder={t('chat.inputPlaceholder')}
        rows={Math.min(8, Math.max(2, text.split('\n').length))}
        value={text}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void submit();
          }
        }}
      />
      {streaming ? (
        <button type="button" class="button-danger composer-button" data-action="stop" onClick={onStop}>
          <Icon name="stop" /> {t('chat.stop')}
        </button>
      ) : (
        <button type="submit" class="button-primary composer-button" data-action="send" disabled={!canSend}>
          <Icon name="send" /> {t('chat.send')}
        </button>
      )}
    </form>
  );
}
