// End to end: the Documents view of the built desktop app, with the real SmolLM2 test model
// imported through the welcome screen and a real PDF (Debian's bash.pdf, the Bash manual page,
// 87 pages, fetched by scripts/fetch-test-models).
//
// How files are "dropped": WebDriver cannot perform an operating-system drag and drop. When the
// user drops files on the window, Tauri's Rust side emits `tauri://drag-enter` then
// `tauri://drag-drop` (payload `{paths, position}`) to the webview by calling the event function
// Tauri installs in the page (`window.__internal_unstable_listeners_function_id__`) with the ids
// of the listeners registered for that event. `dropFiles` below makes that same call with real
// file paths, so the app's own drop handler (ui/src/backend/ipc.ts `onFileDrop`, then
// DocumentsView) runs and the real `document_add` command reads the real file.
//
// Covered: a non-PDF renamed .pdf dropped on the Chat view switches to Documents and gives a
// clear `documents.*` message, the list stays empty; bash.pdf dropped, listed with its 87
// pages; a short summary of page 1 shows progress (stage, step i of n), is cancelled with Esc,
// then resumed to the end; key points carry page citations that open the passage with its
// page; a question lists the passages it rests on, one opens with its page; the search model
// (the real all-MiniLM-L6-v2 files, served by the stand-in hub of tests/e2e/hub-server.mjs) is
// downloaded from the notice above the question box and the document is then indexed by
// meaning. Screenshots in light, dark and Chinese go to test-output/screenshots/<label>/.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appBinary, freshHome, importModel, openApp, root, startDriver, stopDriver, testModel } from './driver.mjs';
import { startHub } from './hub-server.mjs';

const label = process.env.HEARTH_E2E_LABEL ?? 'build';
const shots = join(root, 'test-output', 'screenshots', label);
mkdirSync(shots, { recursive: true });

const model = testModel();
const modelsDir = process.env.HEARTH_TEST_MODELS ?? join(homedir(), '.cache', 'hearth', 'test-models');
const pdf = join(modelsDir, 'documents', 'bash.pdf');
if (!existsSync(pdf)) throw new Error(`${pdf} is missing: run scripts/fetch-test-models first.`);
const scratch = mkdtempSync(join(tmpdir(), 'hearth-e2e-docs-'));
const fake = join(scratch, 'not-really.pdf');
writeFileSync(fake, 'This is a plain text note that was renamed to .pdf; it has no PDF structure at all.\n');

const minilm = join(modelsDir, 'all-minilm-l6-v2');
const home = freshHome();
// The app's Hugging Face cache lives in the fresh folder; nothing else may choose the hub.
process.env.HF_HOME = join(home.base, 'hf');
delete process.env.HF_ENDPOINT;
delete process.env.HF_HUB_OFFLINE;
delete process.env.HF_HUB_CACHE;
let hub;
let driver;
let browser;

async function shot(name) {
  // Two animation frames, so the screenshot shows the latest DOM.
  await browser.executeAsync((done) => requestAnimationFrame(() => requestAnimationFrame(() => done())));
  await browser.pause(250);
  await browser.saveScreenshot(join(shots, `${name}.png`));
}

async function until(what, fn, timeout = 60_000) {
  await browser.waitUntil(fn, { timeout, interval: 100, timeoutMsg: `timed out waiting for ${what}` });
}

const text = (selector) => browser.execute((sel) => document.querySelector(sel)?.textContent ?? null, selector);
const currentView = () => browser.execute(() => document.querySelector('.view')?.getAttribute('data-current-view'));
const rows = () =>
  browser.execute(() => [...document.querySelectorAll('[data-pane="documents"] .doc-row')].map((r) => r.textContent));

async function view(name) {
  await (await browser.$(`.rail-item[data-view="${name}"]`)).click();
  await until(`the ${name} view`, async () => (await currentView()) === name);
}

/** Emits the drag-enter and drag-drop events Tauri sends the page when files are dropped (see the header). */
async function dropFiles(paths) {
  const listeners = await browser.execute((files) => {
    const registered = window.__internal_unstable_listeners_object_id__ ?? {};
    const deliver = window.__internal_unstable_listeners_function_id__;
    const fire = (event, payload) => {
      const ids = Object.getOwnPropertyNames(registered[event] ?? {}).map(Number);
      deliver({ event, payload }, ids);
      return ids.length;
    };
    const position = { x: 500, y: 300 };
    fire('tauri://drag-enter', { paths: files, position });
    return fire('tauri://drag-drop', { paths: files, position });
  }, paths);
  assert.ok(listeners > 0, 'the page listens to no tauri://drag-drop event');
}

before(async () => {
  hub = await startHub({
    repo: 'sentence-transformers/all-MiniLM-L6-v2',
    files: ['model.safetensors', 'config.json', 'tokenizer.json'].map((file) => ({ file, path: join(minilm, file) })),
  });
  driver = await startDriver(home);
  browser = await openApp();
});

