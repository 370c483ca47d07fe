import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import type { MockOptions } from '../backend/mock';
import { renderApp } from '../test/harness';

function card(id: string): HTMLElement {
  const el = document.querySelector<HTMLElement>(`[data-catalog-id="${id}"]`);
  if (!el) throw new Error(`no catalog card ${id} yet`);
  return el;
}

async function openCatalog(options: MockOptions = {}) {
  const app = await renderApp(options);
  fireEvent.click(screen.getByRole('button', { name: 'Models' }));
  await waitFor(() => card('smollm2-135m-instruct'));
  return app;
}

function progress(id: string): number {
  return Number(within(card(id)).getByRole('progressbar').getAttribute('aria-valuenow'));
}

describe('catalog downloads', () => {
  it('shows fit badges, memory and the predicted speed on this computer, per quantization', async () => {
    await openCatalog();
    expect(screen.getByTestId('machine').textContent).toContain('9 GB of memory free (of 16 GB), 8 cores');
    const qwen = card('qwen2.5-0.5b-instruct');
    expect(within(qwen).getByText('Fits')).toBeTruthy();
    expect(qwen.textContent).toContain('~42 tok/s on this computer');
    expect(qwen.textContent).toContain('needs 600 MB of memory');
    const big = card('qwen3-4b');
    expect(within(big).getByText('Won’t fit').getAttribute('title')).toBe('Needs about 12 GB of memory');
    const select = within(big).getByRole('combobox', { name: 'Quantization' }) as HTMLSelectElement;
    expect([...select.options].map((o) => o.textContent)).toEqual(['Q4_K_M · 2.5 GB · recommended', 'Q6_K · 3.3 GB']);
    fireEvent.change(select, { target: { value: 'Q6_K' } });
    await waitFor(() => expect(within(card('qwen3-4b')).getByText('Tight on memory')).toBeTruthy());
    expect(card('qwen3-4b').textContent).toContain('~3.2 tok/s on this computer');
    // No measured speed before a model is installed; no quantize option without original weights.
    expect(screen.queryByTestId('measured-speed')).toBeNull();
    expect(within(card('smollm2-135m-instruct')).queryByRole('checkbox')).toBeNull();
  });

  it('downloads with a progress bar until the model is installed, then shows its measured speed', async () => {
    const { backend } = await openCatalog({ downloads: { delayMs: 15 } });
    fireEvent.click(within(card('smollm2-135m-instruct')).getByRole('button', { name: 'Download SmolLM2 135M Instruct at Q8_0' }));
    await waitFor(() => {
      const v = progress('smollm2-135m-instruct');
      expect(v).toBeGreaterThan(0);
      expect(v).toBeLessThan(100);
    });
    const bar = within(card('smollm2-135m-instruct')).getByRole('progressbar');
    expect(bar.getAttribute('aria-label')).toBe('Downloading SmolLM2 135M Instruct');
    expect(card('smollm2-135m-instruct').textContent).toMatch(/of 143 MB · 13 MB\/s · about \d+ s left/);
    await waitFor(() => expect(within(card('smollm2-135m-instruct')).getByTestId('installed-badge')).toBeTruthy());
    await waitFor(() => expect(within(card('smollm2-135m-instruct')).getByTestId('measured-speed').textContent).toBe('measured 92 tok/s'));
    expect(document.querySelector('.banner-ok')?.textContent).toBe('Downloaded SmolLM2 135M Instruct. It is ready to use.');
    expect(document.querySelector('[data-model-id="smollm2-135m-instruct-q8_0"]')).toBeTruthy();
    expect(backend.calls.find(([n]) => n === 'pullModel')?.[1]).toEqual([
      { catalogId: 'smollm2-135m-instruct', quant: 'Q8_0', quantizeHere: false },
    ]);
  });

  it('asks to quantize on this computer when the model has original weights', async () => {
    const { backend } = await openCatalog({ downloads: { delayMs: 1 } });
    const qwen = card('qwen2.5-0.5b-instruct');
    fireEvent.click(within(qwen).getByRole('checkbox', { name: 'Quantize on this computer' }));
    fireEvent.click(within(qwen).getByRole('button', { name: /^Download/ }));
    await waitFor(() => expect(within(card('qwen2.5-0.5b-instruct')).getByTestId('installed-badge')).toBeTruthy());
    expect(backend.calls.find(([n]) => n === 'pullModel')?.[1]).toEqual([
      { catalogId: 'qwen2.5-0.5b-instruct', quant: 'Q4_K_M', quantizeHere: true },
    ]);
  });

  it('pauses, then resumes from where it stopped', async () => {
    const { backend } = await openCatalog({ downloads: { delayMs: 25 } });
    const id = 'smollm2-135m-instruct';
    fireEvent.click(within(card(id)).getByRole('button', { name: /^Download/ }));
    await waitFor(() => expect(progress(id)).toBeGreaterThanOrEqual(20));
    fireEvent.click(within(card(id)).getByRole('button', { name: 'Pause' }));
    await waitFor(() => expect(card(id).querySelector('[data-phase="paused"]')).toBeTruthy());
    const kept = progress(id);
    expect(kept).toBeGreaterThanOrEqual(20);
    expect(card(id).textContent).toContain('Paused');
    expect(within(card(id)).queryByRole('button', { name: 'Pause' })).toBeNull();
    fireEvent.click(within(card(id)).getByRole('button', { name: 'Resume' }));
    // The bar starts again from what was kept, not from zero.
    expect(progress(id)).toBe(kept);
    await waitFor(() => expect(within(card(id)).getByTestId('installed-badge')).toBeTruthy());
    expect(backend.calls.filter(([n]) => n === 'pullModel')).toHaveLength(2);
    expect(backend.calls.filter(([n]) => n === 'pausePull')).toHaveLength(1);
  });

  it('cancels a download and installs nothing', async () => {
    const { backend } = await openCatalog({ downloads: { delayMs: 25 } });
    const id = 'smollm2-135m-instruct';
    fireEvent.click(within(card(id)).getByRole('button', { name: /^Download/ }));
    await waitFor(() => expect(progress(id)).toBeGreaterThan(0));
    fireEvent.click(within(card(id)).getByRole('button', { name: 'Cancel download' }));
    await waitFor(() => expect(within(card(id)).getByRole('button', { name: /^Download/ })).toBeTruthy());
    expect(within(card(id)).queryByRole('progressbar')).toBeNull();
    expect(within(card(id)).queryByTestId('installed-badge')).toBeNull();
    expect((await backend.models()).map((m) => m.id)).not.toContain('smollm2-135m-instruct-q8_0');
    expect(backend.calls.filter(([n]) => n === 'cancelPull')).toHaveLength(1);
  });

  it('shows a failed download in English, then in Chinese, and tries again', async () => {
    const offline = { code: 'download.offline', message: 'Cannot reach the download server (connection refused).' };
    const id = 'smollm2-135m-instruct';
    const { backend, unmount } = await openCatalog({ downloads: { delayMs: 1, failWith: offline } });
    fireEvent.click(within(card(id)).getByRole('button', { name: /^Download/ }));
    const alert = await waitFor(() => within(card(id)).getByRole('alert'));
    expect(alert.textContent).toBe(offline.message);
    backend.failDownloads(null);
    fireEvent.click(within(card(id)).getByRole('button', { name: 'Try again' }));
    await waitFor(() => expect(within(card(id)).getByTestId('installed-badge')).toBeTruthy());
    unmount();

    await renderApp({ settings: { language: 'zh-CN' }, downloads: { delayMs: 1, failWith: offline } });
    fireEvent.click(screen.getByRole('button', { name: '模型' }));
    await waitFor(() => card(id));
    fireEvent.click(within(card(id)).getByRole('button', { name: '下载 SmolLM2 135M Instruct（Q8_0）' }));
    const zh = await waitFor(() => within(card(id)).getByRole('alert'));
    expect(zh.textContent).toBe('无法连接下载服务器。请检查网络连接或“设置”中的下载地址；已下载的部分会保留。');
    expect(within(card(id)).getByRole('button', { name: '重试' })).toBeTruthy();
    expect(within(card(id)).getByText('可运行')).toBeTruthy();
  });
});

