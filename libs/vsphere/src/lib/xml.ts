import { XMLParser } from 'fast-xml-parser';

/**
 * Small helpers for building vSphere SOAP requests by hand (the request
 * shapes a backup product needs are few) and for reading the parsed
 * responses, whose elements are strings, objects or arrays depending on
 * attributes and repetition.
 */

export interface MoRef {
  type: string;
  value: string;
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** `<name>text</name>` with the text escaped. */
export function el(name: string, text: string | number | boolean): string {
  return `<${name}>${escapeXml(String(text))}</${name}>`;
}

/** `<name type="T">value</name>`: a managed object reference. */
export function moRefEl(name: string, ref: MoRef): string {
  return `<${name} type="${escapeXml(ref.type)}">${escapeXml(ref.value)}</${name}>`;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  // Keep prefixes: `xsi:type` and a moref's `type` can sit on one element.
  removeNSPrefix: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  textNodeName: '#text',
});

export type XmlNode = string | { [key: string]: unknown };

export function parseXml(text: string): Record<string, unknown> {
  return parser.parse(text) as Record<string, unknown>;
}

/** Child element by local name, ignoring any namespace prefix. */
export function child(node: unknown, name: string): unknown {
  if (!node || typeof node !== 'object') return undefined;
  const obj = node as Record<string, unknown>;
  if (name in obj) return obj[name];
  const key = Object.keys(obj).find((k) => !k.startsWith('@_') && k.slice(k.indexOf(':') + 1) === name);
  return key === undefined ? undefined : obj[key];
}

/** Repeated elements come back as an array, single ones as a value. */
export function arr(node: unknown): unknown[] {
  if (node === undefined || node === null) return [];
  return Array.isArray(node) ? node : [node];
}

export function text(node: unknown): string | undefined {
  if (node === undefined || node === null) return undefined;
  if (typeof node === 'string') return node;
  if (typeof node === 'object' && '#text' in (node as object)) return String((node as Record<string, unknown>)['#text']);
  if (typeof node === 'object') return '';
  return String(node);
}

export function attr(node: unknown, name: string): string | undefined {
  if (!node || typeof node !== 'object') return undefined;
  const v = (node as Record<string, unknown>)[`@_${name}`];
  return v === undefined ? undefined : String(v);
}

/** The xsi:type of an element (whatever prefix the server bound to xsi). */
export function xsiType(node: unknown): string | undefined {
  if (!node || typeof node !== 'object') return undefined;
  const key = Object.keys(node as object).find((k) => k.startsWith('@_') && k.endsWith(':type'));
  return key ? String((node as Record<string, unknown>)[key]).replace(/^.*:/, '') : undefined;
}

export function childText(node: unknown, name: string): string | undefined {
  return text(child(node, name));
}

export function childNumber(node: unknown, name: string): number | undefined {
  const t = childText(node, name);
  return t === undefined || t === '' ? undefined : Number(t);
}

export function childBool(node: unknown, name: string): boolean | undefined {
  const t = childText(node, name);
  return t === undefined ? undefined : t === 'true' || t === '1';
}

export function toMoRef(node: unknown): MoRef | undefined {
  const value = text(node);
  const type = attr(node, 'type');
  return value && type ? { type, value } : undefined;
}
