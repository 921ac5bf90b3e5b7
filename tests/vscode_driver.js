// Drives a real VS Code (code-server) in headless Chromium for tests/test_editor_vscode.py:
// opens a file, waits for the nearline server, types, waits for ghost text, takes a screenshot,
// accepts with Tab, saves, reads the status bar, and runs "nearline: Show Usage".
//
// Config: the JSON in env NEARLINE_VSCODE_DRIVER (url, chromium, file, filePath, line, typed,
// screenshot, shots, result, ghostTimeoutMs). Writes {error, ghost, ghostMs, status, usage,
// usageAccepted, blocked, steps} to config.result. Needs playwright-core on NODE_PATH.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const config = JSON.parse(process.env.NEARLINE_VSCODE_DRIVER || '{}');
const t0 = Date.now();
const result = {
  error: null,
  ghost: '',
  ghostMs: null,
  status: '',
  statusItems: [],
  usage: '',
  usageAccepted: 0,
  notifications: [],
  blocked: [],
  steps: [],
};

function log(...args) {
  const line = `[${((Date.now() - t0) / 1000).toFixed(1)}s] ${args.join(' ')}`;
  result.steps.push(line);
  console.log(line);
}

const GHOST = '.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text';
const clean = (text) => text.replace(/\u00a0/g, ' ');

async function ghostText(page) {
  return clean((await page.locator(GHOST).allTextContents()).join(''));
}

/** The nearline status bar item's text (codicons are spans without text) and label. */
async function statusItems(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('.statusbar-item')]
      .map((item) => ({
        id: item.id,
        text: (item.textContent || '').trim(),
        label: item.getAttribute('aria-label') || '',
        spinning: !!item.querySelector('.codicon-sync, .codicon-loading, [class*="spin"]'),
      }))
      .filter((item) => /nearline/i.test(item.id + ' ' + item.text + ' ' + item.label)),
  );
}

/** Messages of the notifications shown now and in the notification center. */
async function notifications(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('.notification-list-item-message')].map((m) => m.textContent || ''),
  );
}

