/**
 * docs/scaling.svg: throughput by setup (one server alone, HAProxy in front
 * of 1, 2, 3) for both loads, and under it what each session or
 * acknowledgement cost in CPU time, per component. Made with vega-lite like
 * bench/plot.ts: compiled to vega, rendered headless to SVG
 * (`renderer: 'none'`), no canvas, no browser.
 */
import { type TopLevelSpec } from 'vega-lite';
import { plotFrame, renderSvg } from './plot.js';
import { COMPONENTS, type Cell, LOADS, loadLabel, SETUPS, setupLabel } from './scaling-report.js';

export async function renderScalingSvg(
  cells: readonly Cell[],
  options: { readonly title: string; readonly subtitle: readonly string[] },
): Promise<string> {
  const setups = SETUPS.map(setupLabel);
  const loads = LOADS.map(loadLabel);
  const medians = cells.map((cell) => ({
    setup: setupLabel(cell.setup),
    load: loadLabel(cell.load),
    median: cell.median,
    // Two lines, so that neighbouring labels do not overlap.
    label: [Math.round(cell.median).toLocaleString('en-US'), `${cell.overDirect.toFixed(2)}×`],
  }));
  // CPU time per session or acknowledgement, stacked by component: what one
  // operation costs the machine, which other users' load changes far less
  // than it changes throughput.
  const ours = COMPONENTS.filter((component) => component !== 'other');
  const cpu = cells.flatMap((cell) =>
    ours.map((component, order) => ({
      setup: setupLabel(cell.setup),
      load: loadLabel(cell.load),
      component,
      order,
      micros: cell.microsPerOperation[component],
    })),
  );
  const x = {
    field: 'setup',
    type: 'nominal',
    sort: setups,
    axis: { labelAngle: -25, title: null },
  } as const;
  const column = {
    field: 'load',
    type: 'nominal',
    sort: loads,
    title: null,
    header: { labelFontSize: 12, labelFontWeight: 'bold' },
  } as const;
  const spec: TopLevelSpec = {
    ...plotFrame(options.title, options.subtitle),
    vconcat: [
      {
        data: { values: medians },
        facet: { column },
        spec: {
          width: 250,
          height: 200,
          layer: [
            {
              mark: { type: 'bar', color: '#4c78a8' },
              encoding: {
                x,
                y: {
                  field: 'median',
                  type: 'quantitative',
                  axis: { title: 'per second (median)' },
                },
              },
            },
            {
              mark: { type: 'text', dy: -16, fontSize: 10, baseline: 'bottom', lineHeight: 12 },
              encoding: {
                x,
                y: { field: 'median', type: 'quantitative' },
                text: { field: 'label' },
              },
            },
          ],
        },
        resolve: { scale: { y: 'independent' } },
      },
      {
        data: { values: cpu },
        facet: { column },
        resolve: { scale: { y: 'independent' } },
        spec: {
          width: 250,
          height: 170,
          layer: [
            {
              mark: { type: 'bar' },
              encoding: {
                x,
                y: {
                  field: 'micros',
                  type: 'quantitative',
                  stack: 'zero',
                  axis: { title: 'CPU µs per operation' },
                },
                color: {
                  field: 'component',
                  type: 'nominal',
                  sort: [...ours],
                  scale: { domain: [...ours], scheme: 'tableau10' },
                  legend: { title: 'CPU used by', orient: 'bottom', direction: 'horizontal' },
                },
                order: { field: 'order', type: 'quantitative' },
              },
            },
            {
              // The total on top of each bar.
              mark: { type: 'text', dy: -7, fontSize: 10 },
              encoding: {
                x,
                y: { aggregate: 'sum', field: 'micros', type: 'quantitative' },
                text: { aggregate: 'sum', field: 'micros', type: 'quantitative', format: ',.0f' },
              },
            },
          ],
        },
      },
    ],
    config: { font: 'sans-serif', view: { stroke: '#ccc' } },
  };
  return renderSvg(spec);
}
