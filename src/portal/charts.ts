/**
 * Server-rendered SVG charts for the portal: no script, no inline style (the CSP allows
 * neither), colours from /portal.css classes. Each chart is an `img` with a title and a
 * description that states its numbers, and sits next to a table with the same numbers, so
 * nothing is only in the picture.
 */
import { esc } from './escape.js';

const W = 640;
const H = 180;
const PAD = { left: 56, right: 8, top: 12, bottom: 24 };
const PLOT_W = W - PAD.left - PAD.right;
const PLOT_H = H - PAD.top - PAD.bottom;

const fmt = (v: number): string => v.toLocaleString('en-US');
const r1 = (v: number): string => (Math.round(v * 10) / 10).toString();

function frame(id: string, title: string, desc: string, inner: string, max: number): string {
  return `<svg id="${esc(id)}" class="chart" role="img" aria-labelledby="${esc(id)}-t ${esc(id)}-d" viewBox="0 0 ${W} ${H}" width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">
<title id="${esc(id)}-t">${esc(title)}</title>
<desc id="${esc(id)}-d">${esc(desc)}</desc>
<line class="axis" x1="${PAD.left}" y1="${PAD.top + PLOT_H}" x2="${W - PAD.right}" y2="${PAD.top + PLOT_H}"/>
<line class="axis" x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${PAD.top + PLOT_H}"/>
<text class="tick" x="${PAD.left - 4}" y="${PAD.top + 4}" text-anchor="end">${esc(fmt(max))}</text>
<text class="tick" x="${PAD.left - 4}" y="${PAD.top + PLOT_H}" text-anchor="end">0</text>
${inner}
</svg>`;
}

function xLabels(labels: readonly string[], xOf: (i: number) => number): string {
  if (labels.length === 0) return '';
  const last = labels.length - 1;
  const y = H - 6;
  const at = (i: number, anchor: string): string =>
    `<text class="tick" x="${r1(xOf(i))}" y="${y}" text-anchor="${anchor}">${esc(labels[i] ?? '')}</text>`;
  return last === 0 ? at(0, 'start') : `${at(0, 'start')}\n${at(last, 'end')}`;
}

/** One bar per point (e.g. tokens per day); an empty series draws an empty frame. */
export function barChart(id: string, title: string, unit: string, points: readonly { label: string; value: number }[]): string {
  const max = Math.max(1, ...points.map((p) => p.value));
  const slot = PLOT_W / Math.max(1, points.length);
  const barW = Math.max(1, slot * 0.8);
  const bars = points.map((p, i) => {
    const h = (p.value / max) * PLOT_H;
    const x = PAD.left + i * slot + (slot - barW) / 2;
    return `<rect class="bar" x="${r1(x)}" y="${r1(PAD.top + PLOT_H - h)}" width="${r1(barW)}" height="${r1(h)}"><title>${esc(`${p.label}: ${fmt(p.value)} ${unit}`)}</title></rect>`;
  });
  const total = points.reduce((s, p) => s + p.value, 0);
  const desc = `${fmt(total)} ${unit} over ${points.length} day(s); the most on one day: ${fmt(max === 1 && total === 0 ? 0 : max)}.`;
  return frame(id, title, desc, [...bars, xLabels(points.map((p) => p.label), (i) => PAD.left + i * slot + (i === points.length - 1 ? slot : 0))].join('\n'), max);
}

/**
 * A budget's burn-down: the tokens used so far, day by day (`cumulative`, the days elapsed),
 * against the limit and an even pace over the whole period (`days`).
 */
export function burnDownChart(id: string, title: string, days: readonly string[], cumulative: readonly number[], limit: number): string {
  const max = Math.max(limit, ...cumulative, 1);
  const step = PLOT_W / Math.max(1, days.length);
  const xOf = (i: number): number => PAD.left + (i + 1) * step;
  const yOf = (v: number): number => PAD.top + PLOT_H - (v / max) * PLOT_H;
  const used = [`${PAD.left},${yOf(0)}`, ...cumulative.map((v, i) => `${r1(xOf(i))},${r1(yOf(v))}`)].join(' ');
  const inner = [
    `<line class="limit" x1="${PAD.left}" y1="${r1(yOf(limit))}" x2="${W - PAD.right}" y2="${r1(yOf(limit))}"><title>${esc(`limit: ${fmt(limit)} tokens`)}</title></line>`,
    `<line class="pace" x1="${PAD.left}" y1="${r1(yOf(0))}" x2="${r1(xOf(days.length - 1))}" y2="${r1(yOf(limit))}"><title>even pace to the limit</title></line>`,
    `<polyline class="used" points="${used}"/>`,
    ...cumulative.map((v, i) => `<circle class="used" cx="${r1(xOf(i))}" cy="${r1(yOf(v))}" r="3"><title>${esc(`${days[i] ?? ''}: ${fmt(v)} tokens used so far`)}</title></circle>`),
    xLabels(days, (i) => (i === 0 ? PAD.left : xOf(i))),
  ];
  const so = cumulative[cumulative.length - 1] ?? 0;
  const desc = `${fmt(so)} of ${fmt(limit)} tokens used after ${cumulative.length} of ${days.length} day(s).`;
  return frame(id, title, desc, inner.join('\n'), max);
}
