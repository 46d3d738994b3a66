/**
 * The gym app's development dashboard. Class attendance comes from a live subscription
 * (`tributary/client`, the same client a deployed app's pages use); the engine's deliveries,
 * dead letters and counters come from the dev server's `/events` stream. Nothing polls.
 */
import { createLiveClient, type LiveUpdate, type LiveViewStates } from 'tributary/client';
import type * as views from '../../functions/views.ts';
import type { ClassAttendance } from '../../functions/views.ts';

interface DashboardConfig {
  readonly app: string;
  readonly views: readonly string[];
  readonly live?: { readonly url: string; readonly token?: string };
}

type FeedEvent =
  | { type: 'delivery'; at: number; function: string; trigger?: string; view?: string; changes: number; keys: string[]; ok: boolean; error?: string; durationMs: number }
  | { type: 'deadLetter'; at: number; line: string }
  | { type: 'stats'; at: number; eventsPerSecond: number; views: { name: string; lag: number; changesPerSecond: number }[] };

/** Feed lines kept on the page. */
const MAX_FEED_LINES = 40;
/** Samples in each chart: a minute of the once-a-second stats. */
const CHART_SAMPLES = 60;

const $ = <E extends HTMLElement>(id: string) => document.getElementById(id) as E;

function cell(text: string, attributes: Record<string, string> = {}): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  for (const [name, value] of Object.entries(attributes)) td.setAttribute(name, value);
  return td;
}

function time(at: number): string {
  return new Date(at).toISOString().slice(11, 19);
}

// --- Class attendance, from the live subscription ------------------------------------------

const classes = new Map<string, { row: HTMLTableRowElement; version: number }>();

function showClass(update: LiveUpdate<ClassAttendance>): void {
  const tbody = $('classes');
  let entry = classes.get(update.key);
  if (update.state === undefined) {
    entry?.row.remove();
    classes.delete(update.key);
    $('classes-empty').hidden = classes.size > 0;
    return;
  }
  if (entry === undefined) {
    const row = document.createElement('tr');
    row.dataset.class = update.key;
    entry = { row, version: 0 };
    classes.set(update.key, entry);
    // Rows in class order.
    const after = [...classes.keys()].sort().find((key) => key > update.key);
    tbody.insertBefore(row, after === undefined ? null : (classes.get(after)?.row ?? null));
  }
  const { booked, capacity, waitlist, classStartsAt } = update.state;
  const bar = document.createElement('div');
  bar.className = 'bar';
  const fill = document.createElement('span');
  fill.style.width = `${Math.min(100, (booked / Math.max(1, capacity)) * 100)}%`;
  if (booked >= capacity) fill.className = 'full';
  bar.append(fill);
  const barCell = document.createElement('td');
  barCell.append(bar);
  entry.row.replaceChildren(
    cell(update.key),
    cell(classStartsAt.slice(0, 16).replace('T', ' ')),
    cell(`${booked} / ${capacity}`, { 'data-field': 'booked', 'data-booked': String(booked) }),
    barCell,
    cell(String(waitlist.length), { 'data-field': 'waitlist' }),
    cell(`v${update.version}`, { 'data-field': 'version' }),
  );
  entry.version = update.version;
  if (update.source === 'change') {
    entry.row.classList.add('flash');
    requestAnimationFrame(() => requestAnimationFrame(() => entry?.row.classList.remove('flash')));
  }
  $('classes-empty').hidden = true;
}

// --- The engine feed, from the dev server's /events stream ----------------------------------

const history = new Map<string, number[]>();
const throughput: number[] = [];

function push(samples: number[], value: number): void {
  samples.push(value);
  if (samples.length > CHART_SAMPLES) samples.shift();
}

/** A sparkline of `samples` (an inline SVG, no chart library). */
function sparkline(samples: readonly number[], width = 160, height = 24): SVGSVGElement {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  const max = Math.max(1, ...samples);
  const step = width / Math.max(1, CHART_SAMPLES - 1);
  const offset = CHART_SAMPLES - samples.length;
  const points = samples.map((v, i) => `${((offset + i) * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`);
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', points.join(' '));
  svg.append(line);
  return svg;
}

function addLine(list: HTMLElement, text: string, failed: boolean): void {
  const li = document.createElement('li');
  li.textContent = text;
  if (failed) li.className = 'failed';
  list.prepend(li);
  while (list.children.length > MAX_FEED_LINES) list.lastElementChild?.remove();
}

function onFeed(event: FeedEvent): void {
  switch (event.type) {
    case 'delivery': {
      const what = event.trigger === undefined ? event.function : `${event.trigger} → ${event.function}`;
      const keys = event.keys.length > 0 ? ` [${event.keys.join(', ')}${event.changes > event.keys.length ? ', …' : ''}]` : '';
      addLine($('deliveries'), `${time(event.at)} ${what}: ${event.changes} change${event.changes === 1 ? '' : 's'}${keys} ${event.ok ? 'ok' : `failed: ${event.error ?? ''}`} (${event.durationMs} ms)`, !event.ok);
      return;
    }
    case 'deadLetter':
      addLine($('dead-letters'), event.line, true);
      $('dead-letters-empty').hidden = true;
      return;
    case 'stats': {
      push(throughput, event.eventsPerSecond);
      const summary = $('throughput');
      summary.replaceChildren(document.createTextNode(`events folded: ${event.eventsPerSecond.toFixed(0)}/s`), sparkline(throughput, 320, 32));
      const rows = event.views.map((view) => {
        const samples = history.get(view.name) ?? [];
        history.set(view.name, samples);
        push(samples, view.lag);
        const row = document.createElement('tr');
        row.dataset.view = view.name;
        const chart = document.createElement('td');
        chart.append(sparkline(samples, 96, 24));
        row.append(cell(view.name), cell(String(view.lag), { 'data-field': 'lag' }), cell(view.changesPerSecond.toFixed(1)), chart);
        return row;
      });
      $('views').replaceChildren(...rows);
      return;
    }
  }
}

// --- Start ----------------------------------------------------------------------------------

async function start(): Promise<void> {
  const config = (await (await fetch('/config.json')).json()) as DashboardConfig;
  document.title = `Tributary dev — ${config.app}`;
  const status = $('status');
  if (config.live === undefined) {
    status.textContent = 'no live API';
  } else {
    const live = createLiveClient<LiveViewStates<typeof views>>({
      url: config.live.url,
      ...(config.live.token === undefined ? {} : { token: config.live.token }),
      onStatus: (next) => {
        status.textContent = next;
        status.dataset.status = next;
      },
      onError: (error) => addLine($('dead-letters'), `live: ${error.message}`, true),
    });
    live.subscribe('classAttendance', { prefix: 'class-' }, showClass, {
      onError: (error) => {
        status.textContent = `refused: ${error.context.serverCode ?? error.code}`;
      },
    });
  }
  const feed = new EventSource('/events');
  feed.onmessage = (message) => onFeed(JSON.parse(message.data as string) as FeedEvent);
}

void start();
