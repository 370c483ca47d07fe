import { configure, fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { liveRegion, renderApp } from '../test/harness';
import type { MockOptions } from '../backend/mock';
import type { MockDocumentFile } from '../backend/mock-documents';

const MANUAL: MockDocumentFile = {
  name: 'bashref.pdf',
  kind: 'pdf',
  pages: [
    'Bash is the shell, or command language interpreter, for the GNU operating system.',
    'Shell builtin commands are contained within the shell itself.',
    'Parameter expansion replaces a parameter with its value.',
    'Job control refers to the ability to stop and resume processes.',
  ],
};
const NOTES: MockDocumentFile = { name: 'notes.md', kind: 'markdown', pages: ['Install the package.', 'Run the tests.'] };

const FILES: MockOptions['documents'] = {
  files: {
    '/docs/bashref.pdf': MANUAL,
    '/docs/notes.md': NOTES,
    '/docs/broken.pdf': { code: 'documents.corrupt', message: 'This PDF is damaged and could not be read (no trailer)' },
    '/docs/empty.txt': { code: 'documents.empty', message: 'This text file contains no text' },
  },
};

const pane = () => document.querySelector('[data-pane="documents"]') as HTMLElement;
const rows = () => [...pane().querySelectorAll<HTMLElement>('.doc-row')];
const currentView = () => document.querySelector('.view')?.getAttribute('data-current-view');

async function openDocuments(options: MockOptions = {}) {
  const app = await renderApp({ documents: { stepDelayMs: 15, ...FILES }, ...options });
  fireEvent.keyDown(window, { key: 'd', ctrlKey: true });
  await waitFor(() => expect(currentView()).toBe('documents'));
  return app;
}

// Streams run on timers: leave room for a loaded machine.
configure({ asyncUtilTimeout: 5000 });

describe('documents view', { timeout: 30_000 }, () => {
  it('is reached from the rail and with Ctrl+D, and says how to add documents', async () => {
    await renderApp();
    fireEvent.click(screen.getByRole('button', { name: 'Documents' }));
    await waitFor(() => expect(currentView()).toBe('documents'));
    expect(within(pane()).getByText(/No documents yet/)).toBeTruthy();
    expect(within(pane()).getByRole('button', { name: /Add documents/ })).toBeTruthy();
    fireEvent.keyDown(window, { key: 'l', ctrlKey: true });
    await waitFor(() => expect(currentView()).toBe('chat'));
    fireEvent.keyDown(window, { key: 'd', ctrlKey: true });
    await waitFor(() => expect(currentView()).toBe('documents'));
  });

  it('adds documents dropped on any view, lists them with pages, and models still go to Models', async () => {
    const { backend } = await renderApp({ documents: FILES });
    expect(currentView()).toBe('chat');
    backend.dropFiles({ type: 'hover', paths: ['/docs/bashref.pdf'] });
    await waitFor(() => expect(screen.getByText(/Drop documents to summarize them/)).toBeTruthy());
    backend.dropFiles({ type: 'drop', paths: ['/docs/bashref.pdf', '/docs/notes.md'] });
    await waitFor(() => expect(currentView()).toBe('documents'));
    await waitFor(() => expect(rows()).toHaveLength(2));
    const pdf = rows().find((r) => r.textContent?.includes('bashref.pdf')) as HTMLElement;
    expect(pdf.textContent).toContain('4 pages');
    expect(within(pdf).getByText('Not summarized')).toBeTruthy();
    const md = rows().find((r) => r.textContent?.includes('notes.md')) as HTMLElement;
    expect(md.textContent).toContain('2 passages');
    // The last one added is opened.
    expect(within(pane()).getByRole('heading', { level: 1 }).textContent).toBe('notes.md');
    expect(liveRegion().textContent).toContain('Added notes.md');

    // The same file again: the stored one, said so, no second row.
    backend.dropFiles({ type: 'drop', paths: ['/docs/notes.md'] });
    await waitFor(() => expect(screen.getByText('notes.md was already added')).toBeTruthy());
    expect(rows()).toHaveLength(2);

    // A model dropped while here is still imported as a model.
    backend.dropFiles({ type: 'drop', paths: ['/data/qwen.gguf'] });
    await waitFor(() => expect(currentView()).toBe('models'));
    expect(backend.calls.filter(([n]) => n === 'addDocument')).toHaveLength(3);
  });

  it('takes a document dropped on the welcome screen (no model yet) to the Documents view', async () => {
    const { backend } = await renderApp({ models: [], documents: FILES });
    await waitFor(() => expect(document.querySelector('.welcome')).toBeTruthy());
    backend.dropFiles({ type: 'drop', paths: ['/docs/bashref.pdf'] });
    await waitFor(() => expect(currentView()).toBe('documents'));
    await waitFor(() => expect(rows()).toHaveLength(1));
    expect(rows()[0].textContent).toContain('4 pages');
    expect(backend.calls.filter(([n]) => n === 'addDocument')).toHaveLength(1);
  });

  it('adds documents from the picker and explains files it cannot read, leaving the list as it was', async () => {
    const { backend } = await openDocuments({
      documents: { ...FILES, picks: [null, ['/docs/broken.pdf', '/docs/bashref.pdf', '/docs/empty.txt']] },
    });
    const add = within(pane()).getByRole('button', { name: /Add documents/ });
    fireEvent.click(add);
    await waitFor(() => expect(backend.calls.filter(([n]) => n === 'pickDocuments')).toHaveLength(1));
    expect(backend.calls.find(([n]) => n === 'pickDocuments')?.[1]).toEqual(['Choose documents to summarize']);
    expect(rows()).toHaveLength(0);
    fireEvent.click(add);
    await waitFor(() => expect(rows()).toHaveLength(1));
    const alerts = await screen.findAllByRole('alert');
    const codes = alerts.map((a) => a.getAttribute('data-code'));
    expect(codes).toContain('documents.corrupt');
    expect(codes).toContain('documents.empty');
    expect(alerts.map((a) => a.textContent).join(' ')).toContain('This PDF is damaged and could not be read');
    expect(rows()[0].textContent).toContain('bashref.pdf');
  });

  it('explains unreadable files in Chinese', async () => {
    const { backend } = await openDocuments({ settings: { language: 'zh-CN' } });
    backend.dropFiles({ type: 'drop', paths: ['/docs/broken.pdf'] });
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('文件已损坏，或者它的内容与扩展名不符');
    expect(within(pane()).getByText(/还没有文档/)).toBeTruthy();
  });

  it('summarizes a page range with progress, streams the summary, and opens key-point citations at their page', async () => {
    const { backend } = await openDocuments();
    backend.dropFiles({ type: 'drop', paths: ['/docs/bashref.pdf'] });
    await waitFor(() => expect(rows()).toHaveLength(1));
    fireEvent.change(within(pane()).getByTestId('summary-length'), { target: { value: 'short' } });
    fireEvent.change(within(pane()).getByTestId('summary-language'), { target: { value: 'zh' } });
    fireEvent.input(within(pane()).getByTestId('from-page'), { target: { value: '2' } });
    fireEvent.input(within(pane()).getByTestId('to-page'), { target: { value: '3' } });
    fireEvent.click(within(pane()).getByRole('button', { name: 'Summarize' }));
    await waitFor(() => expect(within(pane()).getByTestId('progress-text').textContent).toMatch(/Summarizing passages: [12] of 2/));
    expect(within(pane()).getByTestId('eta').textContent).toMatch(/about \d+ s left/);
    expect(within(pane()).getByRole('progressbar', { name: 'Summary progress' })).toBeTruthy();
    expect(rows()[0].textContent).toContain('Summarizing…');
    expect(backend.calls.find(([n]) => n === 'summarize')?.[1]).toEqual([
      { documentId: 1, length: 'short', language: 'zh', pages: [2, 3], restart: false },
    ]);
    const text = within(pane()).getByTestId('summary-text');
    expect(text.getAttribute('aria-live')).toBe('polite');
    await waitFor(() => expect(text.textContent).toBe('bashref.pdf covers 2 parts.'));
    await waitFor(() => expect(within(pane()).getByTestId('key-points')).toBeTruthy());
    expect(rows()[0].textContent).toContain('Summarized');
    expect(liveRegion().textContent).toContain('Summary finished');
    const points = within(within(pane()).getByTestId('key-points')).getAllByRole('listitem');
    expect(points).toHaveLength(2);
    expect(points[0].textContent).toContain('About: Shell builtin commands');
    const cite = within(points[1]).getByRole('button', { name: 'Open the passage: p. 3' });
    fireEvent.click(cite);
    const passage = await within(pane()).findByTestId('passage');
    expect(within(passage).getByTestId('passage-where').textContent).toBe('Page 3');
    expect(passage.textContent).toContain('Parameter expansion replaces a parameter');
    await waitFor(() => expect(document.activeElement).toBe(passage));
    fireEvent.keyDown(passage, { key: 'Escape' });
    await waitFor(() => expect(within(pane()).queryByTestId('passage')).toBeNull());
    await waitFor(() => expect(document.activeElement).toBe(cite));
  });

  it('cancels a summary with Esc, keeps the parts, and resumes it', async () => {
    const { backend } = await openDocuments({ documents: { ...FILES, stepDelayMs: 40 } });
    backend.dropFiles({ type: 'drop', paths: ['/docs/bashref.pdf'] });
    await waitFor(() => expect(rows()).toHaveLength(1));
    fireEvent.click(within(pane()).getByRole('button', { name: 'Summarize' }));
    await waitFor(() => expect(within(pane()).getByTestId('progress-text').textContent).toMatch(/of 4/));
    await waitFor(() => expect(within(pane()).getByTestId('progress-text').textContent).toMatch(/[23] of 4/));
    fireEvent.keyDown(window, { key: 'Escape' });
    await waitFor(() => expect(within(pane()).getByTestId('summary-cancelled')).toBeTruthy());
    expect(backend.calls.some(([n]) => n === 'cancelDocumentJob')).toBe(true);
    expect(liveRegion().textContent).toContain('Summary stopped');
    expect(rows()[0].textContent).toContain('Stopped');
    // Summarizing again with the same options resumes from the stored parts.
    fireEvent.click(within(pane()).getByRole('button', { name: 'Summarize' }));
    await waitFor(() => expect(within(pane()).getByTestId('key-points')).toBeTruthy());
    expect(within(within(pane()).getByTestId('key-points')).getAllByRole('listitem')).toHaveLength(4);
  });

  it('offers Resume for a summary a previous run left unfinished', async () => {
    const { backend } = await renderApp({ documents: { ...FILES, interrupted: ['/docs/notes.md'] } });
    fireEvent.keyDown(window, { key: 'd', ctrlKey: true });
    await waitFor(() => expect(rows()).toHaveLength(1));
    expect(rows()[0].textContent).toContain('Interrupted');
    fireEvent.click(rows()[0].querySelector('.doc-item') as HTMLElement);
    const note = await within(pane()).findByTestId('resume-note');
    expect(note.textContent).toContain('1 of 2 passages done');
    fireEvent.click(within(note).getByRole('button', { name: 'Resume' }));
    await waitFor(() => expect(within(pane()).getByTestId('key-points')).toBeTruthy());
    expect(backend.calls.find(([n]) => n === 'resumeSummary')?.[1]).toEqual([1]);
    // Sections, not pages, for a Markdown file.
    const cite = within(pane()).getByRole('button', { name: 'Open the passage: Section 2' });
    fireEvent.click(cite);
    const passage = await within(pane()).findByTestId('passage');
    expect(passage.textContent).toContain('Run the tests.');
  });

  it('answers a question with the passages it rests on, each opening with its page', async () => {
    const { backend } = await openDocuments({ documents: { ...FILES, stepDelayMs: 150 } });
    backend.dropFiles({ type: 'drop', paths: ['/docs/bashref.pdf'] });
    await waitFor(() => expect(rows()).toHaveLength(1));
    const box = within(pane()).getByRole('textbox', { name: 'Your question about the document' });
    fireEvent.input(box, { target: { value: 'zzz qqq' } });
    fireEvent.click(within(pane()).getByRole('button', { name: 'Ask' }));
    const alert = await screen.findByRole('alert');
    expect(alert.getAttribute('data-code')).toBe('ask.nothing_found');
    fireEvent.input(box, { target: { value: 'What does parameter expansion do?' } });
    fireEvent.submit(box.closest('form') as HTMLFormElement);
    await waitFor(() => expect(within(pane()).getByTestId('answering').textContent).toBe('Reading the passages and writing the answer…'));
    const answer = within(pane()).getByTestId('answer');
    expect(answer.getAttribute('aria-live')).toBe('polite');
    await waitFor(() => expect(answer.textContent).toBe('It is in the document [1].'));
    const sources = within(pane()).getByTestId('sources');
    expect(within(sources).getByText('cited')).toBeTruthy();
    expect(within(sources).getAllByText('found by its words')).toHaveLength(1);
    fireEvent.click(within(sources).getByRole('button', { name: 'Open passage 1: Page 3' }));
    const passage = await within(pane()).findByTestId('passage');
    expect(passage.textContent).toContain('Parameter expansion replaces a parameter');
    expect(within(passage).getByTestId('passage-where').textContent).toBe('Page 3');
  });

  it('stops an answer with Cancel and says so, keeping what was written', async () => {
    const { backend } = await openDocuments({ documents: { ...FILES, stepDelayMs: 150 } });
    backend.dropFiles({ type: 'drop', paths: ['/docs/bashref.pdf'] });
    await waitFor(() => expect(rows()).toHaveLength(1));
    const box = within(pane()).getByRole('textbox', { name: 'Your question about the document' });
    fireEvent.input(box, { target: { value: 'What does parameter expansion do?' } });
    fireEvent.submit(box.closest('form') as HTMLFormElement);
    const answer = within(pane()).getByTestId('answer');
    await waitFor(() => expect(answer.textContent).not.toBe(''));
    expect(within(pane()).queryByTestId('answer-stopped')).toBeNull();
    fireEvent.click(pane().querySelector('[data-action="cancel-answer"]') as HTMLElement);
    const stopped = await within(pane()).findByTestId('answer-stopped');
    expect(stopped.textContent).toBe('The answer was stopped. Ask again to have it written in full.');
    expect(backend.calls.some(([n]) => n === 'cancelDocumentJob')).toBe(true);
    expect(liveRegion().textContent).toContain('Answer stopped');
    // What was written before the stop stays, short of the whole answer.
    expect(answer.textContent).not.toBe('');
    expect(answer.textContent).not.toBe('It is in the document [1].');
    expect('It is in the document [1].'.startsWith(answer.textContent ?? '')).toBe(true);
    // Asking again writes it in full, without the note.
    fireEvent.submit(box.closest('form') as HTMLFormElement);
    await waitFor(() => expect(answer.textContent).toBe('It is in the document [1].'));
    expect(within(pane()).queryByTestId('answer-stopped')).toBeNull();
    expect(liveRegion().textContent).toContain('Answer finished');
  });

  it('deletes a document after confirmation', async () => {
    const { backend } = await openDocuments();
    backend.dropFiles({ type: 'drop', paths: ['/docs/bashref.pdf', '/docs/notes.md'] });
    await waitFor(() => expect(rows()).toHaveLength(2));
    fireEvent.click(within(pane()).getByRole('button', { name: 'Delete notes.md' }));
    const confirm = within(pane()).getByRole('group', { name: 'Delete notes.md and its summaries?' });
    fireEvent.click(within(confirm).getByRole('button', { name: 'No' }));
    expect(rows()).toHaveLength(2);
    fireEvent.click(within(pane()).getByRole('button', { name: 'Delete notes.md' }));
    fireEvent.click(within(pane()).getByRole('button', { name: 'Yes' }));
    await waitFor(() => expect(rows()).toHaveLength(1));
    expect(rows()[0].textContent).toContain('bashref.pdf');
    expect(backend.calls.filter(([n]) => n === 'deleteDocument')).toEqual([['deleteDocument', [2]]]);
    expect(within(pane()).getByText(/Choose a document on the left/)).toBeTruthy();
  });

  it('speaks Chinese', async () => {
    const { backend } = await openDocuments({ settings: { language: 'zh-CN' } });
    backend.dropFiles({ type: 'drop', paths: ['/docs/bashref.pdf'] });
    await waitFor(() => expect(rows()).toHaveLength(1));
    expect(rows()[0].textContent).toContain('4 页');
    expect(within(pane()).getByRole('button', { name: '生成摘要' })).toBeTruthy();
    expect(within(pane()).getByRole('textbox', { name: '关于此文档的问题' })).toBeTruthy();
    fireEvent.click(within(pane()).getByRole('button', { name: '生成摘要' }));
    await waitFor(() => expect(within(pane()).getByTestId('key-points')).toBeTruthy());
    fireEvent.click(within(pane()).getByRole('button', { name: '打开出处：第 2 页' }));
    const passage = await within(pane()).findByTestId('passage');
    expect(within(passage).getByRole('heading').textContent).toBe('出处：第 2 页');
    expect(within(passage).getByTestId('passage-where').textContent).toBe('第 2 页');
  });

  it('offers the search model, downloads it with progress, and then finds passages by meaning too', async () => {
    const { backend } = await openDocuments({ documents: { ...FILES, stepDelayMs: 20, picks: [['/docs/bashref.pdf']] } });
    fireEvent.click(within(pane()).getByRole('button', { name: /Add documents/ }));
    await waitFor(() => expect(rows()).toHaveLength(1));
    const notice = await within(pane()).findByTestId('search-model');
    expect(notice.textContent).toContain('Questions find passages by their words');

    // Cancelled: the offer comes back, nothing installed.
    fireEvent.click(within(notice).getByRole('button', { name: 'Download the search model' }));
    const bar = await within(pane()).findByRole('progressbar', { name: 'Downloading the search model' });
    await waitFor(() => expect(Number(bar.getAttribute('aria-valuenow'))).toBeGreaterThan(0));
    fireEvent.click(within(pane()).getByRole('button', { name: /Cancel/, hidden: false }));
    await waitFor(() => expect(within(pane()).getByRole('button', { name: 'Download the search model' })).toBeTruthy());
    expect(backend.calls.filter(([n]) => n === 'cancelSearchModel')).toHaveLength(1);
    expect((await backend.retrievalStatus(1)).modelInstalled).toBe(false);

    // Downloaded: the offer goes away and it is announced.
    fireEvent.click(within(pane()).getByRole('button', { name: 'Download the search model' }));
    await waitFor(() => expect(within(pane()).queryByTestId('search-model')).toBeNull());
    expect(liveRegion().textContent).toContain('The search model is installed');
    expect((await backend.retrievalStatus(1)).method).toBe('hybrid');
  });

  it('says why the search model could not be downloaded, and offers it again', async () => {
    await openDocuments({
      documents: {
        ...FILES,
        stepDelayMs: 5,
        picks: [['/docs/notes.md']],
        searchModelFailure: { code: 'download.offline', message: 'Cannot reach the download server.' },
      },
    });
    fireEvent.click(within(pane()).getByRole('button', { name: /Add documents/ }));
    const notice = await within(pane()).findByTestId('search-model');
    fireEvent.click(within(notice).getByRole('button', { name: 'Download the search model' }));
    const alert = await screen.findByRole('alert');
    expect(alert.dataset.code).toBe('download.offline');
    await waitFor(() => expect(within(pane()).getByRole('button', { name: 'Download the search model' })).toBeTruthy());
  });
});
