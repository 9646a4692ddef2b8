#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Drives headless Chromium (Debian's /usr/bin/chromium through playwright-core) through
// Portico's demo page (conf/www) and checks that its WebSockets work end to end, the bridged
// app's included (the test runs conf/examples/express-bridge behind the page's /chat).
//
//   node demo_browser.js '{"url":"http://127.0.0.1:PORT/", "screenshot":"/tmp/demo.png"}'
//   node demo_browser.js '{"url":"https://127.0.0.1:PORT/", "protocol":"h2", "insecure":true}'
//
// Talks to its caller with JSON lines: it prints {"step":...} as it goes and, once two pages
// are in the chat room, {"want":"publish"}; it then reads one line {"text":"..."} on stdin
// (the caller has POSTed that text to /live/lobby) and waits for both pages to show it.
// Then the "Bridged app" panels: an echo from the app, and a `pub:` message that the app
// publishes reaching both pages.
// Last line: {"ok":true,...} (exit 0) or {"ok":false,"error":"..."} (exit 1).
//
// Plan keys: url (required), url_b (page B's page, default url: another Portico instance that
// shares the channels through Redis), screenshot (path, optional), timeout_ms (per wait,
// default 10000), chromium (executable, default /usr/bin/chromium), protocol (the page's
// performance.getEntriesByType('navigation')[0].nextHopProtocol must be this, e.g. "h2"),
// insecure (true: accept the test PKI's certificate).
'use strict';

const { launch, emit, nextStdinJson, watchProblems, finish } = require('./browser_session');

const plan = JSON.parse(process.argv[2] || '{}');
const timeout = plan.timeout_ms || 10000;
const tag = Math.random().toString(36).slice(2, 8);  // tells this run's messages apart

// Resolves when list #listId of page holds an item of class kind whose text is exactly text.
async function waitForLogEntry(page, listId, kind, text, what) {
  try {
    await page.waitForFunction(([id, cls, want]) => {
      const items = document.querySelectorAll('#' + id + ' li.' + cls + ' .text');
      // a long message is shown cut short, with its whole text in data-full
      return Array.from(items).some((el) => (el.dataset.full ?? el.textContent) === want);
    }, [listId, kind, text], { timeout });
  } catch (err) {
    const shown = await page.$$eval('#' + listId + ' li',
        (items) => items.map((li) => li.className + ': ' + li.textContent));
    throw new Error(what + ': no "' + kind + '" entry ' + JSON.stringify(text.slice(0, 80)) +
                    ' in #' + listId + ' within ' + timeout + ' ms; it shows ' +
                    JSON.stringify(shown.slice(-10)));
  }
}

async function waitForClass(page, selector, cls, what) {
  try {
    await page.waitForFunction(([sel, c]) => {
      const el = document.querySelector(sel);
      return el !== null && el.classList.contains(c);
    }, [selector, cls], { timeout });
  } catch (err) {
    const text = await page.$eval(selector, (el) => el.className + ': ' + el.textContent)
        .catch(() => 'missing');
    throw new Error(what + ': ' + selector + ' never got class ' + cls + ' (' + text + ')');
  }
}

async function send(page, prefix, text) {
  await page.fill('#' + prefix + '-input', text);
  await page.click('#' + prefix + '-send');
}

// Opens the demo page and waits until the health check and both sockets are up.
async function openDemo(context, name, problems, url) {
  const page = await context.newPage();
  watchProblems(page, problems, name);
  const response = await page.goto(url, { waitUntil: 'load', timeout });
  if (!response || response.status() !== 200) {
    throw new Error(name + ': GET ' + url + ' answered ' + (response && response.status()));
  }
  await waitForClass(page, '#status', 'ok', name + ' health badge');
  await waitForClass(page, '#echo-state', 'ok', name + ' echo socket');
  await waitForClass(page, '#chat-state', 'ok', name + ' chat socket');
  await waitForClass(page, '#bridge-state', 'ok', name + ' bridged socket');
  if (plan.protocol) {
    const used = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
    if (used !== plan.protocol) throw new Error(name + ': loaded over ' + JSON.stringify(used) + ', not ' + plan.protocol);
  }
  return page;
}

