/**
 * The canonical form of a view's functions (engine/internal/canonical-code.ts): what is not a
 * change (how a transpiler prints the same code) and what is (a real change of a reducer). The
 * same views file through each loader is test/integration/lifecycle-fingerprint.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { canonicalFunctionText } from '../../engine/internal/canonical-code.ts';
import { earlierViewFingerprints, viewFingerprint } from '../../engine/internal/lifecycle.ts';
import { defineTable, defineView, max, sum, type ViewOptions } from '../../sdk/index.ts';

interface Order {
  customer: string;
  amount: number;
  qty: number;
}

const base: ViewOptions<Order, { total: number; top: number }> = {
  name: 'orders',
  source: 'orders',
  key: (e) => e.customer,
  initial: () => ({ total: 0, top: 0 }),
  reduce: (s, e) => ({ total: sum(s.total, e.amount * 2), top: Math.max(s.top, e.amount) }),
};
const fp = (reduce: ViewOptions<Order, { total: number; top: number }>['reduce']) => viewFingerprint(defineView({ ...base, reduce }));

describe('what the canonical form keeps', () => {
  it('is the same for renamed locals, comments, parentheses, quotes and trailing commas', () => {
    const original = fp(base.reduce);
    // prettier-ignore
    expect(fp((state, event) => {
      // the same reducer, written otherwise
      return { 'total': sum(state.total, (event.amount * 2)), top: Math.max(state.top, event.amount), };
    })).not.toBe(original); // a block body is another shape than an expression body
    // prettier-ignore
    expect(fp((state, event) => ({ 'total': sum(state.total, ((event.amount) * 2)), /* c */ top: Math.max(state.top, event.amount), }))).toBe(original);
  });

  it('differs for a changed operator, field, constant, helper or global', () => {
    const original = fp(base.reduce);
    const changed = [
      fp((s, e) => ({ total: sum(s.total, e.amount / 2), top: Math.max(s.top, e.amount) })),
      fp((s, e) => ({ total: sum(s.total, e.qty * 2), top: Math.max(s.top, e.amount) })),
      fp((s, e) => ({ total: sum(s.total, e.amount * 3), top: Math.max(s.top, e.amount) })),
      fp((s, e) => ({ total: max(s.total, e.amount * 2) ?? 0, top: Math.max(s.top, e.amount) })),
      fp((s, e) => ({ total: sum(s.total, e.amount * 2), top: Math.min(s.top, e.amount) })),
      fp((s, e) => ({ total: sum(s.total, e.amount * 2), top: Math.max(e.amount, s.top) })),
      fp((s, e) => ({ top: Math.max(s.top, e.amount), total: sum(s.total, e.amount * 2) })),
    ];
    for (const c of changed) expect(c).not.toBe(original);
    expect(new Set(changed).size).toBe(changed.length);
  });

  it("undoes the loaders' rewrites of imports and esbuild's keepNames", () => {
    const source = canonicalFunctionText('(s, e) => { function tag(k) { return label(k) } return sum(s, tag(e.k)) }');
    expect(source).toBeDefined();
    for (const rewritten of [
      '(s, e) => { function tag(k) { return (0, __vite_ssr_import_1__.label)(k); } return (0,__vite_ssr_import_0__.sum)(s, tag(e.k)); }',
      '(s,e)=>{function tag(k){return(0,import_helpers.label)(k)}__name(tag,"tag");return(0,import_sdk.sum)(s,tag(e.k))}',
      '(a, b) => { function tag2(x) { return label2(x); } return sum3(a, tag2(b.k)); }',
      '(s, e) => { function tag(k) { return helpers.label(k) } return sdk.sum(s, tag(e.k)) }',
    ]) {
      expect(canonicalFunctionText(rewritten)).toBe(source);
    }
    // A property of the event is never rewritten: e.k2 is another field than e.k.
    expect(canonicalFunctionText('(s, e) => { function tag(k) { return label(k) } return sum(s, tag(e.k2)) }')).not.toBe(source);
    expect(canonicalFunctionText('[native code]')).toBeUndefined();
  });
});

describe('the fingerprint of a table aggregation', () => {
  interface Row {
    tier: string;
    visits: number;
  }
  const members = defineTable<Row>({ name: 'members', source: 'members' });
  const tiers = (parts: { key?: (r: Row) => string; reduce?: (s: { n: number }, r: Row) => { n: number }; subtract?: (s: { n: number }, r: Row) => { n: number } }) =>
    defineView({
      name: 'tiers',
      source: members,
      key: parts.key ?? ((r) => r.tier),
      initial: () => ({ n: 0 }),
      reduce: parts.reduce ?? ((s, r) => ({ n: s.n + r.visits })),
      subtract: parts.subtract ?? ((s, r) => ({ n: s.n - r.visits })),
    });

  it('covers its own key, reduce and subtract, not only the compiled wrappers', () => {
    const same = viewFingerprint(tiers({}));
    expect(viewFingerprint(tiers({}))).toBe(same);
    expect(viewFingerprint(tiers({ reduce: (s, r) => ({ n: s.n + 2 * r.visits }) }))).not.toBe(same);
    expect(viewFingerprint(tiers({ subtract: (s, r) => ({ n: s.n - 2 * r.visits }) }))).not.toBe(same);
    expect(viewFingerprint(tiers({ key: (r) => r.tier.toLowerCase() }))).not.toBe(same);
  });

  it('recognises the fingerprint an engine recorded before it covered them (the wrappers only)', () => {
    const changed = tiers({ subtract: (s, r) => ({ n: s.n - 2 * r.visits }) });
    const earlier = earlierViewFingerprints(tiers({}));
    // The wrappers alone cannot tell the two apart: that older form is the same for both.
    expect(earlierViewFingerprints(changed)).toEqual(earlier);
    expect(earlier).not.toContain(viewFingerprint(tiers({})));
  });
});
