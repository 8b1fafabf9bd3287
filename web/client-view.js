/**
 * The client view: a WebSocket to this server's `/ws` (protocol.md §7, one
 * message per line), the HELO / DATA / QUIT buttons, a free command line,
 * and the transcript in the lab's `C:` / `S:` form.
 *
 * Everything typed is sent exactly as typed (no trimming): the protocol
 * keeps a payload byte for byte, and so does the page. Every text shown
 * goes in with textContent, never as HTML.
 */
import { ReplyMatcher } from './reply-matcher.js';

/** A reply later than this is reported as a timeout (it is still shown if it comes). */
const REPLY_TIMEOUT_MS = 10_000;
const TIMEOUT_CHECK_MS = 250;

/** What the WebSocket close codes the server uses mean to a user. */
const CLOSE_MEANINGS = {
  1000: 'normal close',
  1001: 'the server is going away',
  1002: 'protocol error',
  1003: 'binary messages are not part of the protocol',
  1006: 'the connection was lost',
  1007: 'a message was not valid UTF-8',
  1009: 'a message was too long',
  1011: 'server error',
};

/** `ws://host:port/ws` for the page's own host, `wss://` when the page is https. */
export function webSocketUrl(location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

/**
 * Wires the client view's elements.
 * @param {Document} document
 */
export function startClientView(document) {
  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const connectButton = /** @type {HTMLButtonElement} */ ($('connect'));
  const disconnectButton = /** @type {HTMLButtonElement} */ ($('disconnect'));
  const quitButton = /** @type {HTMLButtonElement} */ ($('quit'));
  const state = $('connection-state');
  const transcript = $('transcript');
  const errorBox = $('client-error');
  const nameInput = /** @type {HTMLInputElement} */ ($('helo-name'));
  const payloadInput = /** @type {HTMLInputElement} */ ($('data-payload'));
  const lineInput = /** @type {HTMLInputElement} */ ($('command-line'));
  const lineLabel = $('command-line-label');
  const commandButtons = /** @type {NodeListOf<HTMLButtonElement>} */ (
    document.querySelectorAll('button.command')
  );
  const url = webSocketUrl(document.location);
  $('ws-url').textContent = url;

  /** @type {WebSocket | null} */
  let socket = null;
  let isOpen = false;
  let closedByUser = false;
  let matcher = new ReplyMatcher();
  /** @type {ReturnType<typeof setInterval> | undefined} */
  let timeoutCheck;

  /**
   * @param {'c' | 's' | 'note' | 'error'} kind
   * @param {string} text
   * @param {string} [annotation]
   */
  function append(kind, text, annotation) {
    const row = document.createElement('div');
    row.className = `line ${kind}`;
    row.textContent = text;
    if (annotation !== undefined) {
      const extra = document.createElement('span');
      extra.className = 'rtt';
      extra.textContent = annotation;
      row.append(extra);
    }
    transcript.append(row);
    transcript.scrollTop = transcript.scrollHeight;
  }

  /** @param {string} message */
  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    append('error', message);
  }

  function clearError() {
    errorBox.textContent = '';
    errorBox.hidden = true;
  }

  /** @param {string} text */
  function setState(text) {
    state.textContent = text;
  }

  function refreshControls() {
    const focusWasOnControl =
      document.activeElement instanceof HTMLButtonElement && document.activeElement.disabled;
    connectButton.disabled = socket !== null;
    disconnectButton.disabled = socket === null;
    for (const button of commandButtons) button.disabled = !isOpen;
    lineLabel.textContent = matcher.expectsPayload ? 'Payload line (after DATA)' : 'Command line';
    // A button that just became disabled drops the keyboard focus to the
    // page's start: put it on the next useful control instead.
    const focusLost =
      focusWasOnControl ||
      (document.activeElement instanceof HTMLButtonElement && document.activeElement.disabled);
    if (focusLost) (isOpen ? nameInput : connectButton).focus();
  }

  /** @param {string} line */
  function send(line) {
    if (socket === null || !isOpen) {
      showError('Not connected: press Connect first.');
      return;
    }
    socket.send(line);
    matcher.sent(line, performance.now());
    append('c', `C: ${line}`);
    refreshControls();
  }

  function checkTimeouts() {
    const now = performance.now();
    for (const request of matcher.pending) {
      if (!request.timedOut && now - request.sentAt > REPLY_TIMEOUT_MS) {
        request.timedOut = true;
        showError(`Timeout: no reply to "${request.line}" within ${REPLY_TIMEOUT_MS / 1000} s.`);
      }
    }
  }

  function connect() {
    clearError();
    closedByUser = false;
    matcher = new ReplyMatcher();
    setState(`connecting to ${url}…`);
    append('note', `connecting to ${url}`);
    const ws = new WebSocket(url);
    socket = ws;
    refreshControls();
    ws.addEventListener('open', () => {
      isOpen = true;
      setState(`connected to ${url}`);
      append('note', 'connected — type HELO, DATA, QUIT');
      timeoutCheck = setInterval(checkTimeouts, TIMEOUT_CHECK_MS);
      refreshControls();
      nameInput.focus();
    });
    ws.addEventListener('message', (event) => {
      const reply = String(event.data).replace(/\r?\n$/, '');
      const request = matcher.received();
      if (request === null) {
        append('s', `S: ${reply}`);
      } else {
        const ms = performance.now() - request.sentAt;
        append('s', `S: ${reply}`, `   (${ms.toFixed(1)} ms)`);
      }
    });
    ws.addEventListener('close', (event) => onClose(ws, event, isOpen));
  }

  /**
   * @param {WebSocket} ws
   * @param {CloseEvent} event
   * @param {boolean} wasOpen
   */
  function onClose(ws, event, wasOpen) {
    if (socket !== ws) return;
    clearInterval(timeoutCheck);
    socket = null;
    isOpen = false;
    for (const request of matcher.reset()) append('error', `no reply to "${request.line}"`);
    const meaning = CLOSE_MEANINGS[/** @type {keyof typeof CLOSE_MEANINGS} */ (event.code)];
    const detail = `code ${event.code}${meaning ? `, ${meaning}` : ''}${event.reason ? `: ${event.reason}` : ''}`;
    if (!wasOpen) {
      showError(
        `Could not connect to ${url} (${detail}). The server refused the connection ` +
          '(HTTP 403: origin not allowed; 503: too many connections or shutting down) ' +
          'or no server is running there.',
      );
      setState('not connected');
    } else if (closedByUser) {
      append('note', `disconnected (${detail})`);
      setState('not connected');
    } else if (event.code === 1000) {
      append('note', `the server closed the connection (${detail})`);
      setState('closed by the server');
    } else {
      showError(`Connection closed: server gone or error (${detail}).`);
      setState('not connected');
    }
    refreshControls();
  }

  function disconnect() {
    if (socket === null) return;
    closedByUser = true;
    socket.close(1000, 'closed by the user');
  }

  connectButton.addEventListener('click', connect);
  disconnectButton.addEventListener('click', disconnect);
  quitButton.addEventListener('click', () => send('QUIT'));
  $('clear').addEventListener('click', () => {
    transcript.replaceChildren();
    clearError();
  });
  $('helo-form').addEventListener('submit', (event) => {
    event.preventDefault();
    send(nameInput.value === '' ? 'HELO' : `HELO ${nameInput.value}`);
  });
  $('data-form').addEventListener('submit', (event) => {
    event.preventDefault();
    // The lab's form: DATA on its own line, then the payload as the next line.
    send('DATA');
    send(payloadInput.value);
  });
  $('line-form').addEventListener('submit', (event) => {
    event.preventDefault();
    send(lineInput.value);
    lineInput.value = '';
  });
  refreshControls();
}
