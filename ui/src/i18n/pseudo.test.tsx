/**
 * Renders every view in a pseudo-language where each catalog string is wrapped in ⟦ ⟧, then
 * checks that every piece of visible text and every label, title and placeholder is wrapped:
 * anything else was written into a component instead of the catalogs (and would stay English
 * in Chinese). User data (messages, titles, paths) is marked data-user; Intl-formatted values
 * data-l10n; key caps are <kbd>.
 */
import { fireEvent, screen, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { composer, messages, renderApp } from '../test/harness';
import { PSEUDO_CLOSE, PSEUDO_OPEN, pseudoMessages } from './index';

const EXEMPT = '[data-user], [data-l10n], kbd, script, style';
const wrapped = (s: string) => s.startsWith(PSEUDO_OPEN) && s.endsWith(PSEUDO_CLOSE);

function untranslated(): string[] {
  const bad: string[] = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent?.trim() ?? '';
    if (!text || n.parentElement?.closest(EXEMPT)) continue;
    if (!wrapped(text)) bad.push(`text: ${JSON.stringify(text)} in <${n.parentElement?.tagName.toLowerCase()} class="${n.parentElement?.className}">`);
  }
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest(EXEMPT)) continue;
    for (const attr of ['aria-label', 'placeholder', 'title', 'alt']) {
      const v = el.getAttribute(attr);
      if (v && !wrapped(v)) bad.push(`${attr}: ${JSON.stringify(v)} on <${el.tagName.toLowerCase()}>`);
    }
  }
  if (!wrapped(document.title)) bad.push(`document.title: ${document.title}`);
  return bad;
}

const P = (s: string) => PSEUDO_OPEN + s + PSEUDO_CLOSE;

describe('every visible string comes from the catalogs', () => {
  it('welcome screen', async () => {
    await renderApp({ models: [], messages: pseudoMessages() });
    expect(screen.getByRole('heading', { name: P('Welcome to Hearth') })).toBeTruthy();
    expect(untranslated()).toEqual([]);
  });

  it('chat, with a thread, versions, settings panel, search, errors and help', async () => {
    const { backend } = await renderApp({ messages: pseudoMessages(), chunkDelayMs: 1, chunkChars: 40 });
    expect(untranslated()).toEqual([]);
    const ask = async (text: string) => {
      fireEvent.input(composer(), { target: { value: text } });
      fireEvent.keyDown(composer(), { key: 'Enter' });
      await waitFor(() => expect(messages().at(-1)?.dataset.status).toBe('done'));
    };
    await ask('hello there');
    fireEvent.click(screen.getByRole('button', { name: P('Regenerate') }));
    await waitFor(() => expect(document.querySelector('[data-testid="version"]')).toBeTruthy());
    await waitFor(() => expect(messages().at(-1)?.dataset.status).toBe('done'));
    fireEvent.click(screen.getByRole('button', { name: P('Chat settings') }));
    await backend.setPresets([{ name: 'Pirate', prompt: 'Arr' }]);
    fireEvent.click(screen.getByRole('button', { name: P('Chat settings') }));
    fireEvent.click(screen.getByRole('button', { name: P('Chat settings') }));
    await waitFor(() => expect(screen.getByText('Pirate')).toBeTruthy());
    fireEvent.click(screen.getByRole('button', { name: P('Edit') }));
    expect(untranslated()).toEqual([]);

    fireEvent.input(screen.getByRole('searchbox'), { target: { value: 'hello' } });
    await waitFor(() => expect(document.querySelector('.search-hit')).toBeTruthy());
    expect(untranslated()).toEqual([]);
    fireEvent.input(screen.getByRole('searchbox'), { target: { value: 'zzzz' } });
    await waitFor(() => expect(document.querySelector('.sidebar-empty')).toBeTruthy());
    expect(untranslated()).toEqual([]);

    backend.dropFiles({ type: 'hover', paths: ['/x.txt'] });
    backend.dropFiles({ type: 'drop', paths: ['/x.txt'] });
    await screen.findByRole('alert');
    fireEvent.keyDown(window, { key: 'F1' });
    await screen.findByRole('dialog');
    expect(untranslated()).toEqual([]);
  });

  it('chat rows being renamed and deleted, a stopped reply', async () => {
    await renderApp({ messages: pseudoMessages(), reply: () => 'x '.repeat(500), chunkDelayMs: 5, chunkChars: 4 });
    fireEvent.input(composer(), { target: { value: 'q' } });
    fireEvent.keyDown(composer(), { key: 'Enter' });
    await waitFor(() => expect(messages().at(-1)?.textContent).toContain('x x'));
    expect(untranslated()).toEqual([]);
    fireEvent.click(screen.getByRole('button', { name: P('Stop') }));
    await waitFor(() => expect(messages().at(-1)?.dataset.status).toBe('cancelled'));
    fireEvent.click(screen.getByRole('button', { name: P('Delete') }));
    expect(untranslated()).toEqual([]);
    fireEvent.click(screen.getByRole('button', { name: P('No') }));
    fireEvent.click(screen.getByRole('button', { name: P('Rename') }));
    expect(untranslated()).toEqual([]);
  });

  it('models and settings', async () => {
    await renderApp({ messages: pseudoMessages(), info: { notice: 'The database was damaged and set aside.' } });
    fireEvent.click(screen.getByRole('button', { name: P('Models') }));
    fireEvent.click(screen.getByRole('button', { name: new RegExp('Remove') }));
    expect(untranslated()).toEqual([]);
    fireEvent.click(screen.getByRole('button', { name: P('Settings') }));
    expect(untranslated()).toEqual([]);
  });

  it('startup failure', async () => {
    await renderApp({
      messages: pseudoMessages(),
      info: { startupError: { code: 'store.io', message: 'Permission denied' } },
    });
    await waitFor(() => expect(document.querySelector('.fatal')).toBeTruthy());
    expect(untranslated()).toEqual([]);
  });
});
