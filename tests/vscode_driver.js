// Drives a real VS Code (code-server) in headless Chromium for tests/test_editor_vscode.py:
// opens a file, waits for the nearline server, types, waits for ghost text, takes a screenshot,
// accepts with Tab, saves, reads the status bar, and runs "nearline: Show Usage".
// With scenario "rest": opens a file, leaves the cursor at a place and waits for the server's
// nearline/stats (asked through the test's stats proxy) to count a nearline/cursorRest there;
// moves away and back, types, then turns nearline.warmAtCursor off and moves again.
//
// Config: the JSON in env NEARLINE_VSCODE_DRIVER (url, chromium, file, filePath, line, typed,
// screenshot, shots, result, ghostTimeoutMs; for "rest": restLine, restLeft, restAt,
// statsPortFile, settingsFile, userData, restTimeoutMs, quietMs). Writes {error, ghost, ghostMs,
// status, usage, usageAccepted, blocked, steps, rest} to config.result. Needs playwright-core on
// NODE_PATH.
'use strict';

const fs = require('node:fs');
const net = require('node:net');
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
  rest: {},
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

async function openFile(page) {
  await page.goto(config.url);
  await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
  log('workbench loaded');

  await page.waitForTimeout(1500);
  await quickOpen(page, config.file);
  await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30000 });
  log(`${config.file} opened`);
}

/** Open a file with Quick Open (file search is slow here: wait for the row). */
async function quickOpen(page, file) {
  await page.keyboard.press('Control+P');
  await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
  await page.keyboard.type(file, { delay: 30 });
  await page.waitForSelector(`.quick-input-list .monaco-list-row:has-text("${file}")`, { timeout: 30000 });
  await page.keyboard.press('Enter');
}

