/**
 * The dashboard view: subscribes to `/events` (Server-Sent Events, one
 * `snapshot` event a second holding a DashboardSnapshot, see
 * src/server/observe/dashboard-snapshot.ts) while the view is shown, and
 * redraws from each snapshot. Nothing is polled.
 *
 * Previews, names and peers are chosen by clients: they are inserted with
 * textContent only, so `<img onerror=…>` in a payload shows as text.
 */
import { colourOfCode, drawLatencyHistogram, drawRateChart } from './charts.js';

const EVENTS_PATH = '/events';
/** EventSource retries by itself after a network error, not after an HTTP error: then we do. */
const REOPEN_AFTER_MS = 3_000;
/** The chart spans the server's uptime in whole minutes, from one to five (the history kept). */
const CHART_MAX_MINUTES = 5;
const TRANSPORT_ORDER = ['tcp', 'unix', 'tls', 'ws', 'udp'];
/** Tokens of protocol.md §3-§4, to label the codes. */
const TOKENS = {
  100: 'OK',
  200: 'BYE',
  300: 'DRCV',
  400: 'BCMD',
  401: 'LONG',
  408: 'TOUT',
  500: 'FAIL',
  503: 'BUSY',
};

/**
 * The shape is defined by the server, in src/server/observe/dashboard-snapshot.ts.
 * @typedef {import('../src/server/observe/dashboard-snapshot.ts').DashboardSnapshot} DashboardSnapshot
 */

/** @param {string} code */
function codeName(code) {
  const token = TOKENS[/** @type {keyof typeof TOKENS} */ (code)];
  return token === undefined ? code : `${code} ${token}`;
}

/** @param {number} bytes */
export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 'B';
  for (const next of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${unit}`;
}

/** @param {number} ms */
function formatDuration(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s} s`;
  return `${s} s`;
}

/** @param {number} n */
const formatCount = (n) => n.toLocaleString('en-US');

/** @param {string | number} time */
function clockTime(time) {
  const date = new Date(time);
  return Number.isNaN(date.getTime())
    ? String(time)
    : date.toLocaleTimeString('en-GB', { hour12: false });
}

/**
 * The bucket holding a quantile of the requests, as "≤ X ms".
 * @param {{ boundsMs: readonly number[], counts: readonly number[], count: number }} latency
 * @param {number} q between 0 and 1
 */
function quantileBound(latency, q) {
  let seen = 0;
  for (let i = 0; i < latency.counts.length; i += 1) {
    seen += latency.counts[i] ?? 0;
    if (seen >= q * latency.count) {
      return i < latency.boundsMs.length
        ? `≤ ${latency.boundsMs[i]} ms`
        : `> ${latency.boundsMs.at(-1)} ms`;
    }
  }
  return '–';
}

/**
 * @param {Document} document
 * @returns {{ show(): void, hide(): void }}
 */
