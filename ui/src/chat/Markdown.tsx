/** A reply rendered as sanitized Markdown; links open in the system browser. */
import { useMemo } from 'preact/hooks';
import { useApp } from '../app/context';
import { toAppError } from '../backend/types';
import { renderMarkdown } from '../markdown';

export function Markdown({ text }: { text: string }) {
  const { backend, report } = useApp();
  const html = useMemo(() => renderMarkdown(text), [text]);
  const onClick = (e: MouseEvent) => {
    const link = (e.target as Element | null)?.closest?.('a[href]');
    if (!link) return;
    e.preventDefault();
    backend.openLink(link.getAttribute('href') ?? '').catch((err) => report(toAppError(err)));
  };
  return <div class="markdown" data-user onClick={onClick} dangerouslySetInnerHTML={{ __html: html }} />;
}