describe('welcome one-click download', () => {
  it('recommends one model for this computer and gets it with one click, then opens the chat', async () => {
    const { backend } = await renderApp({ models: [], downloads: { delayMs: 10 } });
    const rec = await waitFor(() => screen.getByTestId('recommendation'));
    expect(within(rec).getByRole('heading', { name: 'Recommended for this computer' })).toBeTruthy();
    expect(rec.textContent).toContain('Qwen2.5 0.5B Instruct');
    expect(rec.textContent).toContain('should write about 42 tokens a second here');
    expect(within(rec).getByText('Fits')).toBeTruthy();
    fireEvent.click(within(rec).getByRole('button', { name: 'Get Qwen2.5 0.5B Instruct (300 MB)' }));
    await waitFor(() => expect(Number(within(rec).getByRole('progressbar').getAttribute('aria-valuenow'))).toBeGreaterThan(0));
    await waitFor(() => expect(screen.getByRole('textbox', { name: 'Message' })).toBeTruthy());
    const models = await backend.models();
    expect(models.map((m) => [m.id, m.isDefault])).toEqual([['qwen2.5-0.5b-instruct-q4_k_m', true]]);
    expect(document.querySelector('.banner-ok')?.textContent).toBe('Downloaded Qwen2.5 0.5B Instruct. It is ready to use.');
  });

  it('speaks Chinese on the welcome screen too', async () => {
    await renderApp({ models: [], settings: { language: 'zh-CN' } });
    const rec = await waitFor(() => screen.getByTestId('recommendation'));
    expect(within(rec).getByRole('heading', { name: '为本机推荐' })).toBeTruthy();
    expect(rec.textContent).toContain('每秒约生成 42 个词元');
    expect(within(rec).getByRole('button', { name: /^获取 Qwen2\.5 0\.5B Instruct/ })).toBeTruthy();
  });
});
