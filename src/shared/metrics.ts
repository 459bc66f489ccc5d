/**
 * A small Prometheus registry (text exposition format 0.0.4). Written by hand because the
 * few metric types Tessera needs fit in one file and keep the hot path allocation-free.
 */
type Labels = Readonly<Record<string, string>>;

const NEEDS_ESCAPE = /[\\\n"]/;

/** Label value escaping of the text format: backslash, newline and double quote. */
function escapeLabel(v: string): string {
  return NEEDS_ESCAPE.test(v) ? v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"') : v;
}

/** The series key (sorted `k="v"` pairs); on every request path, so one pass and no regex work for plain values. */
function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  const keys = Object.keys(labels);
  if (keys.length > 1) keys.sort();
  let s = '';
  for (const k of keys) s += `${s ? ',' : ''}${k}="${escapeLabel(String(labels[k]))}"`;
  return s;
}

interface Metric {
  readonly name: string;
  readonly help: string;
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${v}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  private readonly values = new Map<string, number>();
  private collector: (() => number | Promise<number>) | undefined;
  private labelledCollector: (() => Promise<readonly { readonly labels: Labels; readonly value: number }[]>) | undefined;
  constructor(readonly name: string, readonly help: string) {}
  set(value: number, labels?: Labels): void {
    this.values.set(labelKey(labels), value);
  }
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  /** Compute the (unlabelled) value at scrape time. */
  collect(fn: () => number | Promise<number>): void {
    this.collector = fn;
  }
  /** Compute labelled values at scrape time (each series is set; series not returned keep their value). */
  collectLabelled(fn: () => Promise<readonly { readonly labels: Labels; readonly value: number }[]>): void {
    this.labelledCollector = fn;
  }
  async refresh(): Promise<void> {
    if (this.collector) this.set(await this.collector());
    if (this.labelledCollector) for (const { labels, value } of await this.labelledCollector()) this.set(value, labels);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${v}`);
    return lines.join('\n');
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]) {}
  observe(value: number, labels?: Labels): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : '';
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{${sep}le="${b}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ''} ${s.sum}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`);
    }
    return lines.join('\n');
  }
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();
  counter(name: string, help: string): Counter {
    return this.register(name, () => new Counter(name, help)) as Counter;
  }
  gauge(name: string, help: string): Gauge {
    return this.register(name, () => new Gauge(name, help)) as Gauge;
  }
  histogram(name: string, help: string, buckets?: readonly number[]): Histogram {
    return this.register(name, () => new Histogram(name, help, buckets)) as Histogram;
  }
  private register(name: string, make: () => Metric): Metric {
    const existing = this.metrics.get(name);
    if (existing) return existing;
    const m = make();
    this.metrics.set(name, m);
    return m;
  }
  async render(): Promise<string> {
    for (const m of this.metrics.values()) if (m instanceof Gauge) await m.refresh();
    return `${[...this.metrics.values()].map((m) => m.render()).join('\n')}\n`;
  }
}
