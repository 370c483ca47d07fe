import { fireEvent, screen, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { renderApp } from '../test/harness';

describe('settings', () => {
  it('switches the theme at once', async () => {
    const { backend } = await renderApp();
    expect(document.documentElement.dataset.theme).toBe('light'); // the system (jsdom) is light
    fireEvent.click(screen.getByRole('button', { name: 'Settings' }));
    fireEvent.click(screen.getByRole('radio', { name: 'Dark' }));
    await waitFor(() => expect(document.documentElement.dataset.theme).toBe('dark'));
    expect((await backend.settings()).theme).toBe('dark');
    fireEvent.click(screen.getByRole('radio', { name: 'Light' }));
    await waitFor(() => expect(document.documentElement.dataset.theme).toBe('light'));
    fireEvent.click(screen.getByRole('radio', { name: 'Same as the system' }));
    await waitFor(async () => expect((await backend.settings()).theme).toBe('system'));
  });

  it('switches the language to Chinese and back', async () => {
    await renderApp();
    fireEvent.click(screen.getByRole('button', { name: 'Settings' }));
    fireEvent.change(screen.getByRole('combobox', { name: 'Language' }), { target: { value: 'zh-CN' } });
    await waitFor(() => expect(screen.getByRole('button', { name: '聊天' })).toBeTruthy());
    expect(document.documentElement.lang).toBe('zh-CN');
    expect(screen.getByRole('heading', { name: '设置' })).toBeTruthy();
    fireEvent.change(screen.getByRole('combobox', { name: '语言' }), { target: { value: 'en' } });
    await waitFor(() => expect(screen.getByRole('button', { name: 'Chat' })).toBeTruthy());
    expect(document.documentElement.lang).toBe('en');
  });

  it('saves threads and the download endpoint, and shows refusals', async () => {
    const { backend } = await renderApp();
    fireEvent.click(screen.getByRole('button', { name: 'Settings' }));
    const threads = screen.getByRole('spinbutton', { name: 'Threads' });
    fireEvent.input(threads, { target: { value: '3' } });
    fireEvent.change(threads);
    await waitFor(async () => expect((await backend.settings()).threads).toBe(3));

    const endpoint = screen.getByRole('textbox', { name: 'Download endpoint' });
    fireEvent.input(endpoint, { target: { value: 'ftp://mirror' } });
    fireEvent.change(endpoint);
    const alert = await screen.findByRole('alert');
    expect(alert.dataset.code).toBe('settings.invalid');
    fireEvent.input(endpoint, { target: { value: 'https://mirror.example' } });
    fireEvent.change(endpoint);
    await waitFor(async () => expect((await backend.settings()).downloadEndpoint).toBe('https://mirror.example'));
  });

  it('saves the document limits and refuses one out of range', async () => {
    const { backend } = await renderApp();
    fireEvent.click(screen.getByRole('button', { name: 'Settings' }));
    const size = screen.getByRole('spinbutton', { name: 'Largest document (MB)' });
    expect((size as HTMLInputElement).value).toBe('200');
    fireEvent.input(size, { target: { value: '50' } });
    fireEvent.change(size);
    await waitFor(async () => expect((await backend.settings()).documents.maxFileMb).toBe(50));
    const pages = screen.getByRole('spinbutton', { name: 'Most pages of a PDF' });
    fireEvent.input(pages, { target: { value: '0' } });
    fireEvent.change(pages);
    const alert = await screen.findByRole('alert');
    expect(alert.dataset.code).toBe('settings.invalid');
    expect((await backend.settings()).documents).toEqual({ maxFileMb: 50, maxPages: 2000, maxDecompressedMb: 512 });
  });

  it('chooses a data folder for the next start', async () => {
    const { backend } = await renderApp({ picks: ['/mnt/usb/hearth'] });
    fireEvent.click(screen.getByRole('button', { name: 'Settings' }));
    expect(screen.getByTestId('data-dir').textContent).toBe('In use: /home/user/.local/share/hearth');
    fireEvent.click(screen.getByRole('button', { name: /Choose folder/ }));
    await waitFor(() => expect(screen.getByText('From the next start: /mnt/usb/hearth')).toBeTruthy());
    fireEvent.click(screen.getByRole('button', { name: 'Use the default folder' }));
    await waitFor(() => expect(screen.queryByText(/From the next start/)).toBeNull());
    expect(backend.calls.filter(([n]) => n === 'setDataFolder').map(([, a]) => a)).toEqual([['/mnt/usb/hearth'], [null]]);
  });

  it('shows one "saved" message for several saves in a row', async () => {
    const { backend } = await renderApp();
    fireEvent.click(screen.getByRole('button', { name: 'Settings' }));
    for (const theme of ['Dark', 'Light', 'Dark']) {
      fireEvent.click(screen.getByRole('radio', { name: theme }));
      await waitFor(async () => expect((await backend.settings()).theme).toBe(theme.toLowerCase()));
    }
    await waitFor(() => expect(screen.getAllByText('Settings saved.')).toHaveLength(1));
  });
});