async function main(page) {
  await openFile(page);

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

// -- scenario "rest" ------------------------------------------------------------------------------

/** The server's nearline/stats result, through the test's stats proxy (one JSON line per
 * connection); null while the proxy is not there yet or the server not initialized. */
async function serverStats() {
  let port;
  try {
    port = Number(fs.readFileSync(config.statsPortFile, 'utf8'));
  } catch {
    return null;
  }
  const text = await new Promise((resolve) => {
    let data = '';
    const socket = net.connect(port, '127.0.0.1');
    socket.setEncoding('utf8');
    socket.setTimeout(30000, () => socket.destroy());
    socket.on('data', (chunk) => (data += chunk));
    socket.on('close', () => resolve(data));
    socket.on('error', () => resolve(''));
  });
  try {
    const stats = JSON.parse(text);
    return stats && typeof stats === 'object' && !('error' in stats) ? stats : null;
  } catch {
    return null;
  }
}

/** What the test reads of the stats: the count, and the last rest's place (the server may add
 * more to it). */
function restPart(stats) {
  if (!stats) {
    return { rests: null, last_rest: null, error: 'no stats' };
  }
  const last = stats.last_rest;
  const place = last ? { uri: last.uri, line: last.line, character: last.character } : null;
  return { rests: stats.rests, last_rest: place };
}
const sameRest = (a, b) =>
  !!a && !!b && a.uri === b.uri && a.line === b.line && a.character === b.character;

async function waitForRest(what, at) {
  return waitFor(what, config.restTimeoutMs || 15000, async () => {
    const stats = await serverStats();
    if (stats) {
      result.rest.lastSeen = restPart(stats);
    }
    return stats && stats.rests >= 1 && sameRest(stats.last_rest, at) ? restPart(stats) : null;
  }, 100);
}

/** The extension's log file (the "nearline" output channel). */
function extensionLog() {
  const logs = path.join(config.userData, 'logs');
  const found = [];
  for (const session of fs.existsSync(logs) ? fs.readdirSync(logs) : []) {
    for (const host of fs.readdirSync(path.join(logs, session))) {
      const file = path.join(logs, session, host, 'nearline.nearline', 'nearline.log');
      if (host.startsWith('exthost') && fs.existsSync(file)) {
        found.push(fs.readFileSync(file, 'utf8'));
      }
    }
  }
  return found.join('\n');
}

async function mainRest(page) {
  await openFile(page);
  const first = await waitFor('the server to answer nearline/stats', 90000, serverStats, 250);
  log('server up:', JSON.stringify(restPart(first)));

  // The cursor to the place, and leave it there.
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+Home');
  for (let i = 0; i < config.restLine; i++) {
    await page.keyboard.press('ArrowDown');
  }
  await page.keyboard.press('End');
  for (let i = 0; i < config.restLeft; i++) {
    await page.keyboard.press('ArrowLeft');
  }
  const movedAt = Date.now();
  result.rest.rested = await waitForRest(`a cursor rest at ${JSON.stringify(config.restAt)}`, config.restAt);
  result.rest.restMs = Date.now() - movedAt;
  log(`rest after ${result.rest.restMs} ms:`, JSON.stringify(result.rest.rested));

  // Away and back within the 200 ms debounce: the same place again, nothing to send.
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowLeft');
  await page.waitForTimeout(config.quietMs || 1000);
  result.rest.sameAgain = restPart(await serverStats());
  log('after away and back:', JSON.stringify(result.rest.sameAgain));

  // Typing moves the cursor: a rest once the typing stops.
  await page.keyboard.type('ab', { delay: 30 });
  const typedAt = { ...config.restAt, character: config.restAt.character + 2 };
  result.rest.typed = await waitForRest(`a cursor rest at ${JSON.stringify(typedAt)} after typing`, typedAt);
  log('after typing:', JSON.stringify(result.rest.typed));

  // nearline.warmAtCursor off in the Settings editor, while the editor runs. (code-server here
  // did not notice settings.json written from outside; the Settings editor writes the file and
  // reloads the configuration itself.) The extension logs "cursor rest notifications off" when
  // it takes the change.
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Comma');
  // The search box (a small Monaco editor) has the focus when the Settings editor opens.
  await page.waitForSelector('.settings-editor .settings-header .suggest-input-container .monaco-editor.focused', {
    timeout: 30000,
  });
  await page.keyboard.type('nearline.warmAtCursor', { delay: 20 });
  const checkbox = '.settings-editor .setting-item-bool .setting-value-checkbox';
  await waitFor('the nearline.warmAtCursor checkbox alone in the Settings editor', 30000, async () =>
    (await page.locator(checkbox).count()) === 1 &&
    (await page.locator(checkbox).getAttribute('aria-checked')) === 'true',
  );
  await page.click(checkbox);
  await waitFor('the checkbox to clear', 10000, async () =>
    (await page.locator(checkbox).getAttribute('aria-checked')) === 'false',
  );
  result.rest.offApplied = await waitFor('the extension to take nearline.warmAtCursor = false', 20000, async () =>
    extensionLog().includes('cursor rest notifications off'),
  );
  result.rest.setting = JSON.parse(fs.readFileSync(config.settingsFile, 'utf8'))['nearline.warmAtCursor'];
  await page.screenshot({ path: path.join(config.shots, 'warm-at-cursor-off.png') });

  // Close the Settings editor (VS Code 1.139 shows it as a modal over the file): the file is
  // the active editor again; move, and stay.
  result.rest.beforeOff = restPart(await serverStats());
  const modal = '.monaco-modal-editor-block';
  await page.keyboard.press('Escape');
  try {
    await page.waitForSelector(modal, { state: 'detached', timeout: 3000 });
  } catch {
    await page.click(`${modal} .codicon-close`);
    await page.waitForSelector(modal, { state: 'detached', timeout: 10000 });
  }
  await page.waitForSelector('.editor-instance .monaco-editor.focused', { timeout: 10000 });
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('ArrowUp');
  await page.waitForTimeout(config.quietMs || 1000);
  result.rest.afterOff = restPart(await serverStats());
  log('setting off; before and after moving:', JSON.stringify(result.rest.beforeOff), JSON.stringify(result.rest.afterOff));
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
      await (config.scenario === 'rest' ? mainRest(page) : main(page));
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
