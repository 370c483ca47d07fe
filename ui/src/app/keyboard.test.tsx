import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { composer, messages, renderApp } from '../test/harness';
import { SHORTCUTS } from '../shortcuts';

const key = (k: string, extra: Partial<KeyboardEventInit> = {}) => fireEvent.keyDown(window, { key: k, ...extra });

async function ask(text: string) {
  fireEvent.input(composer(), { target: { value: text } });
  fireEvent.keyDown(composer(), { key: 'Enter' });
  await waitFor(() => expect(messages().at(-1)?.dataset.status).toBe('done'));
}

describe('keyboard', () => {
  it('lists every shortcut in the help overlay (F1), closed by Escape', async () => {
    await renderApp();
    key('F1');
    const dialog = await screen.findByRole('dialog', { name: 'Keyboard shortcuts' });
    expect(within(dialog).getAllByRole('row')).toHaveLength(SHORTCUTS.length);
    expect(within(dialog).getByText('Stop the reply')).toBeTruthy();
    key('Escape');
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    key('/', { ctrlKey: true });
    await screen.findByRole('dialog');
  });

  it('new chat, focus, search, switch conversations and views', async () => {
    await renderApp({ chunkDelayMs: 1, chunkChars: 100 });
    await ask('first');
    key('n', { ctrlKey: true });
    await waitFor(() => expect(messages()).toHaveLength(0));
    expect(document.activeElement).toBe(composer());
    await ask('second');
    await waitFor(() => expect(document.querySelectorAll('.conversation-row')).toHaveLength(2));

    key('ArrowDown', { altKey: true });
    await waitFor(() => expect(messages()[0]?.textContent).toContain('first'));
    key('ArrowUp', { altKey: true });
    await waitFor(() => expect(messages()[0]?.textContent).toContain('second'));

    key('k', { ctrlKey: true });
    expect(document.activeElement).toBe(screen.getByRole('searchbox', { name: 'Search conversations' }));
    key('l', { ctrlKey: true });
    expect(document.activeElement).toBe(composer());

    key('2', { ctrlKey: true });
    await waitFor(() => expect(document.querySelector('.view')?.getAttribute('data-current-view')).toBe('models'));
    key('3', { ctrlKey: true });
    await waitFor(() => expect(document.querySelector('.view')?.getAttribute('data-current-view')).toBe('settings'));
    key('1', { ctrlKey: true });
    await waitFor(() => expect(document.querySelector('.view')?.getAttribute('data-current-view')).toBe('chat'));
  });

  it('Escape stops a streaming reply', async () => {
    await renderApp({ reply: () => 'slow '.repeat(500), chunkDelayMs: 10, chunkChars: 5 });
    fireEvent.input(composer(), { target: { value: 'go' } });
    fireEvent.keyDown(composer(), { key: 'Enter' });
    await waitFor(() => expect(messages().at(-1)?.textContent).toContain('slow slow'));
    key('Escape');
    await waitFor(() => expect(messages().at(-1)?.dataset.status).toBe('cancelled'));
  });

  it('Shift+Enter adds a line instead of sending', async () => {
    const { backend } = await renderApp();
    fireEvent.input(composer(), { target: { value: 'line one' } });
    fireEvent.keyDown(composer(), { key: 'Enter', shiftKey: true });
    expect(backend.calls.some(([n]) => n === 'send')).toBe(false);
  });
});
