/**
 * The dashboard's two charts, drawn as plain SVG elements: replies per
 * second by code (stacked areas over the last minutes) and the latency
 * histogram (one horizontal bar per bucket, which stays readable on a
 * phone). No chart library: the page loads nothing it does not serve.
 *
 * Text from the server only ever goes in through textContent.
 */

const SVG = 'http://www.w3.org/2000/svg';

/** Fixed colours for the codes of protocol.md §3-§4; others are grey. */
const CODE_COLOURS = {
  100: '#2f7d32',
  200: '#1565c0',
  300: '#00897b',
  400: '#ef6c00',
  401: '#f9a825',
  408: '#8d6e63',
  500: '#c62828',
  503: '#6a1b9a',
};
const OTHER_COLOUR = '#757575';

/** @param {string} code */
export function colourOfCode(code) {
  return CODE_COLOURS[/** @type {keyof typeof CODE_COLOURS} */ (code)] ?? OTHER_COLOUR;
}

/**
 * @param {string} name
 * @param {Record<string, string | number>} [attributes]
 * @returns {SVGElement}
 */
function svg(name, attributes = {}) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

/**
 * @param {SVGElement} parent
 * @param {number} x
 * @param {number} y
 * @param {string} text
 * @param {string} [anchor]
 */
function label(parent, x, y, text, anchor = 'start') {
  const element = svg('text', { x, y, 'text-anchor': anchor, class: 'axis-label' });
  element.textContent = text;
  parent.append(element);
}

/** A round axis maximum at or above `value`: 1, 2, 5, 10, 20, 50… */
function niceCeiling(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** @param {number} n */
function compact(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
  return String(n);
}

/**
 * @typedef {{ t: number, replies: Record<string, number> }} HistoryPoint
 */

/**
 * Draws replies per second by code as stacked areas; their top edge is the
 * request rate (one reply per request).
 * @param {HTMLElement} container
 * @param {readonly HistoryPoint[]} history oldest first, one point a second
 * @param {number} now ms since the epoch: the right edge of the chart
 * @param {number} windowMs how much time the chart spans
 * @returns {string[]} the codes drawn, for the legend
 */
export function drawRateChart(container, history, now, windowMs) {
  const width = Math.max(280, container.clientWidth || 600);
  const height = 180;
  const left = 44;
  const right = 8;
  const top = 8;
  const bottom = 22;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;

  const codes = [...new Set(history.flatMap((point) => Object.keys(point.replies)))].sort();
  const totals = history.map((point) =>
    codes.reduce((sum, code) => sum + (point.replies[code] ?? 0), 0),
  );
  const yMax = niceCeiling(Math.max(0, ...totals));
  const start = now - windowMs;
  const x = (/** @type {number} */ t) => left + ((t - start) / windowMs) * plotWidth;
  const y = (/** @type {number} */ value) => top + plotHeight - (value / yMax) * plotHeight;

  const peak = Math.max(0, ...totals);
  const last = totals.at(-1) ?? 0;
  const root = svg('svg', {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `Replies per second over the last ${Math.round(windowMs / 1000)} seconds: now ${last}, peak ${peak}.`,
  });

  for (const fraction of [0, 0.5, 1]) {
    const value = yMax * fraction;
    root.append(
      svg('line', { x1: left, x2: width - right, y1: y(value), y2: y(value), class: 'grid' }),
    );
    label(root, left - 6, y(value) + 4, compact(value), 'end');
  }
  // A tick every 15 s, 30 s or minute, as the window allows; fewer on a narrow chart.
  const windowSeconds = Math.round(windowMs / 1000);
  let stepSeconds = windowSeconds <= 60 ? 15 : windowSeconds <= 120 ? 30 : 60;
  while ((plotWidth * stepSeconds) / windowSeconds < 56) stepSeconds *= 2;
  for (let s = 0; s <= windowSeconds; s += stepSeconds) {
    const text = s === 0 ? 'now' : s % 60 === 0 ? `−${s / 60} min` : `−${s} s`;
    const anchor = s === 0 ? 'end' : 'middle';
    label(root, x(now - s * 1000), height - 6, text, anchor);
  }

  const visible = history.filter((point) => point.t >= start);
  if (visible.length > 0) {
    // Each code's band sits on the ones below it: lower holds its bottom edge.
    const lower = visible.map(() => 0);
    for (const code of codes) {
      const upper = visible.map((point, i) => (lower[i] ?? 0) + (point.replies[code] ?? 0));
      const topEdge = visible.map((point, i) => `${x(point.t)},${y(upper[i] ?? 0)}`);
      const bottomEdge = visible.map((point, i) => `${x(point.t)},${y(lower[i] ?? 0)}`).reverse();
      const band = svg('polygon', {
        points: [...topEdge, ...bottomEdge].join(' '),
        fill: colourOfCode(code),
        'fill-opacity': 0.75,
      });
      const title = svg('title');
      title.textContent = code;
      band.append(title);
      root.append(band);
      upper.forEach((value, i) => (lower[i] = value));
    }
  }
  root.append(
    svg('line', { x1: left, x2: left, y1: top, y2: top + plotHeight, class: 'axis' }),
    svg('line', {
      x1: left,
      x2: width - right,
      y1: top + plotHeight,
      y2: top + plotHeight,
      class: 'axis',
    }),
  );
  container.replaceChildren(root);
  return codes;
}

/** `≤ 0.5 ms`, `≤ 10 ms`, `> 1000 ms` */
function bucketName(/** @type {readonly number[]} */ bounds, /** @type {number} */ i) {
  return i < bounds.length ? `≤ ${bounds[i]} ms` : `> ${bounds.at(-1) ?? 0} ms`;
}

/**
 * Draws the latency histogram, one bar per bucket, from the first bucket
 * with requests to the last (with one empty bucket either side, for scale).
 * @param {HTMLElement} container
 * @param {{ boundsMs: readonly number[], counts: readonly number[] }} latency
 */
export function drawLatencyHistogram(container, latency) {
  const { boundsMs, counts } = latency;
  const used = counts.flatMap((count, i) => (count > 0 ? [i] : []));
  const first = Math.max(0, (used[0] ?? 0) - 1);
  const last = Math.min(counts.length - 1, (used.at(-1) ?? counts.length - 1) + 1);
  const rows = [];
  for (let i = first; i <= last; i += 1)
    rows.push({ name: bucketName(boundsMs, i), count: counts[i] ?? 0 });

  const width = Math.max(280, container.clientWidth || 600);
  const rowHeight = 20;
  const labelWidth = 84;
  const countWidth = 56;
  const height = rows.length * rowHeight + 4;
  const barSpace = width - labelWidth - countWidth;
  const max = Math.max(1, ...rows.map((row) => row.count));
  const root = svg('svg', {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `Latency histogram: ${rows.map((row) => `${row.name}: ${row.count}`).join(', ')}.`,
  });
  rows.forEach((row, i) => {
    const yTop = i * rowHeight + 2;
    label(root, labelWidth - 8, yTop + 14, row.name, 'end');
    const barWidth = row.count === 0 ? 0 : Math.max(2, (row.count / max) * barSpace);
    root.append(
      svg('rect', {
        x: labelWidth,
        y: yTop + 2,
        width: barWidth,
        height: rowHeight - 6,
        class: 'bar',
      }),
    );
    label(root, labelWidth + barWidth + 6, yTop + 14, compact(row.count));
  });
  container.replaceChildren(root);
}
