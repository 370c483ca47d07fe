// Starts the desktop app under WebDriver for the end-to-end tests: tauri-driver (which runs
// WebKitWebDriver, which starts the app) and a webdriverio session on it. The app binary is
// $HEARTH_APP_BIN (default: the release build in $CARGO_TARGET_DIR or target-app). Each run
// gets fresh data and config folders, so nothing from the user's own Hearth is touched.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { remote } from 'webdriverio';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function appBinary() {
  if (process.env.HEARTH_APP_BIN) return process.env.HEARTH_APP_BIN;
  const target = process.env.CARGO_TARGET_DIR_APP ?? join(root, 'target-app');
  return join(target, 'release', 'hearth-desktop');
}

export function testModel() {
  const dir = process.env.HEARTH_TEST_MODELS ?? join(homedir(), '.cache', 'hearth', 'test-models');
  const file = join(dir, 'smollm2-135m-instruct-q4_1.gguf');
  if (!existsSync(file)) {
    throw new Error(`The SmolLM2 test model is missing (${file}): run scripts/fetch-test-models first.`);
  }
  return file;
}

function findTauriDriver() {
  const candidates = [process.env.TAURI_DRIVER, join(homedir(), '.cargo', 'bin', 'tauri-driver')].filter(Boolean);
  for (const c of candidates) if (existsSync(c)) return c;
  const which = spawnSync('sh', ['-c', 'command -v tauri-driver'], { encoding: 'utf8' });
  if (which.status === 0) return which.stdout.trim();
  throw new Error('tauri-driver is not installed: run `cargo install tauri-driver --version 2.1.0 --locked`.');
}

function waitForPort(port, timeoutMs) {
  const until = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.end();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > until) reject(new Error(`nothing listens on port ${port}`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

/** Fresh folders for one run: the app's data, its config (window state), and screenshots. */
export function freshHome() {
  const base = mkdtempSync(join(tmpdir(), 'hearth-e2e-'));
  const dirs = { base, data: join(base, 'data'), config: join(base, 'config'), xdgData: join(base, 'xdg-data') };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  return dirs;
}

export function appEnv(home) {
  return {
    ...process.env,
    HEARTH_DATA_DIR: home.data,
    XDG_CONFIG_HOME: home.config,
    XDG_DATA_HOME: home.xdgData,
  };
}

/** The WebDriver port ($HEARTH_E2E_PORT, default 4444); WebKitWebDriver gets the next one. */
export const PORT = Number(process.env.HEARTH_E2E_PORT ?? 4444);

/** tauri-driver with the app's environment; stop it with stopDriver (SIGTERM, never SIGKILL). */
export async function startDriver(home, port = PORT) {
  const args = ['--port', String(port), '--native-port', String(port + 1)];
  const driver = spawn(findTauriDriver(), args, {
    env: appEnv(home),
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((resolve) => driver.once('exit', resolve));
  driver.exited = exited;
  driver.home = home;
  // tauri-driver listens at once, but forwards sessions to WebKitWebDriver, which it starts
  // alongside: a session asked for before that one listens fails with a connection error.
  await waitForPort(port, 15_000);
  await waitForPort(port + 1, 15_000);
  return driver;
}

export async function stopDriver(driver) {
  if (driver && driver.exitCode === null) {
    driver.kill('SIGTERM');
    await Promise.race([driver.exited, new Promise((r) => setTimeout(r, 5000))]);
  }
  // An app whose WebDriver session never came up (a start that timed out) is not closed by the
  // driver and would keep the test run waiting for it: end the apps this run started (those
  // with this run's data folder), never any other Hearth on the machine.
  const home = driver?.home;
  if (!home) return;
  const pids = spawnSync('pgrep', ['-f', appBinary()], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  const ended = [];
  for (const pid of pids) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (env.includes(`HEARTH_DATA_DIR=${home.data}`)) {
        process.kill(Number(pid), 'SIGTERM');
        ended.push(pid);
      }
    } catch {
      // Gone already, or not ours to read.
    }
  }
  // The run's folders go once its apps are gone (they write there while closing), unless
  // HEARTH_E2E_KEEP asks to keep them for a look.
  for (let i = 0; i < 50 && ended.some((pid) => existsSync(`/proc/${pid}`)); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!process.env.HEARTH_E2E_KEEP) rmSync(home.base, { recursive: true, force: true, maxRetries: 3 });
}

/** A WebDriver session: starts the app and waits for its first screen. */
export async function openApp(port = PORT) {
  const binary = appBinary();
  if (!existsSync(binary)) throw new Error(`The app is not built: ${binary} is missing (run scripts/test-app).`);
  const options = {
    hostname: '127.0.0.1',
    port,
    logLevel: 'warn',
    connectionRetryCount: 0,
    capabilities: { 'tauri:options': { application: binary } },
  };
  let browser;
  try {
    browser = await remote(options);
  } catch (err) {
    // A request that never reached WebKitWebDriver started no app: ask once more.
    if (!/UND_ERR_SOCKET|ECONNREFUSED|ECONNRESET/.test(String(err?.message ?? err))) throw err;
    await new Promise((r) => setTimeout(r, 1000));
    browser = await remote(options);
  }
  await browser.$('.app, .fatal').waitForExist({ timeout: 30_000 });
  return browser;
}

/**
 * Imports the model file at `path` through the welcome screen's path field and waits for the
 * chat composer. The screen can render its form again while the app finishes starting, which
 * empties the field (and leaves the import button disabled): the path is typed once the welcome
 * title shows, and typed again until the button takes it.
 */
export async function importModel(browser, path) {
  await (await browser.$('#welcome-title')).waitForDisplayed({ timeout: 30_000 });
  await browser.waitUntil(
    async () => {
      const input = await browser.$('input[name="model-path"]');
      if ((await input.getValue()) !== path) await input.setValue(path);
      return (await input.getValue()) === path && (await (await browser.$('[data-action="import-path"]')).isEnabled());
    },
    { timeout: 20_000, interval: 250, timeoutMsg: 'the import field did not take the model path' },
  );
  await (await browser.$('[data-action="import-path"]')).click();
  await (await browser.$('.composer-input')).waitForDisplayed({ timeout: 60_000 });
}
