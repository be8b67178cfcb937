import type { VSphereSession } from './session';
import { arr, child, childText, el, moRefEl, toMoRef, type MoRef } from './xml';

export interface ObjectContent {
  obj: MoRef;
  /** Property path -> parsed XML value (use the xml helpers to read it). */
  props: Record<string, unknown>;
}

export interface RetrieveSpec {
  type: string;
  pathSet: readonly string[];
  /** Objects to start from. */
  objects: readonly MoRef[];
  /** Set when `objects` are ContainerViews whose contents are wanted. */
  viaContainerView?: boolean;
}

function specXml(spec: RetrieveSpec): string {
  const propSet = '<propSet>' + el('type', spec.type) + el('all', false) + spec.pathSet.map((p) => el('pathSet', p)).join('') + '</propSet>';
  const objectSets = spec.objects
    .map((obj) =>
      spec.viaContainerView
        ? '<objectSet>' +
          moRefEl('obj', obj) +
          el('skip', true) +
          '<selectSet xsi:type="TraversalSpec">' +
          el('name', 'traverseView') +
          el('type', 'ContainerView') +
          el('path', 'view') +
          el('skip', false) +
          '</selectSet></objectSet>'
        : '<objectSet>' + moRefEl('obj', obj) + el('skip', false) + '</objectSet>',
    )
    .join('');
  return `<specSet>${propSet}${objectSets}</specSet>`;
}

function readObjects(rv: unknown, out: ObjectContent[]): string | undefined {
  for (const o of arr(child(rv, 'objects'))) {
    const obj = toMoRef(child(o, 'obj'));
    if (!obj) continue;
    const props: Record<string, unknown> = {};
    for (const p of arr(child(o, 'propSet'))) {
      const name = childText(p, 'name');
      if (name) props[name] = child(p, 'val');
    }
    out.push({ obj, props });
  }
  return childText(rv, 'token') || undefined;
}

/**
 * RetrievePropertiesEx, following ContinueRetrievePropertiesEx tokens until
 * the server has sent every object (vCenter pages large inventories).
 */
export async function retrieveProperties(session: VSphereSession, spec: RetrieveSpec, pageSize = 100): Promise<ObjectContent[]> {
  const pc = session.serviceContent.propertyCollector;
  const out: ObjectContent[] = [];
  const rv = await session.call('RetrievePropertiesEx', moRefEl('_this', pc) + specXml(spec) + `<options>${el('maxObjects', pageSize)}</options>`);
  let token = readObjects(rv, out);
  while (token) {
    const next = await session.call('ContinueRetrievePropertiesEx', moRefEl('_this', pc) + el('token', token));
    token = readObjects(next, out);
  }
  return out;
}

/** Properties of one object; NotFoundError if it does not exist. */
export async function retrieveOne(session: VSphereSession, obj: MoRef, pathSet: readonly string[]): Promise<Record<string, unknown>> {
  const res = await retrieveProperties(session, { type: obj.type, pathSet, objects: [obj] });
  return res[0]?.props ?? {};
}

/** A ContainerView of all objects of `type` under `container` (recursive; default: the root folder). */
export async function withContainerView<T>(session: VSphereSession, type: string, container: MoRef | undefined, use: (view: MoRef) => Promise<T>): Promise<T> {
  const sc = session.serviceContent;
  const rv = await session.call(
    'CreateContainerView',
    moRefEl('_this', sc.viewManager) + moRefEl('container', container ?? sc.rootFolder) + el('type', type) + el('recursive', true),
  );
  const view = toMoRef(rv);
  if (!view) throw new Error('CreateContainerView returned no view');
  try {
    return await use(view);
  } finally {
    await session.call('DestroyView', moRefEl('_this', view)).catch(() => undefined);
  }
}