after(async () => {
  if (browser) await browser.deleteSession().catch(() => {});
  await stopDriver(driver);
  if (hub) await hub.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe(`Documents view (${appBinary()})`, () => {
  it('imports the SmolLM2 model', async () => {
    await importModel(browser, model);
    assert.equal(await currentView(), 'chat');
  });

  it('a non-PDF renamed .pdf dropped on the Chat view: Documents opens, a clear message, nothing listed', async () => {
    await dropFiles([fake]);
    await until('the Documents view', async () => (await currentView()) === 'documents');
    const banner = await browser.$('.banner-error');
    await banner.waitForDisplayed({ timeout: 30_000 });
    const code = await banner.getAttribute('data-code');
    assert.match(code, /^documents\./, `code ${code}`);
    const message = await text('.banner-error .banner-text');
    assert.match(message, /not-really\.pdf|PDF|damaged|not supported/i, message);
    console.log(`bad file: ${code}: ${message}`);
    assert.deepEqual(await rows(), []);
    await shot('30-documents-bad-file-light');
    await (await browser.$('.banner-error [aria-label="Dismiss"]')).click();
  });

  it('bash.pdf dropped: listed with its 87 pages', async () => {
    await view('chat');
    const t0 = Date.now();
    await dropFiles([pdf]);
    await until('the Documents view', async () => (await currentView()) === 'documents');
    await until('bash.pdf in the list', async () => (await rows()).length === 1, 120_000);
    console.log(`bash.pdf added in ${Date.now() - t0} ms`);
    const row = (await rows())[0];
    assert.match(row, /bash\.pdf/);
    assert.match(row, /87 pages/);
    assert.match(row, /Not summarized/);
    assert.equal(await text('[data-pane="documents"] .doc-header h1'), 'bash.pdf');
  });

  it('summarizes page 1: progress, cancel with Esc, then resumed to a summary with cited key points', async () => {
    await (await browser.$('[data-testid="summary-length"]')).selectByAttribute('value', 'short');
    await (await browser.$('[data-testid="from-page"]')).setValue('1');
    await (await browser.$('[data-testid="to-page"]')).setValue('1');
    const t0 = Date.now();
    await (await browser.$('[data-action="summarize"]')).click();
    await until('progress', async () => /of \d+/.test((await text('[data-testid="progress-text"]')) ?? ''), 30_000);
    const progress = await text('[data-testid="progress-text"]');
    assert.match(progress, /Summarizing passages: 1 of \d+/, progress);
    assert.match((await rows())[0], /Summarizing/);
    await shot('31-documents-progress-light');
    await browser.keys(['Escape']);
    await until('the stopped summary', async () => (await text('[data-testid="summary-cancelled"]')) !== null, 120_000);
    assert.match((await rows())[0], /Stopped/);
    console.log(`cancelled after ${Date.now() - t0} ms`);

    const t1 = Date.now();
    await (await browser.$('[data-action="summarize"]')).click();
    let sawText = false;
    await until(
      'the finished summary',
      async () => {
        const streamed = (await text('[data-testid="summary-text"]')) ?? '';
        if (streamed.trim() && (await text('[data-testid="summary-progress"]')) !== null) sawText = true;
        return (await text('[data-testid="key-points"]')) !== null;
      },
      300_000,
    );
    console.log(`resumed and finished in ${Date.now() - t1} ms (streamed text seen: ${sawText})`);
    assert.ok((await text('[data-testid="summary-text"]')).trim().length > 0, 'the summary is empty');
    assert.match((await rows())[0], /Summarized/);
    const live = await browser.execute(() => document.getElementById('live-region').textContent);
    assert.match(live, /Summary finished/);
    const cites = await browser.execute(() =>
      [...document.querySelectorAll('[data-testid="key-points"] .doc-cite')].map((b) => b.textContent),
    );
    assert.ok(cites.length > 0, 'no citations');
    for (const c of cites) assert.match(c, /^p\. 1$|^pp\. 1–\d+$/, `a citation outside page 1: ${c}`);
    await shot('32-documents-summary-light');
  });

  it('a citation opens its passage with its page', async () => {
    await (await browser.$('[data-testid="key-points"] .doc-cite')).click();
    const passage = await browser.$('[data-testid="passage"]');
    await passage.waitForDisplayed({ timeout: 10_000 });
    assert.match(await text('[data-testid="passage-where"]'), /^Pages? 1/);
    assert.match(await text('.doc-passage-text'), /bash|Bash|BASH/);
    await shot('33-documents-passage-light');
    await browser.keys(['Escape']);
    await until('the passage closed', async () => (await text('[data-testid="passage"]')) === null, 5_000);
  });

  it('a question lists the passages it rests on; one opens with its page', async () => {
    const box = await browser.$('[data-testid="question"]');
    await box.setValue('What does the history expansion do?');
    await (await browser.$('[data-action="ask"]')).click();
    await until('the sources', async () => (await text('[data-testid="sources"]')) !== null, 60_000);
    const sources = await browser.execute(() =>
      [...document.querySelectorAll('[data-testid="sources"] .doc-cite')].map((b) => b.textContent),
    );
    assert.ok(sources.length > 0);
    for (const s of sources) assert.match(s, /^\[\d\] Pages? \d+/, s);
    await (await browser.$('[data-testid="sources"] .doc-cite')).click();
    await (await browser.$('[data-testid="passage"]')).waitForDisplayed({ timeout: 10_000 });
    assert.match(await text('[data-testid="passage-where"]'), /^Pages? \d+/);
    assert.match(await text('.doc-passage-text'), /history/i);
    await shot('34-documents-question-light');
    // The answer is still being written: it is stopped here to keep the test short.
    if ((await text('[data-action="cancel-answer"]')) !== null) {
      await (await browser.$('[data-action="cancel-answer"]')).click();
      const t0 = Date.now();
      await until('the answer stopped', async () => (await text('[data-action="ask"]')) !== null, 30_000);
      console.log(`answer stopped ${Date.now() - t0} ms after Cancel`);
      assert.match(await text('[data-testid="answer-stopped"]'), /The answer was stopped/);
    }
  });

  it('the search model is downloaded from the question box, then the document is indexed by meaning', async () => {
    await view('settings');
    await (await browser.$('#endpoint-input')).setValue(hub.url);
    await browser.keys('Tab');
    await until('the saved endpoint', async () =>
      (await browser.execute(() => document.querySelector('.banners')?.textContent ?? '')).includes('Settings saved.'),
    );
    await view('documents');
    const notice = await browser.$('[data-testid="search-model"]');
    await notice.waitForDisplayed({ timeout: 10_000 });
    assert.match(await text('[data-testid="search-model"]'), /search model/i);
    // Slowed down, so the progress can be seen (about 9 s for the 90 MB).
    hub.setRate(10_000_000);
    await (await browser.$('[data-action="get-search-model"]')).click();
    await until('the download progress', async () =>
      browser.execute(() => {
        const bar = document.querySelector('[data-testid="search-model"] [role="progressbar"]');
        return bar !== null && Number(bar.getAttribute('aria-valuenow')) > 0;
      }),
    );
    await shot('37-documents-search-model-download');
    hub.setRate(null);
    await until('the search model installed', async () => (await text('[data-testid="search-model"]')) === null, 120_000);
    const live = await browser.execute(() => document.getElementById('live-region').textContent);
    assert.match(live, /search model is installed/);
    assert.ok(existsSync(join(home.data, 'models', 'all-minilm-l6-v2', 'model.safetensors')), 'not in the models folder');
    const requested = new Set(hub.log.map((l) => l.path.split('/').pop()));
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) assert.ok(requested.has(f), `${f} not downloaded`);
    // Indexed in the background: the notice counts passages until all have vectors.
    let seen = null;
    await until(
      'every passage indexed by meaning',
      async () => {
        const s = await text('[data-testid="search-status"]');
        if (s) seen = s;
        return s === null;
      },
      300_000,
    );
    if (seen) assert.match(seen, /Indexed by meaning: \d+ of \d+ passages/, seen);
    // What the backend itself says: words and meaning, every passage with a vector.
    const status = await browser.executeAsync((done) => {
      const invoke = window.__TAURI_INTERNALS__.invoke;
      invoke('documents_list')
        .then((docs) => invoke('retrieval_status', { documentId: docs[0].id }))
        .then(done, (e) => done({ error: String(e?.message ?? JSON.stringify(e)) }));
    });
    assert.equal(status.method, 'hybrid', JSON.stringify(status));
    assert.equal(status.modelInstalled, true);
    assert.ok(status.totalChunks > 0 && status.embeddedChunks === status.totalChunks, JSON.stringify(status));
    console.log(`search model installed; indexing seen: ${seen}`);
  });

  it('shows the view in the dark theme and in Chinese', async () => {
    await view('settings');
    await (await (await browser.$('input[name="theme"][value="dark"]')).parentElement()).click();
    await until('the dark theme', async () => (await browser.execute(() => document.documentElement.dataset.theme)) === 'dark');
    await view('documents');
    await shot('35-documents-dark');
    await view('settings');
    await (await (await browser.$('input[name="theme"][value="light"]')).parentElement()).click();
    await (await browser.$('#language-select')).selectByAttribute('value', 'zh-CN');
    await until('Chinese', async () => (await text('.rail-item[data-view="documents"]')) === '文档');
    await view('documents');
    assert.match((await rows())[0], /87 页/);
    await shot('36-documents-zh');
    await view('settings');
    await (await browser.$('#language-select')).selectByAttribute('value', 'en');
    await until('English', async () => (await text('.rail-item[data-view="chat"]')) === 'Chat');
  });
});
