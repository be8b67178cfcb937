import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format';
import { parsePrometheusText, sampleSum } from '@sendense/metrics/testing';

/**
 * A scrape of one /metrics endpoint, parsed by parse-prometheus-text-format
 * (a port of the Prometheus Python client's parser, prom2json's output) and
 * by the strict reader of libs/metrics (which throws on any line outside the
 * text format), so a test sees the families as a Prometheus server would.
 * parse-prometheus-text-format folds a histogram with labels (every family
 * here has the service label) into one label-less sample without _count and
 * _sum, so histogram counts are read from the strict reader.
 */
export interface Scrape {
  families: Map<string, PromFamily>;
  /** Sum of the samples of a counter or gauge whose labels include `labels`; undefined when none matches. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** A histogram's _count summed over the series whose labels include `labels`. */
  count(name: string, labels?: Record<string, string>): number;
}

export async function scrape(url: string, apiKey?: string): Promise<Scrape> {
  const res = await fetch(url, apiKey ? { headers: { authorization: `Bearer ${apiKey}` } } : {});
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${await res.text()}`);
  if (!(res.headers.get('content-type') ?? '').startsWith('text/plain'))
    throw new Error(`GET ${url}: content-type ${res.headers.get('content-type')}, not the text format`);
  const text = await res.text();
  const strict = parsePrometheusText(text);
  const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
  const matching = (name: string, labels: Record<string, string>) =>
    (families.get(name)?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  const sum = (xs: (string | undefined)[]) => (xs.length === 0 ? undefined : xs.reduce((n, x) => n + Number(x), 0));
  return {
    families,
    value: (name, labels = {}) => sum(matching(name, labels).map((m) => m.value)),
    count: (name, labels = {}) => sampleSum(strict, `${name}_count`, labels),
  };
}
