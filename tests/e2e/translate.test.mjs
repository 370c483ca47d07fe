// End to end: the Translate view of the built desktop app, with the real SmolLM2 test model
// imported through the welcome screen. A short Markdown text (a heading and a paragraph) is
// translated into French: the result streams in, is not empty, keeps the heading as a heading,
// and its blocks are paired with the source's (hovering one highlights the other). Screenshots
// in light and dark go to test-output/screenshots/<label>/ (label: $HEARTH_E2E_LABEL).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appBinary, freshHome, importModel, openApp, root, startDriver, stopDriver, testModel } from './driver.mjs';

const label = process.env.HEARTH_E2E_LABEL ?? 'build';
const shots = join(root, 'test-output', 'screenshots', label);
mkdirSync(shots, { recursive: true });

const model = testModel();
const home = freshHome();
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

async function view(name) {
  await (await browser.$(`.rail-item[data-view="${name}"]`)).click();
  await until(`the ${name} view`, async () => (await (await browser.$('.view')).getAttribute('data-current-view')) === name);
}

/** The blocks of one pane: their text and whether they are highlighted. */
const blocks = (side) =>
  browser.execute(
    (s) =>
      [...document.querySelectorAll(`[data-pane="translate"] .translate-block[data-side="${s}"]`)].map((b) => ({
        text: b.textContent,
        aligned: b.classList.contains('aligned'),
      })),
    side,
  );

before(async () => {
  driver = await startDriver(home);
  browser = await openApp();
});

after(async () => {
  if (browser) await browser.deleteSession().catch(() => {});
  await stopDriver(driver);
});

describe(`Translate view (${appBinary()})`, () => {
  it('imports the SmolLM2 model and opens the Translate view', async () => {
    await importModel(browser, model);
    await view('translate');
    assert.equal(await text('[data-pane="translate"] h1'), 'Translate');
  });

  it('detects English, translates a heading and a paragraph into French, streamed, structure kept', async () => {
    const source = '# The weather\n\nThe weather is very nice today, and the sun is shining.';
    const box = await browser.$('.translate-input');
    await box.click();
    await box.setValue('x');
    // The text as a paste puts it in (one input event with the whole text).
    await browser.execute((value) => {
      const area = document.querySelector('.translate-input');
      Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set.call(area, value);
      area.dispatchEvent(new Event('input', { bubbles: true }));
    }, source);
    assert.equal(await browser.execute(() => document.querySelector('.translate-input').value), source);
    await until('the detected language', async () => /English/.test((await text('[data-testid="detected"]')) ?? ''));
    await until('the planned model', async () => /smollm2/i.test((await text('[data-testid="model-used"]')) ?? ''));
    await (await browser.$('[data-testid="target-lang"]')).selectByAttribute('value', 'fr');
    await (await browser.$('[data-action="translate"]')).click();

    let sawStreaming = false;
    await until(
      'the finished translation',
      async () => {
        const status = await browser.execute(() => document.querySelector('[data-testid="target-blocks"]').dataset.status);
        if (status === 'running') {
          const written = await blocks('target');
          if (written.some((b) => b.text.trim().length > 0)) sawStreaming = true;
        }
        return status === 'done';
      },
      240_000,
    );
    assert.ok(sawStreaming, 'the translation was never seen while it streamed');

    const src = await blocks('source');
    const out = await blocks('target');
    assert.deepEqual(
      src.map((b) => b.text),
      ['# The weather', 'The weather is very nice today, and the sun is shining.'],
    );
    assert.equal(out.length, 2, `the result has ${out.length} blocks: ${JSON.stringify(out)}`);
    assert.match(out[0].text, /^# \S/, `the heading lost its markup: ${out[0].text}`);
    assert.ok(out[1].text.trim().length > 0, 'the paragraph came out empty');
    assert.doesNotMatch(out[1].text, /^#/, 'the paragraph became a heading');
    assert.match(await text('[data-testid="model-used"]'), /Translated with smollm2/i);
    const live = await browser.execute(() => document.getElementById('live-region').textContent);
    assert.match(live, /Translation finished\./);
    console.log(`translated: ${JSON.stringify(out.map((b) => b.text))}`);
    await shot('20-translate-light');
  });

  it('highlights the counterpart of the hovered paragraph', async () => {
    const para = await browser.$('[data-pane="translate"] .translate-block[data-side="source"][data-segment="1"]');
    await para.moveTo();
    await until('the highlighted counterpart', async () => (await blocks('target'))[1]?.aligned === true, 5_000);
    assert.equal((await blocks('target'))[0].aligned, false);
    await shot('21-translate-aligned-light');
  });

  it('lists the translation in the history, and shows the view in the dark theme', async () => {
    const row = await browser.$('[data-pane="translate"] [data-translation-id]');
    await row.waitForDisplayed({ timeout: 10_000 });
    assert.match(await browser.execute((el) => el.textContent, row), /The weather/);
    await view('settings');
    await (await (await browser.$('input[name="theme"][value="dark"]')).parentElement()).click();
    await until('the dark theme', async () => (await browser.execute(() => document.documentElement.dataset.theme)) === 'dark');
    await view('translate');
    await shot('22-translate-dark');
    await view('settings');
    await (await (await browser.$('input[name="theme"][value="light"]')).parentElement()).click();
  });
});
