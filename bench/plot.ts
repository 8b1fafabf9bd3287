/**
 * The figure of docs/benchmarks.md: sessions per second by concurrency
 * model and number of clients, one panel per kind of work. Made with
 * vega-lite, compiled to vega and rendered to SVG headless (`renderer:
 * 'none'`, `toSVG()`): no canvas, no browser.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Solid for the first mode, then dash patterns ([dash, gap] in pixels). */
const DASHES: readonly (readonly [number, number])[] = [
  [1, 0],
  [8, 3],
  [2, 3],
  [6, 4],
  [1, 2],
];

export interface PlotPoint {
  /** The panel: a kind of work. */
  readonly work: string;
  /** The line: a concurrency model. */
  readonly mode: string;
  readonly clients: number;
  readonly sessionsPerSecond: number;
}

export async function renderModesSvg(
  points: readonly PlotPoint[],
  options: {
    readonly title: string;
    /** One entry per line. */
    readonly subtitle: readonly string[];
    readonly works: readonly string[];
    readonly modes: readonly string[];
  },
): Promise<string> {
  // A log scale has no place for 0: a cell that completed nothing is left out.
  const values = points
    .filter((point) => point.sessionsPerSecond > 0)
    .map((point) => ({ ...point }));
  const clients = [...new Set(points.map((point) => point.clients))].sort((a, b) => a - b);
  // Whole decades on the y axis: 1, 10, 100, 1k...
  const rates = values.map((point) => point.sessionsPerSecond);
  const low = Math.floor(Math.log10(Math.min(...rates, 10)));
  const high = Math.ceil(Math.log10(Math.max(...rates, 10)));
  const decades = Array.from({ length: high - low + 1 }, (_, index) => 10 ** (low + index));
  const legend = { title: '--mode', orient: 'bottom', direction: 'horizontal' } as const;
  const spec: TopLevelSpec = {
    ...plotFrame(options.title, options.subtitle),
    data: { values },
    facet: {
      column: {
        field: 'work',
        type: 'nominal',
        sort: [...options.works],
        title: null,
        header: { labelFontSize: 12, labelFontWeight: 'bold' },
      },
    },
    spec: {
      width: 230,
      height: 260,
      encoding: {
        x: {
          field: 'clients',
          type: 'quantitative',
          scale: { type: 'log', domain: [clients[0] ?? 1, clients.at(-1) ?? 100], nice: false },
          axis: { values: clients, format: 'd', title: 'clients (concurrent connections)' },
        },
        y: {
          field: 'sessionsPerSecond',
          type: 'quantitative',
          scale: { type: 'log', domain: [decades[0]!, decades.at(-1)!], nice: false },
          axis: { values: decades, format: '~s', title: 'sessions per second (log scale)' },
        },
        color: {
          field: 'mode',
          type: 'nominal',
          sort: [...options.modes],
          scale: { domain: [...options.modes], scheme: 'category10' },
          legend,
        },
      },
      layer: [
        {
          // Dashes, so that a line drawn over another (event loop and cluster often
          // coincide) still lets the one under it show.
          mark: { type: 'line', strokeWidth: 2 },
          encoding: {
            strokeDash: {
              field: 'mode',
              type: 'nominal',
              sort: [...options.modes],
              scale: {
                domain: [...options.modes],
                range: options.modes.map((_, index) => [...DASHES[index % DASHES.length]!]),
              },
              legend,
            },
          },
        },
        {
          mark: { type: 'point', filled: true, size: 45 },
          encoding: {
            shape: {
              field: 'mode',
              type: 'nominal',
              sort: [...options.modes],
              scale: { domain: [...options.modes] },
              legend,
            },
          },
        },
      ],
    },
    resolve: { scale: { y: 'shared' } },
    config: { font: 'sans-serif', view: { stroke: '#ccc' } },
  };
  return renderSvg(spec);
}

/** What every helo plot starts with: its title, subtitle lines, background and margin. */
export function plotFrame(title: string, subtitle: readonly string[]) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: title,
      subtitle: [...subtitle],
      offset: 14,
      anchor: 'start' as const,
      fontSize: 15,
      subtitleFontSize: 11,
      subtitleColor: '#555',
    },
    background: 'white',
    padding: 12,
  };
}

/** A Vega-Lite spec as SVG text, headless (no canvas, no browser). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