export function startDashboardView(document) {
  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const liveState = $('live-state');
  /** @type {EventSource | null} */
  let source = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let reopenTimer;
  /** @type {DashboardSnapshot | null} */
  let latest = null;

  /**
   * @param {string} id
   * @param {string} text
   */
  const setText = (id, text) => {
    $(id).textContent = text;
  };

  /** @param {DashboardSnapshot} snapshot */
  function renderConnections(snapshot) {
    const { current, total } = snapshot.connections;
    const names = [
      ...new Set([...TRANSPORT_ORDER, ...Object.keys(current), ...Object.keys(total)]),
    ].filter((name) => name === 'tcp' || name in current || name in total);
    const open = Object.values(current).reduce((sum, n) => sum + (n ?? 0), 0);
    setText('conn-open', formatCount(open));
    const rows = names.map((name) => {
      const row = document.createElement('tr');
      row.dataset.transport = name;
      const cells = [
        [name, 'name'],
        [formatCount(current[name] ?? 0), 'num open'],
        [formatCount(total[name] ?? 0), 'num total'],
      ];
      for (const [text, className] of cells) {
        const cell = document.createElement('td');
        cell.className = className;
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    });
    $('conn-table').replaceChildren(...rows);
    setText('mode', snapshot.mode);
    setText(
      'workers',
      `${snapshot.workers} ${snapshot.workers === 1 ? 'process' : 'processes'} serving`,
    );
    setText('uptime', formatDuration(snapshot.time - snapshot.startedAt));
  }

  /** @param {DashboardSnapshot} snapshot */
  function renderTraffic(snapshot) {
    const lastPoint = snapshot.history.at(-1);
    const rate = lastPoint ? Object.values(lastPoint.replies).reduce((a, b) => a + b, 0) : 0;
    setText('rps', formatCount(rate));
    setText('stored', formatCount(snapshot.payloadsStored));
    setText('bytes-in', formatBytes(snapshot.bytesReceived));
    setText('bytes-out', formatBytes(snapshot.bytesSent));
    const reasons = Object.entries(snapshot.connections.rejected).filter(([, n]) => n > 0);
    const rejected = reasons.reduce((sum, [, n]) => sum + n, 0);
    setText(
      'rejected',
      reasons.length === 0
        ? '0'
        : `${formatCount(rejected)} (${reasons.map(([why, n]) => `${why}: ${formatCount(n)}`).join(', ')})`,
    );

    const codes = Object.keys(snapshot.replies)
      .filter((code) => (snapshot.replies[code] ?? 0) > 0)
      .sort();
    $('replies-total').replaceChildren(
      ...(codes.length === 0
        ? [codeItem(null, 'none yet')]
        : codes.map((code) =>
            codeItem(code, `${codeName(code)}: ${formatCount(snapshot.replies[code] ?? 0)}`),
          )),
    );
  }

  /**
   * A list item with a colour swatch for the code.
   * @param {string | null} code
   * @param {string} text
   */
  function codeItem(code, text) {
    const item = document.createElement('li');
    if (code !== null) {
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.setAttribute('aria-hidden', 'true');
      // A CSSOM property, not a style attribute: allowed by the page's CSP.
      swatch.style.backgroundColor = colourOfCode(code);
      item.append(swatch);
    }
    item.append(text);
    return item;
  }

  /** @param {DashboardSnapshot} snapshot */
  function renderCharts(snapshot) {
    const uptimeMinutes = Math.ceil((snapshot.time - snapshot.startedAt) / 60_000);
    const minutes = Math.min(CHART_MAX_MINUTES, Math.max(1, uptimeMinutes));
    setText('chart-title', `Replies per second, by code — last ${minutes} min`);
    const codes = drawRateChart($('rate-chart'), snapshot.history, snapshot.time, minutes * 60_000);
    $('rate-legend').replaceChildren(...codes.map((code) => codeItem(code, codeName(code))));
    const { latency } = snapshot;
    setText(
      'latency-summary',
      latency.count === 0
        ? 'No request answered yet.'
        : `${formatCount(latency.count)} requests since start; mean ${(latency.sumMs / latency.count).toFixed(2)} ms; ` +
            `median ${quantileBound(latency, 0.5)}; 99th percentile ${quantileBound(latency, 0.99)}.`,
    );
    drawLatencyHistogram($('latency-chart'), latency);
  }

  /** @param {DashboardSnapshot} snapshot */
  function renderRecent(snapshot) {
    const rows = snapshot.recent.map((record) => {
      const row = document.createElement('tr');
      const preview = record.truncated ? `${record.preview}…` : record.preview;
      const cells = [
        [String(record.id), 'num id'],
        [clockTime(record.receivedAt), 'time'],
        [record.peer, 'peer'],
        [record.name ?? '—', 'name'],
        [formatBytes(record.size), 'num size'],
        [preview, 'preview'],
      ];
      for (const [text, className] of cells) {
        const cell = document.createElement('td');
        cell.className = className;
        cell.textContent = text;
        row.append(cell);
      }
      row.lastElementChild?.setAttribute('title', preview);
      return row;
    });
    $('recent').replaceChildren(...rows);
    $('recent-empty').hidden = rows.length > 0;
  }

  /** @param {DashboardSnapshot} snapshot */
  function render(snapshot) {
    latest = snapshot;
    renderConnections(snapshot);
    renderTraffic(snapshot);
    renderCharts(snapshot);
    renderRecent(snapshot);
    setText('live-time', `updated ${clockTime(snapshot.time)}`);
  }

  /** @param {MessageEvent} event */
  function onSnapshot(event) {
    let snapshot;
    try {
      snapshot = JSON.parse(event.data);
    } catch {
      liveState.textContent = 'received an unreadable update';
      return;
    }
    liveState.textContent = 'live';
    liveState.dataset.state = 'live';
    render(snapshot);
  }

  function open() {
    reopenTimer = undefined;
    const events = new EventSource(EVENTS_PATH);
    source = events;
    events.addEventListener('snapshot', onSnapshot);
    events.addEventListener('error', () => {
      if (source !== events) return;
      liveState.textContent = 'disconnected — retrying';
      liveState.dataset.state = 'retrying';
      if (events.readyState === EventSource.CLOSED) {
        source = null;
        reopenTimer = setTimeout(open, REOPEN_AFTER_MS);
      }
    });
  }

  function show() {
    if (source !== null || reopenTimer !== undefined) return;
    liveState.textContent = 'connecting…';
    liveState.dataset.state = 'connecting';
    open();
  }

  function hide() {
    clearTimeout(reopenTimer);
    reopenTimer = undefined;
    source?.close();
    source = null;
  }

  // The charts are drawn at the container's width: redraw when it changes.
  window.addEventListener('resize', () => {
    if (latest !== null && source !== null) renderCharts(latest);
  });

  return { show, hide };
}
