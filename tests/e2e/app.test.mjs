// End to end: the built desktop app under Xvfb, driven through WebDriver (tauri-driver +
// WebKitWebDriver), with the real SmolLM2 test model imported through the app's own import
// path. One app run after another, sharing one fresh data folder:
//   first run -> import -> ask (Paris) -> stop a long answer -> edit and branch -> themes;
//   restart -> the conversation is there -> search finds it -> Chinese and back.
// Screenshots of every view go to test-output/screenshots/<label>/ (label: $HEARTH_E2E_LABEL).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appBinary, appEnv, freshHome, importModel, openApp, root, startDriver, stopDriver, testModel } from './driver.mjs';

const label = process.env.HEARTH_E2E_LABEL ?? 'build';
const shots = join(root, 'test-output', 'screenshots', label);
mkdirSync(shots, { recursive: true });

const model = testModel();
const home = freshHome();
let driver;
let browser;

/** Waits for two animation frames so a screenshot shows the latest DOM. */
async function painted() {
  await browser.executeAsync((done) => requestAnimationFrame(() => requestAnimationFrame(() => done())));
  await browser.pause(250);
}

async function shot(name) {
  await painted();
  await browser.saveScreenshot(join(shots, `${name}.png`));
}

async function until(what, fn, timeout = 60_000) {
  await browser.waitUntil(fn, { timeout, interval: 100, timeoutMsg: `timed out waiting for ${what}` });
}

/** The text of the first element matching `selector` (textContent: what is in the DOM). */
const text = (selector, within = null) =>
  browser.execute((sel, el) => (el ?? document).querySelector(sel)?.textContent ?? null, selector, within);
const textOf = (element) => browser.execute((el) => el.textContent, element);

const lastReply = () => browser.$$('[data-pane="chat"] article.message[data-role="assistant"]').then((l) => l[l.length - 1]);
const userMessages = () => browser.$$('[data-pane="chat"] article.message[data-role="user"]');

async function replyState() {
  const r = await lastReply();
  if (!r) return { status: null, text: '', whole: '' };
  return {
    status: await r.getAttribute('data-status'),
    text: (await text('.message-body', r)) ?? '',
    whole: await textOf(r),
  };
}

async function view(name) {
  await (await browser.$(`.rail-item[data-view="${name}"]`)).click();
  await until(`the ${name} view`, async () => (await (await browser.$('.view')).getAttribute('data-current-view')) === name);
}

async function ask(text) {
  const box = await browser.$('.composer-input');
  await box.setValue(text);
  await (await browser.$('[data-action="send"]')).click();
}

async function setTheme(theme) {
  await view('settings');
  // The radio itself is visually hidden; its label is what a person clicks.
  await (await (await browser.$(`input[name="theme"][value="${theme}"]`)).parentElement()).click();
  await until(`the ${theme} theme`, async () => (await browser.execute(() => document.documentElement.dataset.theme)) === theme);
}

async function restart() {
  await browser.deleteSession();
  browser = await openApp();
}

before(async () => {
  driver = await startDriver(home);
  browser = await openApp();
});

after(async () => {
  if (browser) await browser.deleteSession().catch(() => {});
  await stopDriver(driver);
});

