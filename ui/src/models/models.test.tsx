import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { sampleModel } from '../backend/mock';
import { renderApp } from '../test/harness';

const MODEL = '/home/me/models/smollm2-135m-instruct-q4_1.gguf';

describe('first run and models', () => {
  it('welcomes a new user and imports a typed path, then opens the chat', async () => {
    const { backend } = await renderApp({ models: [] });
    expect(screen.getByRole('heading', { name: 'Welcome to Hearth' })).toBeTruthy();
    fireEvent.input(screen.getByRole('textbox', { name: 'Path to a .gguf file' }), { target: { value: MODEL } });
    fireEvent.click(screen.getByRole('button', { name: 'Import' }));
    await waitFor(() => expect(screen.getByRole('textbox', { name: 'Message' })).toBeTruthy());
    expect(backend.calls.find(([n]) => n === 'importModel')?.[1]).toEqual([MODEL]);
    expect(document.querySelector('.banner-ok')?.textContent).toBe('Imported smollm2-135m-instruct-q4_1.');
    expect(document.getElementById('live-region')?.textContent).toContain('Imported smollm2-135m-instruct-q4_1.');
  });

  it('imports through the system picker', async () => {
    const { backend } = await renderApp({ models: [], picks: [MODEL] });
    fireEvent.click(screen.getByRole('button', { name: /Choose file/ }));
    await waitFor(() => expect(screen.getByRole('textbox', { name: 'Message' })).toBeTruthy());
    expect(backend.calls.find(([n]) => n === 'pickFile')?.[1]).toEqual(['model', 'Choose a model file']);
  });

  it('imports a .gguf dropped on the window; other files go to the Documents view', async () => {
    const { backend } = await renderApp();
    backend.dropFiles({ type: 'hover', paths: ['/tmp/x.gguf'] });
    await waitFor(() => expect(screen.getByText(/Drop documents to summarize them/)).toBeTruthy());
    backend.dropFiles({ type: 'drop', paths: ['/data/qwen.gguf'] });
    await waitFor(() => expect(document.querySelector('[data-model-id="qwen"]')).toBeTruthy());
    expect(document.querySelector('.view')?.getAttribute('data-current-view')).toBe('models');
    expect(screen.queryByText(/Drop documents to summarize them/)).toBeNull();

    backend.dropFiles({ type: 'drop', paths: ['/data/notes.txt'] });
    await waitFor(() => expect(document.querySelector('.view')?.getAttribute('data-current-view')).toBe('documents'));
    await waitFor(() => expect(backend.calls.some(([n, a]) => n === 'addDocument' && a[0] === '/data/notes.txt')).toBe(true));
    expect(backend.calls.filter(([n]) => n === 'importModel')).toHaveLength(1);
  });

  it('lists models, changes the default and removes one', async () => {
    const { backend } = await renderApp({
      models: [sampleModel(), sampleModel({ id: 'qwen', name: 'Qwen 0.5B', isDefault: false, arch: 'qwen2' })],
    });
    fireEvent.click(screen.getByRole('button', { name: 'Models' }));
    const qwen = document.querySelector<HTMLElement>('[data-model-id="qwen"]')!;
    expect(within(qwen).getByText('qwen2')).toBeTruthy();
    expect(within(qwen).getByText('98 MB')).toBeTruthy();
    expect(within(qwen).getByText('8,192 tokens')).toBeTruthy();
    fireEvent.click(within(qwen).getByRole('button', { name: 'Make default' }));
    await waitFor(() => expect(within(document.querySelector<HTMLElement>('[data-model-id="qwen"]')!).getByTestId('default-badge')).toBeTruthy());

    const smol = document.querySelector<HTMLElement>('[data-model-id="smollm2-135m-instruct-q4_1"]')!;
    fireEvent.click(within(smol).getByRole('button', { name: /Remove/ }));
    fireEvent.click(within(smol).getByRole('button', { name: 'Yes' }));
    await waitFor(() => expect(document.querySelector('[data-model-id="smollm2-135m-instruct-q4_1"]')).toBeNull());
    expect((await backend.models()).map((m) => m.id)).toEqual(['qwen']);
  });

  it('lists the catalog with what each model is', async () => {
    await renderApp();
    fireEvent.click(screen.getByRole('button', { name: 'Models' }));
    const qwen = await waitFor(() => {
      const el = document.querySelector<HTMLElement>('[data-catalog-id="qwen2.5-0.5b-instruct"]');
      if (!el) throw new Error('not yet');
      return el;
    });
    expect(qwen.textContent).toContain('Qwen2.5 0.5B Instruct');
    expect(qwen.textContent).toContain('494M parameters');
    expect(qwen.textContent).toContain('about 300 MB at Q4_K_M');
    expect(qwen.textContent).toContain('32,768-token context');
    expect(qwen.textContent).toContain('Languages: English, Chinese, French');
  });
});
