import { configure, fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { liveRegion, renderApp } from '../test/harness';
import type { MockOptions } from '../backend/mock';
import { PSEUDO_CLOSE, PSEUDO_OPEN, pseudoMessages, type Messages } from '../i18n';

async function openTranslate(options: MockOptions & { messages?: Messages } = {}) {
  const app = await renderApp({ chunkDelayMs: 1, ...options });
  fireEvent.click(screen.getByRole('button', { name: options.messages ? P('Translate') : /^(Translate|翻译)$/ }));
  await waitFor(() => expect(document.querySelector('.view')?.getAttribute('data-current-view')).toBe('translate'));
  return app;
}

const pane = () => document.querySelector('[data-pane="translate"]') as HTMLElement;
const source = () => within(pane()).getByRole('textbox', { name: /Text to translate|要翻译的文本/ }) as HTMLTextAreaElement;
const targetSelect = () => pane().querySelector('[data-testid="target-lang"]') as HTMLSelectElement;
const sourceSelect = () => pane().querySelector('[data-testid="source-lang"]') as HTMLSelectElement;
const output = () => pane().querySelector('[data-testid="target-blocks"]') as HTMLElement;
const blocks = (side: 'source' | 'target') => [...pane().querySelectorAll<HTMLElement>(`.translate-block[data-side="${side}"]`)];
const translateButton = () => pane().querySelector('[data-action="translate"]') as HTMLButtonElement;

function type(text: string) {
  fireEvent.input(source(), { target: { value: text } });
}

async function translateTo(target: string) {
  fireEvent.change(targetSelect(), { target: { value: target } });
  fireEvent.click(translateButton());
}

async function finished(status = 'done') {
  await waitFor(() => expect(output().dataset.status).toBe(status), { timeout: 4000 });
}

const P = (s: string) => PSEUDO_OPEN + s + PSEUDO_CLOSE;

// Streams run on timers: leave room for a loaded machine.
configure({ asyncUtilTimeout: 5000 });

describe('translate view', { timeout: 30_000 }, () => {
  it('detects the source language as it is typed and streams the translation beside it, block by block', async () => {
    const { backend } = await openTranslate({ translate: { chunkDelayMs: 8, chunkChars: 2 } });
    type('Hello world.\n\nA second paragraph here.');
    await waitFor(() => expect(within(pane()).getByTestId('detected').textContent).toContain('English'));
    expect(sourceSelect().selectedOptions[0].textContent).toBe('Detect language (English)');
    await waitFor(() => expect(within(pane()).getByTestId('model-used').textContent).toBe('Will translate with Qwen2.5 0.5B Instruct'));

    await translateTo('zh');
    // While it streams: the output is busy, the block being written is marked, progress shows.
    await waitFor(() => expect(pane().querySelector('.translate-block.writing')).toBeTruthy());
    expect(output().getAttribute('aria-live')).toBe('polite');
    expect(output().getAttribute('aria-busy')).toBe('true');
    expect(within(pane()).getByTestId('progress').textContent).toMatch(/Block [12] of 2/);
    expect(within(pane()).getByRole('button', { name: 'Cancel' })).toBeTruthy();

    await finished();
    expect(output().getAttribute('aria-busy')).toBe('false');
    expect(blocks('source').map((b) => b.textContent)).toEqual(['Hello world.', 'A second paragraph here.']);
    expect(blocks('target').map((b) => b.textContent)).toEqual(['zh: Hello world.', 'zh: A second paragraph here.']);
    expect(within(pane()).getByTestId('model-used').textContent).toBe('Translated with Qwen2.5 0.5B Instruct');
    const call = backend.calls.find(([n]) => n === 'translate')![1][0];
    expect(call).toMatchObject({ text: 'Hello world.\n\nA second paragraph here.', sourceLang: null, targetLang: 'zh' });
    expect(liveRegion().textContent).toContain('Translating from English into Chinese.');
    expect(liveRegion().textContent).toContain('Translation finished.');
  });

  it('highlights the counterpart of the block under the pointer or the focus, both ways', async () => {
    await openTranslate();
    type('# Title\n\nFirst paragraph.\n\nSecond paragraph.');
    await translateTo('fr');
    await finished();
    const [s0, s1, s2] = blocks('source');
    const [t0, t1, t2] = blocks('target');
    expect(t0.textContent).toBe('# fr: Title');
    fireEvent.mouseEnter(s1);
    expect(t1.classList.contains('aligned')).toBe(true);
    expect(t0.classList.contains('aligned')).toBe(false);
    fireEvent.mouseLeave(s1);
    expect(t1.classList.contains('aligned')).toBe(false);
    fireEvent.focus(t2);
    expect(s2.classList.contains('aligned')).toBe(true);
    expect(s0.classList.contains('aligned')).toBe(false);
    expect(t2.tabIndex).toBe(0);
  });

  it('keeps code blocks as they are and reads a picked document into the source', async () => {
    const doc = '# Guide\n\nRun this:\n\n```\nnpm test\n```\n\nDone.';
    await openTranslate({
      translate: {
        documentPicks: ['/docs/guide.md'],
        documents: { '/docs/guide.md': { name: 'guide.md', text: doc, format: 'markdown' } },
      },
    });
    fireEvent.click(within(pane()).getByRole('button', { name: 'Open document…' }));
    await waitFor(() => expect(source().value).toBe(doc));
    expect(within(pane()).getByText('guide.md')).toBeTruthy();
    await translateTo('de');
    await finished();
    const code = blocks('target').find((b) => b.classList.contains('kind-code'))!;
    expect(code.tagName).toBe('PRE');
    expect(code.textContent).toBe('```\nnpm test\n```');
    expect(blocks('target').map((b) => b.textContent)).toEqual(['# de: Guide', 'de: Run this:', '```\nnpm test\n```', 'de: Done.']);
  });

  it('a document dropped on the window while Translate is shown goes to the source, not to the models', async () => {
    const { backend } = await openTranslate({
      translate: { documents: { '/docs/a.txt': { name: 'a.txt', text: 'Dropped text.', format: 'plain' } } },
    });
    backend.dropFiles({ type: 'drop', paths: ['/docs/a.txt'] });
    await waitFor(() => expect(source().value).toBe('Dropped text.'));
    expect(backend.calls.some(([n]) => n === 'importModel')).toBe(false);
  });

  it('swaps the languages and makes the translation the new source', async () => {
    await openTranslate();
    type('Good morning.');
    await waitFor(() => expect(within(pane()).getByTestId('detected')).toBeTruthy());
    await translateTo('es');
    await finished();
    fireEvent.click(within(pane()).getByRole('button', { name: 'Swap languages' }));
    expect(sourceSelect().value).toBe('es');
    expect(targetSelect().value).toBe('en');
    expect(source().value).toBe('es: Good morning.');
  });

  it('applies the glossary of the pair and flags a required term that came out differently', async () => {
    const { backend } = await openTranslate();
    type('Welcome to the Hearth app.');
    await waitFor(() => expect(within(pane()).getByTestId('detected')).toBeTruthy());
    fireEvent.change(targetSelect(), { target: { value: 'zh' } });
    fireEvent.click(within(pane()).getByRole('button', { name: /Glossary: English → Chinese/ }));
    const glossary = within(pane()).getByTestId('glossary');
    fireEvent.input(within(glossary).getByRole('textbox', { name: 'Term' }), { target: { value: 'Hearth' } });
    fireEvent.input(within(glossary).getByRole('textbox', { name: 'Required translation' }), { target: { value: '炉火' } });
    fireEvent.click(within(glossary).getByRole('button', { name: 'Add term' }));
    await waitFor(() => expect(within(glossary).getByText('炉火')).toBeTruthy());
    expect(backend.calls.find(([n]) => n === 'setGlossaryTerm')![1]).toEqual(['en', 'zh', 'Hearth', '炉火']);

    fireEvent.click(translateButton());
    await finished();
    const flags = within(pane()).getByTestId('glossary-flags');
    expect(flags.textContent).toContain('“Hearth” should be translated as “炉火” (block 1).');
    expect(blocks('target')[0].classList.contains('flagged')).toBe(true);

    // Removing the term: the next translation has nothing to flag.
    fireEvent.click(within(glossary).getByRole('button', { name: 'Remove Hearth' }));
    await waitFor(() => expect(within(glossary).getByText('No terms yet.')).toBeTruthy());
    fireEvent.click(within(pane()).getByRole('button', { name: 'Edit text' }));
    fireEvent.click(translateButton());
    await finished();
    await waitFor(() => expect(within(pane()).queryByTestId('glossary-flags')).toBeNull());
  });

  it('lists the blocks the model left in the source language, in words, and only those', async () => {
    await openTranslate({ translate: { translateBlock: (text, target) => (text.startsWith('Keep') ? text : `${target}: ${text}`) } });
    type('First paragraph is translated.\n\nKeep this paragraph as it is written.');
    await waitFor(() => expect(within(pane()).getByTestId('detected')).toBeTruthy());
    await translateTo('zh');
    await finished();
    const flags = within(pane()).getByTestId('language-flags');
    expect(within(flags).getByRole('heading').textContent).toBe('Left untranslated');
    expect(within(flags).getAllByRole('listitem').map((li) => li.textContent)).toEqual([
      'Block 2 came back in English instead of Chinese, even when asked again. Check it, or try a larger model.',
    ]);
    // A translation with every block in the target language has no such list.
    fireEvent.click(within(pane()).getByRole('button', { name: 'Edit text' }));
    type('Only this paragraph, translated.');
    fireEvent.click(translateButton());
    await finished();
    await waitFor(() => expect(within(pane()).queryByTestId('language-flags')).toBeNull());
  });

  it('cancels a long translation with the button or Escape; what was done is kept', async () => {
    const long = Array.from({ length: 30 }, (_, i) => `Paragraph number ${i + 1} of a long text.`).join('\n\n');
    const { backend } = await openTranslate({ translate: { chunkDelayMs: 5, chunkChars: 3 } });
    type(long);
    await translateTo('fr');
    await waitFor(() => expect(within(pane()).getByTestId('progress').textContent).toMatch(/Block 3 of 30/), { timeout: 4000 });
    fireEvent.click(within(pane()).getByRole('button', { name: 'Cancel' }));
    await finished('cancelled');
    expect(backend.calls.some(([n]) => n === 'cancelTranslation')).toBe(true);
    expect(within(pane()).getByText('Stopped. The part translated so far is kept.')).toBeTruthy();
    expect(blocks('target').length).toBeGreaterThan(0);
    expect(blocks('target').length).toBeLessThan(30);
    expect(liveRegion().textContent).toContain('Translation stopped.');

    fireEvent.click(within(pane()).getByRole('button', { name: 'Edit text' }));
    fireEvent.click(translateButton());
    await waitFor(() => expect(output().dataset.status).toBe('running'));
    fireEvent.keyDown(window, { key: 'Escape' });
    await finished('cancelled');
  });

  it('lists past translations, searches them, opens one again and deletes one', async () => {
    await openTranslate();
    type('The apple is red.');
    await translateTo('fr');
    await finished();
    fireEvent.click(within(pane()).getByRole('button', { name: 'Edit text' }));
    type('The sky is blue.');
    fireEvent.click(translateButton());
    await finished();
    const history = within(pane()).getByRole('complementary', { name: 'Translation history' });
    await waitFor(() => expect(history.querySelectorAll('[data-translation-id]')).toHaveLength(2));

    fireEvent.input(within(history).getByRole('searchbox', { name: 'Search translations' }), { target: { value: 'apple' } });
    await waitFor(() => expect(history.querySelectorAll('[data-translation-id]')).toHaveLength(1));
    expect(history.textContent).toContain('The apple is red.');
    expect(history.textContent).toContain('fr: The apple is red.');
    fireEvent.click(within(history).getByRole('button', { name: /The apple is red/ }));
    await waitFor(() => expect(blocks('source').map((b) => b.textContent)).toEqual(['The apple is red.']));
    expect(blocks('target').map((b) => b.textContent)).toEqual(['fr: The apple is red.']);

    fireEvent.input(within(history).getByRole('searchbox'), { target: { value: 'zebra' } });
    await waitFor(() => expect(within(history).getByText('Nothing found.')).toBeTruthy());
    fireEvent.input(within(history).getByRole('searchbox'), { target: { value: '' } });
    await waitFor(() => expect(history.querySelectorAll('[data-translation-id]')).toHaveLength(2));
    fireEvent.click(within(history).getAllByRole('button', { name: 'Delete translation' })[0]);
    fireEvent.click(within(history).getByRole('button', { name: 'Yes' }));
    await waitFor(() => expect(history.querySelectorAll('[data-translation-id]')).toHaveLength(1));
  });

  it('copies and exports the translation', async () => {
    const { backend } = await openTranslate({ translate: { exportPicks: ['/home/u/out.md', null] } });
    type('# Notes\n\nShort text.');
    await translateTo('it');
    await finished();
    fireEvent.click(within(pane()).getByRole('button', { name: 'Export Markdown' }));
    await screen.findByText('Saved to /home/u/out.md.');
    expect(backend.exported.get('/home/u/out.md')).toBe('# it: Notes\n\nit: Short text.');
    fireEvent.click(within(pane()).getByRole('button', { name: 'Export text' }));
    await waitFor(() => expect(backend.calls.filter(([n]) => n === 'exportTranslation')).toHaveLength(2));
    expect(backend.exported.size).toBe(1);
    const copied: string[] = [];
    const writeText = async (text: string) => {
      copied.push(text);
    };
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    fireEvent.click(within(pane()).getByRole('button', { name: 'Copy' }));
    await waitFor(() => expect(within(pane()).getByRole('button', { name: 'Copied' })).toBeTruthy());
    expect(copied).toEqual(['# it: Notes\n\nit: Short text.']);
  });

  it('opens with Ctrl+T, translates with Ctrl+Enter, and shows errors in the UI language', async () => {
    const { backend } = await renderApp({ chunkDelayMs: 1, settings: { language: 'zh-CN' } });
    fireEvent.keyDown(window, { key: 't', ctrlKey: true });
    await waitFor(() => expect(document.querySelector('.view')?.getAttribute('data-current-view')).toBe('translate'));
    expect(within(pane()).getByRole('heading', { name: '翻译', level: 1 })).toBeTruthy();
    // The Chinese UI translates into Chinese, and Chinese text into English.
    expect(targetSelect().value).toBe('zh');
    expect(targetSelect().selectedOptions[0].textContent).toBe('中文');
    type('这是一个测试。');
    await waitFor(() => expect(within(pane()).getByTestId('detected').textContent).toBe('检测到：中文（把握 95%）'));
    await waitFor(() => expect(targetSelect().value).toBe('en'));
    expect(targetSelect().selectedOptions[0].textContent).toBe('英语');
    fireEvent.keyDown(source(), { key: 'Enter', ctrlKey: true });
    await finished();
    expect(blocks('target')[0].textContent).toBe('en: 这是一个测试。');
    expect(within(pane()).getByRole('button', { name: '交换语言' })).toBeTruthy();
    expect(within(pane()).getByRole('complementary', { name: '翻译记录' })).toBeTruthy();

    fireEvent.click(within(pane()).getByRole('button', { name: '编辑原文' }));
    type('12345');
    await waitFor(() => expect(within(pane()).queryByTestId('detected')).toBeNull());
    fireEvent.click(translateButton());
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('无法从文本判断语言，请选择源语言。');
    expect(backend.calls.filter(([n]) => n === 'translate')).toHaveLength(2);
  });

  it('takes every visible string from the catalogs', async () => {
    await openTranslate({ messages: pseudoMessages(), translate: { exportPicks: [] } });
    const bad = () => {
      const out: string[] = [];
      const walker = document.createTreeWalker(pane(), NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const text = n.textContent?.trim() ?? '';
        if (!text || n.parentElement?.closest('[data-user], [data-l10n], kbd')) continue;
        if (!(text.startsWith(PSEUDO_OPEN) && text.endsWith(PSEUDO_CLOSE))) out.push(text);
      }
      for (const el of pane().querySelectorAll('*')) {
        if (el.closest('[data-user]')) continue;
        for (const attr of ['aria-label', 'placeholder', 'title']) {
          const v = el.getAttribute(attr);
          if (v && !(v.startsWith(PSEUDO_OPEN) && v.endsWith(PSEUDO_CLOSE))) out.push(`${attr}=${v}`);
        }
      }
      return out;
    };
    expect(bad()).toEqual([]);
    type('Hello Hearth.');
    await waitFor(() => expect(within(pane()).getByTestId('detected')).toBeTruthy());
    fireEvent.change(targetSelect(), { target: { value: 'zh' } });
    fireEvent.click(within(pane()).getByRole('button', { name: /Glossary/ }));
    const glossary = within(pane()).getByTestId('glossary');
    fireEvent.input(within(glossary).getAllByRole('textbox')[0], { target: { value: 'Hearth' } });
    fireEvent.input(within(glossary).getAllByRole('textbox')[1], { target: { value: '炉火' } });
    fireEvent.click(within(glossary).getByRole('button', { name: P('Add term') }));
    await waitFor(() => expect(within(glossary).getByText('炉火')).toBeTruthy());
    fireEvent.click(translateButton());
    await finished();
    await waitFor(() => expect(pane().querySelector('[data-translation-id]')).toBeTruthy());
    expect(within(pane()).getByTestId('glossary-flags')).toBeTruthy();
    expect(bad()).toEqual([]);
  });
});
