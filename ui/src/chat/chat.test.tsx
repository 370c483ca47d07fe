import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it, vi } from 'vitest';
import { composer, liveRegion, messages, renderApp } from '../test/harness';

async function send(text: string) {
  fireEvent.input(composer(), { target: { value: text } });
  fireEvent.keyDown(composer(), { key: 'Enter' });
}

const lastReply = () => messages().filter((m) => m.dataset.role === 'assistant').at(-1)!;

describe('chat', () => {
  it('streams a reply into the thread and announces it', async () => {
    const { backend } = await renderApp({
      reply: () => 'The capital of France is **Paris**. It is on the Seine.',
      chunkDelayMs: 15,
      chunkChars: 6,
    });
    await send('What is the capital of France?');

    // The question shows at once, the reply grows while it streams.
    await waitFor(() => expect(messages()[0]?.textContent).toContain('What is the capital of France?'));
    await waitFor(() => expect(lastReply().dataset.status).toBe('streaming'));
    await waitFor(() => expect(lastReply().textContent).toContain('The cap'));
    expect(screen.getByRole('button', { name: /Stop/ })).toBeTruthy();
    const partial = lastReply().textContent!;
    expect(partial).not.toContain('Seine');

    await waitFor(() => expect(lastReply().dataset.status).toBe('done'), { timeout: 3000 });
    expect(lastReply().querySelector('strong')?.textContent).toBe('Paris');
    expect(within(lastReply()).getByTestId('stats').textContent).toBe(
      '42.5 tokens/s · first token after 12 ms · 14 tokens',
    );
    // The conversation is named after the question, and the context meter shows use.
    await waitFor(() =>
      expect(document.querySelector('.conversation-row.current')?.textContent).toContain('What is the capital of France?'),
    );
    expect(document.querySelector('.context-numbers')?.textContent).toMatch(/^\d+ \/ 8,192 tokens$/);

    const spoken = [...liveRegion().querySelectorAll('p')].map((p) => p.textContent);
    expect(spoken).toContain('The capital of France is Paris.');
    expect(spoken).toContain('It is on the Seine.');
    expect(spoken.at(-1)).toBe('Reply finished.');
    expect(backend.calls.filter(([name]) => name === 'send')).toHaveLength(1);
  });

  it('stops a reply mid-stream and keeps what was written', async () => {
    const { backend } = await renderApp({ reply: () => 'word '.repeat(400), chunkDelayMs: 10, chunkChars: 5 });
    await send('Tell me a long story');
    await waitFor(() => expect(lastReply().textContent!.length).toBeGreaterThan(30));
    fireEvent.click(screen.getByRole('button', { name: /Stop/ }));
    await waitFor(() => expect(lastReply().dataset.status).toBe('cancelled'));
    expect(lastReply().textContent).toContain('Stopped');
    expect(lastReply().textContent!.length).toBeLessThan(1500);
    expect(backend.calls.some(([name]) => name === 'cancel')).toBe(true);
    expect(screen.getByRole('button', { name: /Send/ })).toBeTruthy();
    expect([...liveRegion().querySelectorAll('p')].at(-1)?.textContent).toBe('Reply stopped.');
  });

  it('stops a reply before its first word as stopped, not failed', async () => {
    const { backend } = await renderApp({ reply: () => 'word '.repeat(400), chunkDelayMs: 200, chunkChars: 5 });
    await send('Tell me a long story');
    await waitFor(() => expect(backend.calls.some(([name]) => name === 'send')).toBe(true));
    fireEvent.click(screen.getByRole('button', { name: /Stop/ }));
    await waitFor(() => expect(lastReply().dataset.status).toBe('cancelled'));
    expect(lastReply().textContent).toContain('Stopped');
    expect([...liveRegion().querySelectorAll('p')].at(-1)?.textContent).toBe('Reply stopped.');
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('edits a question into a new branch and switches between branches', async () => {
    await renderApp({ reply: (q) => `Answer to ${q}`, chunkDelayMs: 1, chunkChars: 50 });
    await send('first question');
    await waitFor(() => expect(lastReply().dataset.status).toBe('done'));

    fireEvent.click(within(messages()[0]).getByRole('button', { name: 'Edit' }));
    const edit = screen.getByRole('textbox', { name: 'Edit your question' });
    fireEvent.input(edit, { target: { value: 'second question' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send as a new version' }));

    await waitFor(() => expect(lastReply().textContent).toContain('Answer to second question'));
    await waitFor(() => expect(lastReply().dataset.status).toBe('done'));
    expect(messages()).toHaveLength(2);
    expect(within(messages()[0]).getByTestId('version').textContent).toBe('2 / 2');

    fireEvent.click(within(messages()[0]).getByRole('button', { name: 'Previous version' }));
    await waitFor(() => expect(messages()[0].textContent).toContain('first question'));
    expect(within(messages()[0]).getByTestId('version').textContent).toBe('1 / 2');
    expect(lastReply().textContent).toContain('Answer to first question');

    fireEvent.click(within(messages()[0]).getByRole('button', { name: 'Next version' }));
    await waitFor(() => expect(messages()[0].textContent).toContain('second question'));
  });

  it('regenerates an answer as a second version', async () => {
    let n = 0;
    await renderApp({ reply: () => `Reply number ${++n}`, chunkDelayMs: 1, chunkChars: 50 });
    await send('hello');
    await waitFor(() => expect(lastReply().dataset.status).toBe('done'));
    fireEvent.click(within(lastReply()).getByRole('button', { name: 'Regenerate' }));
    await waitFor(() => expect(lastReply().textContent).toContain('Reply number 2'));
    await waitFor(() => expect(within(lastReply()).getByTestId('version').textContent).toBe('2 / 2'));
  });

  it('copies a reply', async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    await renderApp({ reply: () => 'copy me', chunkDelayMs: 1, chunkChars: 50 });
    await send('q');
    await waitFor(() => expect(lastReply().dataset.status).toBe('done'));
    fireEvent.click(within(lastReply()).getByRole('button', { name: 'Copy' }));
    await waitFor(() => expect(writeText).toHaveBeenCalledWith('copy me'));
    expect(within(lastReply()).getByText('Copied')).toBeTruthy();
  });

  it('opens reply links in the system browser and never runs injected script', async () => {
    const { backend } = await renderApp({
      reply: () => 'See [the docs](https://example.org/docs). <script>window.__bad = 1</script><img src=x onerror="window.__bad=2">',
      chunkDelayMs: 1,
      chunkChars: 200,
    });
    await send('links?');
    await waitFor(() => expect(lastReply().dataset.status).toBe('done'));
    expect(lastReply().querySelector('script, img')).toBeNull();
    expect(lastReply().textContent).toContain('<script>');
    fireEvent.click(within(lastReply()).getByRole('link', { name: 'the docs' }));
    await waitFor(() => expect(backend.openedLinks).toEqual(['https://example.org/docs']));
    expect((window as unknown as { __bad?: number }).__bad).toBeUndefined();
  });

  it('renames, searches and deletes conversations', async () => {
    await renderApp({ reply: (q) => (q.includes('France') ? 'Paris is the capital.' : 'Sure.'), chunkDelayMs: 1, chunkChars: 50 });
    await send('capital of France');
    await waitFor(() => expect(lastReply().dataset.status).toBe('done'));
    fireEvent.click(screen.getByRole('button', { name: /New chat/ }));
    await send('something else');
    await waitFor(() => expect(lastReply().dataset.status).toBe('done'));
    await waitFor(() => expect(document.querySelectorAll('.conversation-row')).toHaveLength(2));

    // Rename the older one.
    const row = [...document.querySelectorAll<HTMLElement>('.conversation-row')].find((r) => r.textContent!.includes('capital of France'))!;
    fireEvent.click(within(row).getByRole('button', { name: 'Rename' }));
    const input = screen.getByRole('textbox', { name: 'New title' });
    fireEvent.input(input, { target: { value: 'Geography' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    await waitFor(() => expect(screen.getByText('Geography')).toBeTruthy());

    // Search finds the reply text and opens its conversation with the match highlighted.
    const search = screen.getByRole('searchbox', { name: 'Search conversations' });
    fireEvent.input(search, { target: { value: 'capital' } });
    await waitFor(() => expect(document.querySelector('.search-hit mark')?.textContent).toBe('capital'));
    expect(screen.getByText('2 results')).toBeTruthy();
    fireEvent.click(document.querySelector('.search-hit')!);
    await waitFor(() => expect(document.querySelector('.chat-title')?.textContent).toBe('Geography'));

    // Delete it.
    fireEvent.input(search, { target: { value: '' } });
    await waitFor(() => expect(document.querySelectorAll('.conversation-row')).toHaveLength(2));
    const geo = [...document.querySelectorAll<HTMLElement>('.conversation-row')].find((r) => r.textContent!.includes('Geography'))!;
    fireEvent.click(within(geo).getByRole('button', { name: 'Delete' }));
    fireEvent.click(screen.getByRole('button', { name: 'Yes' }));
    await waitFor(() => expect(document.querySelectorAll('.conversation-row')).toHaveLength(1));
    expect(screen.queryByText('Geography')).toBeNull();
  });

  it('saves the system prompt, presets and sampling settings', async () => {
    const { backend } = await renderApp();
    fireEvent.click(screen.getByRole('button', { name: 'Chat settings' }));
    const prompt = screen.getByRole('textbox', { name: 'System prompt' }) as HTMLTextAreaElement;
    expect(prompt.value).toBe('You are a helpful assistant.');
    fireEvent.input(prompt, { target: { value: 'Answer like a pirate.' } });
    fireEvent.blur(prompt);
    await waitFor(async () => expect((await backend.settings()).systemPrompt).toBe('Answer like a pirate.'));

    fireEvent.input(screen.getByRole('textbox', { name: 'Preset name' }), { target: { value: 'Pirate' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save as preset' }));
    await waitFor(async () => expect(await backend.presets()).toEqual([{ name: 'Pirate', prompt: 'Answer like a pirate.' }]));

    const temp = screen.getByRole('spinbutton', { name: 'Temperature' });
    fireEvent.change(temp, { target: { value: '0.2' } });
    await waitFor(async () => expect((await backend.settings()).sampling.temperature).toBe(0.2));

    fireEvent.input(prompt, { target: { value: 'Be brief.' } });
    fireEvent.blur(prompt);
    await waitFor(async () => expect((await backend.settings()).systemPrompt).toBe('Be brief.'));
    fireEvent.click(screen.getByRole('button', { name: 'Use Pirate' }));
    await waitFor(async () => expect((await backend.settings()).systemPrompt).toBe('Answer like a pirate.'));

    fireEvent.click(screen.getByRole('button', { name: 'Reset to defaults' }));
    await waitFor(async () => expect((await backend.settings()).sampling.temperature).toBe(0.7));
  });

  it('says known errors in the UI language', async () => {
    await renderApp({ models: [], settings: { language: 'zh-CN' } });
    fireEvent.click(screen.getByRole('button', { name: '先随便看看' }));
    await send('你好');
    const alert = await screen.findByRole('alert');
    expect(alert.dataset.code).toBe('models.none');
    expect(alert.textContent).toContain('还没有安装模型。请先导入一个模型文件。');
    expect(alert.textContent).not.toContain('Import a model file first');
  });

  it('shows backend errors as {code, message} banners', async () => {
    await renderApp({ models: [] });
    fireEvent.click(screen.getByRole('button', { name: 'Look around first' }));
    await send('hello');
    const alert = await screen.findByRole('alert');
    expect(alert.dataset.code).toBe('models.none');
    expect(alert.textContent).toContain('No model is installed yet. Import a model file first.');
    expect(screen.getByRole('button', { name: 'Import a model' })).toBeTruthy();
  });
});
