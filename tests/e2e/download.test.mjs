// End to end: downloading a model from the catalog in the built desktop app. A stand-in hub
// (tests/e2e/hub-server.mjs) serves the real SmolLM2 test file as the catalog's
// smollm2-135m-instruct Q8_0 file; the app is pointed at it through its own Settings field (the
// download endpoint). From the Models view: the card shows its fit badge and predicted speed,
// Download shows progress, Pause keeps the partial file, Resume finishes it (with a Range
// request), and the model is installed, verified and made the default. Screenshots go to
// test-output/screenshots/<label>/ (label: $HEARTH_E2E_LABEL).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appBinary, freshHome, openApp, root, startDriver, stopDriver, testModel } from './driver.mjs';
import { startHub } from './hub-server.mjs';

const label = process.env.HEARTH_E2E_LABEL ?? 'build';
const shots = join(root, 'test-output', 'screenshots', label);
mkdirSync(shots, { recursive: true });

const REPO = 'bartowski/SmolLM2-135M-Instruct-GGUF';
const FILE = 'SmolLM2-135M-Instruct-Q8_0.gguf';
const CARD = '[data-catalog-id="smollm2-135m-instruct"]';

const model = testModel();
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
  await browser.executeAsync((done) => requestAnimationFrame(() => requestAnimationFrame(() => done())));
  await browser.pause(250);
  await browser.saveScreenshot(join(shots, `${name}.png`));
}

async function until(what, fn, timeout = 60_000) {
  await browser.waitUntil(fn, { timeout, interval: 100, timeoutMsg: `timed out waiting for ${what}` });
}

const cardText = () => browser.execute((sel) => document.querySelector(sel)?.textContent ?? '', CARD);
const progress = () =>
  browser.execute((sel) => {
    const bar = document.querySelector(`${sel} [role="progressbar"]`);
    return bar ? Number(bar.getAttribute('aria-valuenow')) : null;
  }, CARD);
const phase = () => browser.execute((sel) => document.querySelector(`${sel} [data-phase]`)?.getAttribute('data-phase') ?? null, CARD);

async function view(name) {
  await (await browser.$(`.rail-item[data-view="${name}"]`)).click();
  await until(`the ${name} view`, async () => (await (await browser.$('.view')).getAttribute('data-current-view')) === name);
}

async function click(selector) {
  const el = await browser.$(selector);
  await el.scrollIntoView({ block: 'center' });
  await el.click();
}

before(async () => {
  hub = await startHub({ repo: REPO, file: FILE, path: model });
  // About 100 seconds for the whole file: time to watch it and pause it.
  hub.setRate(1_000_000);
  driver = await startDriver(home);
  browser = await openApp();
});

after(async () => {
  if (browser) await browser.deleteSession().catch(() => {});
  await stopDriver(driver);
  if (hub) await hub.close();
});

describe(`Model downloads (${appBinary()})`, () => {
  it('recommends a model on the welcome screen', async () => {
    const rec = await browser.$('[data-testid="recommendation"]');
    await rec.waitForDisplayed({ timeout: 30_000 });
    const text = await browser.execute((el) => el.textContent, rec);
    assert.match(text, /Recommended for this computer/);
    assert.ok(await (await browser.$('[data-action="get-recommended"]')).isDisplayed());
    await shot('downloads-01-welcome-recommendation');
    await click('[data-action="skip-welcome"]');
  });

  it('uses the download endpoint from Settings', async () => {
    await view('settings');
    const input = await browser.$('#endpoint-input');
    await input.setValue(hub.url);
    await browser.keys('Tab');
    await until('the saved endpoint', async () =>
      (await browser.execute(() => document.querySelector('.banners')?.textContent ?? '')).includes('Settings saved.'),
    );
  });

  it('shows the fit badge and the predicted speed on the catalog card', async () => {
    await view('models');
    await (await browser.$(CARD)).waitForDisplayed({ timeout: 30_000 });
    const text = await cardText();
    assert.match(text, /Fits/);
    assert.match(text, /~[\d.,]+ tok\/s on this computer/);
    assert.ok(await (await browser.$(`${CARD} [data-fit="fits"]`)).isDisplayed());
  });

  it('downloads with progress, pauses, resumes and installs the model', async () => {
    await click(`${CARD} [data-action="download"]`);
    await until('progress', async () => ((await progress()) ?? 0) >= 3, 120_000);
    assert.match(await cardText(), /[\d.]+ (kB|MB) of \d+ MB · [\d.]+ (kB|MB)\/s · about \d+ (s|min) left/);
    await shot('downloads-02-progress');

    await click(`${CARD} [data-action="pause-download"]`);
    await until('paused', async () => (await phase()) === 'paused');
    const kept = await progress();
    assert.ok(kept >= 3, `kept ${kept}%`);
    await shot('downloads-03-paused');

    hub.setRate(null);
    hub.log.length = 0;
    await click(`${CARD} [data-action="resume-download"]`);
    await until('installed', async () => (await browser.$(`${CARD} [data-testid="installed-badge"]`)).isExisting(), 180_000);
    const ranged = hub.log.filter((l) => l.range && l.range !== 'bytes=0-');
    assert.ok(ranged.length >= 1, `resumed with a Range request: ${JSON.stringify(hub.log)}`);
    const row = await browser.$('[data-model-id="smollm2-135m-instruct-q8_0"]');
    await row.waitForDisplayed({ timeout: 30_000 });
    assert.ok(await (await row.$('[data-testid="default-badge"]')).isDisplayed(), 'the first model is the default');
    await until('the measured speed', async () => (await browser.$(`${CARD} [data-testid="measured-speed"]`)).isExisting(), 120_000);
    assert.match(await cardText(), /measured [\d.,]+ tok\/s/);
    await (await browser.$(CARD)).scrollIntoView({ block: 'center' });
    await shot('downloads-04-installed');
  });
});