async function waitFor(what, timeoutMs, probe, stepMs = 200) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) {
      return value;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

async function runCommand(page, title) {
  await page.keyboard.press('F1');
  await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
  await page.keyboard.type(title, { delay: 20 });
  await page.waitForSelector(`.quick-input-list .monaco-list-row:has-text("${title.split(': ')[1]}")`, {
    timeout: 30000,
  });
  await page.keyboard.press('Enter');
}

async function main(page) {
  await page.goto(config.url);
  await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
  log('workbench loaded');

  // Open the file with Quick Open (file search is slow here: wait for the row).
  await page.waitForTimeout(1500);
  await page.keyboard.press('Control+P');
  await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
  await page.keyboard.type(config.file, { delay: 30 });
  await page.waitForSelector(`.quick-input-list .monaco-list-row:has-text("${config.file}")`, { timeout: 30000 });
  await page.keyboard.press('Enter');
  await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30000 });
  log(`${config.file} opened`);

  // The status bar item appears when the extension activates; the spinner stops when the
  // model has loaded.
  const ready = await waitFor('the nearline status bar item to leave "loading"', 90000, async () => {
    const items = await statusItems(page);
    const item = items.find((i) => !i.spinning && /local|nearline/.test(i.text));
    return item && !/warning/.test(item.label) ? item : null;
  }, 250);
  log('status bar ready:', JSON.stringify(ready));

  // Cursor to the end of the last non-empty line, then type.
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+End');
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('End');
  const typedAt = Date.now();
  await page.keyboard.type(config.typed, { delay: 60 });
  log(`typed ${JSON.stringify(config.typed)}`);

  // Wait for ghost text, then for it to settle (a suggestion cut by the time budget is
  // completed when the server sends nearline/completionReady).
  let ghost = await waitFor('ghost text', config.ghostTimeoutMs || 60000, async () => (await ghostText(page)) || null, 100);
  result.ghostMs = Date.now() - typedAt;
  log(`ghost text after ${result.ghostMs} ms: ${JSON.stringify(ghost)}`);
  let stableSince = Date.now();
  const settleEnd = Date.now() + 15000;
  while (Date.now() - stableSince < 2000 && Date.now() < settleEnd) {
    await page.waitForTimeout(100);
    const now = await ghostText(page);
    if (now && now !== ghost) {
      log(`ghost text now ${JSON.stringify(now)}`);
      ghost = now;
      stableSince = Date.now();
    }
  }
  result.ghost = ghost;
  await page.screenshot({ path: config.screenshot });
  log('screenshot', config.screenshot);

  // Accept with Tab (VS Code runs the item's nearline.accepted command), then save.
  await page.keyboard.press('Tab');
  await waitFor('the ghost text to be accepted', 10000, async () => !(await ghostText(page)));
  await page.keyboard.press('Control+S');
  const before = fs.readFileSync(config.filePath, 'utf8');
  const saved = await waitFor('the file to be saved', 15000, async () => {
    const now = fs.readFileSync(config.filePath, 'utf8');
    return now.includes(ghost) && now !== before ? now : null;
  });
  log('saved line:', JSON.stringify(saved.split('\n')[config.line]));

  // The status bar shows the answer: tier and latency.
  const items = await waitFor('the status bar to show a latency', 15000, async () => {
    const found = await statusItems(page);
    return found.some((i) => /ms/.test(i.text)) ? found : null;
  });
  result.statusItems = items;
  result.status = items.map((i) => i.text).join(' | ');
  log('status bar:', JSON.stringify(result.status));

  // Usage: the accept reached the server.
  await runCommand(page, 'nearline: Show Usage');
  const usage = await waitFor('the usage output', 20000, async () => {
    const text = await page.evaluate(() =>
      [...document.querySelectorAll('.part.panel .view-lines .view-line')]
        .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
        .map((line) => line.textContent)
        .join('\n'),
    );
    return /acceptance: \d+ of/.test(clean(text)) ? clean(text) : null;
  });
  result.usage = usage;
  result.usageAccepted = Number(/acceptance: (\d+) of/.exec(usage)[1]);
  log('usage:', JSON.stringify(usage));
  await page.screenshot({ path: path.join(config.shots, 'usage.png') });
}

(async () => {
  fs.mkdirSync(config.shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.route('**/*', (route) => {
      // Only 127.0.0.1 (and data:/blob: URLs) may be reached.
      const url = new URL(route.request().url());
      if (['127.0.0.1', 'localhost'].includes(url.hostname) || !url.protocol.startsWith('http')) {
        return route.continue();
      }
      result.blocked.push(url.href);
      return route.abort();
    });
    page = await context.newPage();
    page.on('pageerror', (error) => log('pageerror', error.message));
    // Toasts hide after a while: note every message while the test runs.
    const seen = new Set();
    const watch = setInterval(() => {
      notifications(page)
        .then((messages) => messages.forEach((m) => seen.has(m) || (seen.add(m), log('notification:', JSON.stringify(m)))))
        .catch(() => undefined);
    }, 500);
    try {
      await main(page);
      result.notifications.push(...(await notifications(page)));
    } finally {
      clearInterval(watch);
      result.notifications = [...new Set([...seen, ...result.notifications])];
    }
  } catch (error) {
    result.error = String((error && error.stack) || error);
    log('error', result.error);
    if (page) {
      await page.screenshot({ path: path.join(config.shots, 'failure.png') }).catch(() => undefined);
      result.statusItems = await statusItems(page).catch(() => []);
    }
  } finally {
    fs.writeFileSync(config.result, JSON.stringify(result, null, 2));
    await browser.close().catch(() => undefined);
  }
})().catch((error) => {
  console.error(error);
  process.exit(2);
});
