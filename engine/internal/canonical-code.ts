/**
 * A function's code in a form that does not depend on the tool that compiled it, for the
 * fingerprint of a view's definition (lifecycle.ts).
 *
 * The same TypeScript source reaches the engine through different transpilers: vitest's
 * transform in tests, tsx for `engine/main.ts` and `tributary dev`, an esbuild bundle in the
 * engine image. Each prints the function differently. The text is therefore parsed (acorn) and
 * the syntax tree printed back in a canonical form, in which:
 * - whitespace, comments, parentheses, semicolons, trailing commas, quote style and number
 *   spelling are gone (the tree holds none of them; literals are compared by value);
 * - the function's own names (parameters, locals, inner functions, catch parameters) are
 *   numbered in order of appearance, so renaming a local is not a change, and neither is a
 *   bundler renaming one;
 * - a name from outside the function (an imported helper, a module constant) is compared by the
 *   last part of how it is reached: `sum`, `helpers.sum`, `__vite_ssr_import_0__.sum` (vitest)
 *   and `import_sdk.sum` (a CommonJS transform) all read `sum`, without a numeric suffix a bundle
 *   adds on a collision (`sum2`); globals (`Math.max`, `JSON.stringify`) are kept whole;
 * - `(0, f)(x)` reads `f(x)`, and `__name(f, "f")` (esbuild's keepNames) reads `f`.
 * What stays: the shape of the code, every operator, property name and literal value, and the
 * names of the helpers and globals it uses. A real change of a reducer (another operator,
 * field, constant or helper) changes the canonical form.
 *
 * Not neutral:
 * - a helper imported under another name (`import { sum as total }`) or as a default import
 *   reads `total` where the import is kept (tsx) and `sum` where it is rewritten (vitest,
 *   bundles): import helpers under their own names;
 * - minification that rewrites syntax (esbuild's `--minify-syntax`: `void 0` for `undefined`,
 *   `!0` for `true`, `if` into `?:`) or renames the names of a bundle (`--minify-identifiers`).
 *   Whitespace minification alone is neutral.
 */
import { parse, type Node } from 'acorn';

/** The numeric suffix esbuild adds to a name that collides with another module's. */
const COLLISION_SUFFIX = /(?<=[A-Za-z_$])\d+$/;

type AnyNode = Node & Record<string, any>;

function parseFunction(text: string): AnyNode | undefined {
  // A function expression or arrow parses as an expression; a method (`reduce(s, e) { … }`,
  // `async key(e) { … }`) only inside an object literal.
  // Module code first (what a bundle is); sloppy-mode code (`with`, legacy octals) as a script.
  for (const sourceType of ['module', 'script'] as const) {
    for (const wrapped of [`(${text}\n)`, `({${text}\n})`]) {
      try {
        return parse(wrapped, { ecmaVersion: 'latest', sourceType }) as AnyNode;
      } catch {
        // try the next form
      }
    }
  }
  return undefined;
}

/** Names bound anywhere inside the function: its parameters, declarations and their patterns. */
function boundNames(root: AnyNode): Set<string> {
  const names = new Set<string>();
  const pattern = (node: AnyNode | null | undefined): void => {
    if (node === null || node === undefined) return;
    switch (node.type) {
      case 'Identifier':
        names.add(node.name);
        return;
      case 'ObjectPattern':
        for (const p of node.properties) pattern(p.type === 'RestElement' ? p.argument : p.value);
        return;
      case 'ArrayPattern':
        for (const e of node.elements) pattern(e);
        return;
      case 'RestElement':
        pattern(node.argument);
        return;
      case 'AssignmentPattern':
        pattern(node.left);
        return;
    }
  };
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const child of node) visit(child);
      return;
    }
    const n = node as AnyNode;
    if (typeof n.type !== 'string') return;
    if (n.type === 'FunctionExpression' || n.type === 'FunctionDeclaration' || n.type === 'ArrowFunctionExpression') {
      if (n.id) pattern(n.id);
      for (const p of n.params) pattern(p);
    } else if (n.type === 'VariableDeclarator') {
      pattern(n.id);
    } else if (n.type === 'CatchClause') {
      pattern(n.param);
    } else if (n.type === 'ClassDeclaration' || n.type === 'ClassExpression') {
      if (n.id) pattern(n.id);
    }
    for (const [key, value] of Object.entries(n)) {
      if (key !== 'type') visit(value);
    }
  };
  visit(root);
  return names;
}

/** What a tree holds of how the code was written, not what it says. */
const POSITION_KEYS = new Set(['start', 'end', 'loc', 'range', 'raw', 'shorthand', 'extra', 'sourceType']);