describe(`Hearth desktop app (${appBinary()})`, () => {
  it('opens on the welcome screen on first run', async () => {
    const title = await browser.$('#welcome-title');
    await title.waitForDisplayed({ timeout: 20_000 });
    assert.equal(await textOf(title), 'Welcome to Hearth');
    await shot('01-welcome-light');
  });

  it('imports the SmolLM2 model through the import field', async () => {
    await importModel(browser, model);
    await view('models');
    const row = await browser.$('[data-model-id]');
    await row.waitForDisplayed();
    const facts = await textOf(row);
    assert.match(facts, /llama/);
    assert.match(facts, /smollm2-135m-instruct-q4_1\.gguf/);
    assert.ok(await (await row.$('[data-testid="default-badge"]')).isDisplayed());
    await shot('02-models-light');
  });

  it('answers "What is the capital of France?" with Paris, streamed', async () => {
    await view('chat');
    // Greedy decoding (temperature 0), set through the chat settings panel.
    await (await browser.$('[data-action="chat-settings"]')).click();
    const temp = await browser.$('#chat-panel input[type="number"]');
    await temp.setValue('0');
    await browser.keys('Tab');
    await until('the saved temperature', async () =>
      (await browser.execute(() => document.querySelector('.banners')?.textContent ?? '')).includes('Chat settings saved.'),
    );
    await (await browser.$('[data-action="chat-settings"]')).click();

    await ask('What is the capital of France?');
    // The reply is seen while it streams, then finished.
    let sawStreaming = false;
    await until('the streamed answer', async () => {
      const { status, text } = await replyState();
      if (status === 'streaming' && text.length > 0) sawStreaming = true;
      return status === 'done';
    }, 240_000);
    const answer = (await replyState()).text;
    assert.ok(sawStreaming, 'the reply was never seen while streaming');
    assert.match(answer, /Paris/, `the answer was: ${answer}`);
    const stats = await text('[data-testid="stats"]', await lastReply());
    assert.match(stats, /tokens\/s · first token after [\d,]+ ms · \d+ tokens/);
    const live = await browser.execute(() => document.getElementById('live-region').textContent);
    assert.match(live, /Reply finished\./);
    await until('the conversation title', async () => /What is the capital of France\?/.test(await text('.conversation-row.current')));
    await shot('03-chat-light');
  });

  it('stops a long answer mid-stream', async () => {
    await (await browser.$('[data-action="new-chat"]')).click();
    await ask('Write a very long story about a dragon who learns to bake bread. Make it at least ten paragraphs.');
    await until('the story to start', async () => {
      const { status, text } = await replyState();
      return status === 'streaming' && text.length > 40;
    }, 120_000);
    await (await browser.$('[data-action="stop"]')).click();
    await until('the reply to stop', async () => (await replyState()).status === 'cancelled', 30_000);
    const stopped = await replyState();
    await browser.pause(3000);
    const later = await replyState();
    assert.equal(later.text, stopped.text, 'text kept arriving after Stop');
    assert.match(stopped.whole, /Stopped/);
    assert.ok(await (await browser.$('[data-action="send"]')).isExisting(), 'Send is back');
    await shot('04-chat-stopped-light');
  });

  it('edits a question into a new branch and switches between the branches', async () => {
    // Back to the France conversation.
    const rows = await browser.$$('.conversation');
    for (const r of rows) if ((await textOf(r)).includes('France')) await r.click();
    const firstQuestion = async () => textOf((await userMessages())[0]);
    await until('the France thread', async () => (await firstQuestion())?.includes('France'));
    await (await (await userMessages())[0].$('[data-action="edit"]')).click();
    const editor = await browser.$('.message-edit textarea');
    await editor.setValue('What is the capital of Germany?');
    await (await browser.$('[data-action="send-edit"]')).click();
    await until('the edited question', async () => (await firstQuestion()).includes('Germany'));
    await until('the new answer', async () => (await replyState()).status === 'done', 240_000);
    const first = (await userMessages())[0];
    assert.equal(await text('[data-testid="version"]', first), '2 / 2');
    await shot('05-chat-branch-light');

    await (await first.$('[data-action="prev-version"]')).click();
    await until('the first branch', async () => (await firstQuestion()).includes('France'));
    assert.equal(await text('[data-testid="version"]', (await userMessages())[0]), '1 / 2');
    assert.match((await replyState()).text, /Paris/);
  });

  it('shows every view in the dark theme', async () => {
    await (await browser.$('[data-action="chat-settings"]')).click();
    await setTheme('dark');
    await shot('06-settings-dark');
    await view('models');
    await shot('07-models-dark');
    await view('chat');
    await shot('08-chat-dark');
    await browser.keys(['F1']);
    await (await browser.$('[role="dialog"]')).waitForDisplayed();
    await shot('09-help-dark');
    await browser.keys(['Escape']);
    await setTheme('light');
    await shot('10-settings-light');
    await view('chat');
    await (await browser.$('[data-action="chat-settings"]')).click();
  });

  it('hands a second launch over to the running window', async () => {
    // Needs a D-Bus session bus (scripts/test-app runs the suite under dbus-run-session).
    if (!process.env.DBUS_SESSION_BUS_ADDRESS) {
      assert.fail('no D-Bus session: run the end-to-end tests through scripts/test-app');
    }
    const second = spawn(appBinary(), [], { env: appEnv(home), stdio: 'ignore' });
    const code = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        second.kill('SIGTERM');
        resolve('still running after 20 s');
      }, 20_000);
      second.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(code, 0, 'the second launch should exit at once');
    assert.equal(await browser.getTitle(), 'Hearth', 'the first window still answers');
  });

  it('finds the conversation again after a restart', async () => {
    await restart();
    const row = await browser.$('.conversation*=France');
    await row.waitForDisplayed({ timeout: 20_000 });
    await row.click();
    await until('the thread', async () => (await replyState()).status === 'done');
    assert.match((await replyState()).text, /Paris/);
    assert.match(await textOf((await userMessages())[0]), /France/);
  });

  it('search finds it', async () => {
    await (await browser.$('[data-action="new-chat"]')).click();
    const search = await browser.$('.search-input');
    await search.setValue('Paris');
    const hit = await browser.$('.search-hit');
    await hit.waitForDisplayed({ timeout: 10_000 });
    assert.equal(await text('mark', hit), 'Paris');
    await shot('11-search-light');
    await hit.click();
    await until('the found conversation', async () => (await text('.chat-title')).includes('France'));
    await search.clearValue();
    await browser.keys(['Escape']);
  });

  it('switches the UI to Chinese and back', async () => {
    await view('settings');
    await (await browser.$('#language-select')).selectByAttribute('value', 'zh-CN');
    await until('Chinese', async () => (await text('.rail-item[data-view="chat"]')) === '聊天');
    assert.equal(await text('.settings-page h1'), '设置');
    await shot('12-settings-zh');
    await view('chat');
    assert.equal((await text('[data-action="new-chat"]')).trim(), '新对话');
    await shot('13-chat-zh');
    await view('settings');
    await (await browser.$('#language-select')).selectByAttribute('value', 'en');
    await until('English', async () => (await text('.rail-item[data-view="chat"]')) === 'Chat');
  });
});
