// SPDX-License-Identifier: Apache-2.0
// Portico demo page: a health check, the built-in `echo` WebSocket endpoint, a chat room on
// the built-in `pubsub` channel /live/lobby, and a WebSocket to an app behind the
// WebSocket-over-HTTP bridge (/chat). Plain browser JavaScript, no build step.
// Element ids (#status, #echo-*, #chat-*, #bridge-*) are used by tests/peers/demo_browser.js.
'use strict';

(function () {
  const kLogLimit = 200;           // entries kept per log; older ones are dropped
  const kShownChars = 300;         // a longer message is shown cut to this many characters
  const kRetryFirstMs = 500;       // first reconnect delay, doubled up to kRetryMaxMs
  const kRetryMaxMs = 10000;
  const wsBase = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;
  const decoder = new TextDecoder();

  const $ = (id) => document.getElementById(id);

  // Adds a line to a log list. kind: 'out' (we sent it), 'in' (received) or 'info'.
  // Text goes in with textContent only: chat messages come from strangers. A long message is
  // shown cut short; its whole text stays in the .text element's data-full attribute.
  function appendLog(list, kind, text, meta) {
    const item = document.createElement('li');
    item.className = kind;
    const body = document.createElement('span');
    body.className = 'text';
    if (text.length > kShownChars) {
      body.textContent = text.slice(0, kShownChars) + '\u2026';
      body.dataset.full = text;
      meta = (meta ? meta + ' \u00b7 ' : '') + text.length.toLocaleString('en') + ' chars';
    } else {
      body.textContent = text;
    }
    item.appendChild(body);
    if (meta) {
      const note = document.createElement('span');
      note.className = 'meta';
      note.textContent = meta;
      item.appendChild(note);
    }
    list.appendChild(item);
    while (list.children.length > kLogLimit) list.removeChild(list.firstChild);
    list.scrollTop = list.scrollHeight;
  }

  function setBadge(el, cls, text) {
    el.className = el.className.split(' ')[0] + ' ' + cls;
    el.textContent = text;
  }

  // ---- health -------------------------------------------------------------------------------
  async function checkHealth() {
    const status = $('status');
    try {
      const response = await fetch('/healthz', { cache: 'no-store' });
      if (response.ok) {
        setBadge(status, 'ok', 'Gateway running \u00b7 ' + location.host);
      } else {
        setBadge(status, 'bad', 'Health check answered ' + response.status);
      }
    } catch (err) {
      setBadge(status, 'bad', 'Gateway unreachable');
    }
  }

  // ---- a WebSocket that comes back ----------------------------------------------------------
  // Opens wsBase + path, shows its state in stateEl, hands every message (as text) to
  // onMessage, and reconnects with a growing delay after a close. A socket that never opened
  // shows `refusedText` when given (the bridged app may not run). Returns {send(text) -> bool}.
  function keepConnected(path, stateEl, onMessage, onOpen, refusedText) {
    let socket = null;
    let delay = kRetryFirstMs;
    function open() {
      setBadge(stateEl, 'pending', 'connecting');
      let opened = false;
      socket = new WebSocket(wsBase + path);
      socket.binaryType = 'arraybuffer';
      socket.onopen = () => {
        opened = true;
        delay = kRetryFirstMs;
        setBadge(stateEl, 'ok', 'connected');
        if (onOpen) onOpen();
      };
      socket.onmessage = (event) => {
        const data = typeof event.data === 'string' ? event.data : decoder.decode(event.data);
        onMessage(data);
      };
      socket.onclose = (event) => {
        const closed = 'closed' + (event.code ? ' ' + event.code : '');
        setBadge(stateEl, 'bad', (!opened && refusedText ? refusedText : closed) + ', retrying');
        setTimeout(open, delay);
        delay = Math.min(delay * 2, kRetryMaxMs);
        checkHealth();
      };
    }
    open();
    return {
      send(text) {
        if (!socket || socket.readyState !== WebSocket.OPEN) return false;
        socket.send(text);
        return true;
      },
    };
  }

  // A form's send(text) for a socket whose messages are not answered one by one: the line is
  // logged as ours (with `meta`) when it went out.
  function sendAndLog(conn, log, meta) {
    return (text) => {
      if (!conn.send(text)) {
        appendLog(log, 'info', 'not connected');
        return false;
      }
      appendLog(log, 'out', text, meta);
      return true;
    };
  }

  // Wires a form: on submit, send(text) the input's value and clear it.
  function onSubmit(formId, inputId, send) {
    const input = $(inputId);
    $(formId).addEventListener('submit', (event) => {
      event.preventDefault();
      const text = input.value;
      if (text === '') return;
      if (send(text)) input.value = '';
      input.focus();
    });
  }

  // ---- echo ---------------------------------------------------------------------------------
  function startEcho() {
    const log = $('echo-log');
    const sentAt = [];  // echoes come back in order: the first timestamp belongs to the next one
    const echo = keepConnected('/echo', $('echo-state'), (text) => {
      const started = sentAt.shift();
      const meta = started === undefined ? '' : Math.round(performance.now() - started) + ' ms';
      appendLog(log, 'in', text, meta);
    }, () => { sentAt.length = 0; });
    onSubmit('echo-form', 'echo-input', (text) => {
      if (!echo.send(text)) {
        appendLog(log, 'info', 'not connected');
        return false;
      }
      sentAt.push(performance.now());
      appendLog(log, 'out', text);
      return true;
    });
  }

  // ---- chat ---------------------------------------------------------------------------------
  // A message on the channel is shown as is; if it is a JSON envelope with the text under
  // data/message/text, that text is shown with its sequence number.
  function chatText(raw) {
    if (raw.charAt(0) === '{') {
      try {
        const doc = JSON.parse(raw);
        for (const key of ['data', 'message', 'text']) {
          if (typeof doc[key] === 'string') {
            return { text: doc[key], meta: doc.seq !== undefined ? '#' + doc.seq : '' };
          }
        }
      } catch (err) {
        // not JSON after all: show it raw
      }
    }
    return { text: raw, meta: '' };
  }

  function startChat() {
    const log = $('chat-log');
    // The channel sends a subscriber's message to the other subscribers, so our own lines
    // are shown when sent.
    const chat = keepConnected('/live/lobby', $('chat-state'), (raw) => {
      const shown = chatText(raw);
      appendLog(log, 'in', shown.text, shown.meta);
    });
    onSubmit('chat-form', 'chat-input', sendAndLog(chat, log, 'you'));
  }

  // ---- bridged app --------------------------------------------------------------------------
  // Portico holds this WebSocket and POSTs its messages to the route's app (Pushpin's
  // WebSocket-over-HTTP); the app's answers and what it publishes come back on it.
  function startBridge() {
    const log = $('bridge-log');
    const bridge = keepConnected('/chat', $('bridge-state'), (text) => appendLog(log, 'in', text), null,
                                 'no app answering');
    onSubmit('bridge-form', 'bridge-input', sendAndLog(bridge, log, 'to the app'));
  }

  function showCurlExample() {
    const code = $('curl-example').querySelector('code');
    code.textContent = code.textContent.replace('http://HOST',
        location.protocol + '//' + location.host);
  }

  showCurlExample();
  checkHealth();
  startEcho();
  startChat();
  startBridge();
})();