/**
 * The canonical form of a function's source text (see the module header), or undefined when the
 * text does not parse (a native function, say).
 *
 * @example
 * canonicalFunctionText('(s, e) => ({ n: s.n + (0, import_sdk.total)(e.items) })') ===
 *   canonicalFunctionText('(state, event) => ({ n: state.n + total(event.items), })'); // true
 */
export function canonicalFunctionText(text: string): string | undefined {
  const program = parseFunction(text);
  if (program === undefined) return undefined;
  const bound = boundNames(program);
  const numbered = new Map<string, string>();
  const nameOf = (name: string): string => {
    if (bound.has(name)) {
      let id = numbered.get(name);
      if (id === undefined) {
        id = `$${numbered.size}`;
        numbered.set(name, id);
      }
      return id;
    }
    return name in globalThis ? name : name.replace(COLLISION_SUFFIX, '');
  };
  const isFree = (node: AnyNode): boolean => node.type === 'Identifier' && !bound.has(node.name);
  /** A name from outside the function that is no global: an import, a namespace, a module's own. */
  const isModuleName = (node: AnyNode): boolean => isFree(node) && !(node.name in globalThis);

  /** Undoes a bundler's rewrite of an imported name; returns the node it stands for. */
  const unwrap = (node: AnyNode): AnyNode => {
    // helpers.sum, __vite_ssr_import_0__.sum, import_sdk.sum, __vite_ssr_import_0__.default.sum
    if (node.type === 'MemberExpression' && !node.computed && node.property.type === 'Identifier') {
      const object = unwrap(node.object);
      if (isModuleName(object)) return { type: 'Identifier', name: node.property.name } as unknown as AnyNode;
    }
    // (0, f)
    if (node.type === 'SequenceExpression' && node.expressions.length === 2 && node.expressions[0].type === 'Literal' && node.expressions[0].value === 0) {
      return unwrap(node.expressions[1]);
    }
    // __name(f, "f")
    if (isNameCall(node)) return unwrap(node.arguments[0]);
    return node;
  };

  const isNameCall = (node: AnyNode): boolean =>
    node.type === 'CallExpression' &&
    isFree(node.callee) &&
    node.callee.name === '__name' &&
    node.arguments.length === 2 &&
    node.arguments[1].type === 'Literal' &&
    typeof node.arguments[1].value === 'string';
  /** `__name(tag, "tag");` after a function declaration: keepNames adds it, the source has none. */
  const isNameStatement = (node: unknown): boolean =>
    node !== null && typeof node === 'object' && (node as AnyNode).type === 'ExpressionStatement' && isNameCall((node as AnyNode).expression);

  /** Prints a node: its type and its children in key order, names and literals as said above. */
  const print = (value: unknown, key?: string, parent?: AnyNode): string => {
    if (value === null || value === undefined) return '_';
    if (Array.isArray(value)) return `[${value.filter((v) => !isNameStatement(v)).map((v) => print(v)).join(',')}]`;
    if (typeof value !== 'object') return JSON.stringify(value);
    const node = unwrap(value as AnyNode);
    if (typeof node.type !== 'string') {
      return `{${Object.entries(node)
        .filter(([k]) => !POSITION_KEYS.has(k))
        .map(([k, v]) => `${k}:${print(v)}`)
        .join(',')}}`;
    }
    switch (node.type) {
      case 'Identifier': {
        // A property name is part of the code's meaning; a variable's name is not (when bound).
        const isPropertyName =
          parent !== undefined &&
          ((key === 'property' && parent.type === 'MemberExpression' && !parent.computed) ||
            (key === 'key' && (parent.type === 'Property' || parent.type === 'MethodDefinition' || parent.type === 'PropertyDefinition') && !parent.computed));
        return `#${isPropertyName ? node.name : nameOf(node.name)}`;
      }
      case 'Literal': {
        if (node.regex !== undefined) return `/${node.regex.pattern}/${node.regex.flags}`;
        if (node.bigint !== undefined) return `${node.bigint}n`;
        // A property key written as a string is the same key as an identifier.
        if (key === 'key' && parent !== undefined && !parent.computed && (typeof node.value === 'string' || typeof node.value === 'number')) return `#${String(node.value)}`;
        return typeof node.value === 'number' ? `num:${String(node.value)}` : JSON.stringify(node.value);
      }
      case 'TemplateElement':
        return JSON.stringify(node.value?.cooked ?? node.value?.raw);
      case 'ExpressionStatement':
        // `directive` holds a string's raw text: its value is printed from the expression.
        return `ExpressionStatement(${print(node.expression, 'expression', node)})`;
      default: {
        const parts: string[] = [];
        for (const k of Object.keys(node).sort()) {
          if (k === 'type' || POSITION_KEYS.has(k)) continue;
          parts.push(`${k}:${print(node[k], k, node)}`);
        }
        return `${node.type}(${parts.join(',')})`;
      }
    }
  };
  return print(program);
}