finish(async (result) => {
  const step = (s) => { result.steps.push(s); emit({ step: s }); };
  const problems = [];
  const browser = await launch(plan);
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 },
                                               ignoreHTTPSErrors: plan.insecure === true });
    const alice = await openDemo(context, 'page A', problems, plan.url);
    const status = await alice.textContent('#status');
    if (!/running/i.test(status)) throw new Error('#status says ' + JSON.stringify(status));
    const curl = await alice.textContent('#curl-example');
    const origin = new URL(plan.url).origin;
    if (!curl.includes(origin + '/live/lobby')) {
      throw new Error('curl example does not name this host: ' + JSON.stringify(curl));
    }
    step('page loaded' + (plan.protocol ? ' over ' + plan.protocol : '') + ', health ok, sockets open');

    // Echo: a message over 64 KiB (the 8-byte length form of RFC 6455 5.2), short ASCII and
    // non-ASCII text (UTF-8 both ways) all come back as sent.
    for (const text of ['x'.repeat(70000) + tag, 'hello echo ' + tag,
                        'h\u00e9llo \u2713 \u{1F600} ' + tag]) {
      await send(alice, 'echo', text);
      await waitForLogEntry(alice, 'echo-log', 'in', text, 'echo');
    }
    const inputLeft = await alice.inputValue('#echo-input');
    if (inputLeft !== '') throw new Error('#echo-input not cleared after send');
    step('echo round trips');

    // Chat: a second page joins (from url_b: maybe another instance); each side's message shows
    // on the other.
    const bob = await openDemo(context, 'page B', problems, plan.url_b || plan.url);
    const fromAlice = 'hi from A ' + tag;
    await send(alice, 'chat', fromAlice);
    await waitForLogEntry(alice, 'chat-log', 'out', fromAlice, 'chat own line');
    await waitForLogEntry(bob, 'chat-log', 'in', fromAlice, 'chat A to B');
    const fromBob = 'hello back from B \u00e9 ' + tag;
    await send(bob, 'chat', fromBob);
    await waitForLogEntry(alice, 'chat-log', 'in', fromBob, 'chat B to A');
    step('chat between two pages');

    // HTTP publish: the caller POSTs, both pages show it.
    emit({ want: 'publish' });
    const published = (await nextStdinJson(timeout * 3, 'publish')).text;
    await waitForLogEntry(alice, 'chat-log', 'in', published, 'HTTP publish to A');
    await waitForLogEntry(bob, 'chat-log', 'in', published, 'HTTP publish to B');
    step('HTTP publish reached both pages');

    // The bridged app: Portico POSTs each message to the app, which answers "echo:..."; a
    // "pub:" message is published by the app (GRIP) and reaches the other page too.
    await waitForLogEntry(alice, 'bridge-log', 'in', 'welcome ' + await alice.evaluate(() => navigator.userAgent),
                          'bridged app welcome');
    const toApp = 'hello app \u00e9 ' + tag;
    await send(alice, 'bridge', toApp);
    await waitForLogEntry(alice, 'bridge-log', 'out', toApp, 'bridge own line');
    await waitForLogEntry(alice, 'bridge-log', 'in', 'echo:' + toApp, 'bridged app echo');
    const news = 'news from the app ' + tag;
    await send(bob, 'bridge', 'pub:' + news);
    await waitForLogEntry(bob, 'bridge-log', 'in', 'published', 'bridged app publish answer');
    await waitForLogEntry(bob, 'bridge-log', 'in', news, 'app publish to B');
    await waitForLogEntry(alice, 'bridge-log', 'in', news, 'app publish to A');
    step('bridged app echo and publish');

    if (plan.screenshot) {
      await alice.screenshot({ path: plan.screenshot, fullPage: true });
      step('screenshot ' + plan.screenshot);
    }
    if (problems.length) throw new Error('browser reported: ' + problems.join('; '));
    result.ok = true;
  } finally {
    await browser.close().catch(() => {});
  }
});
