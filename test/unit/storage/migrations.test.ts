import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { schemaContext } from '../../../src/storage/migrate.js';
import { migration0008 } from '../../../src/storage/migrations/0008-embedded-merges.js';
import { MIGRATIONS } from '../../../src/storage/migrations/index.js';

/**
 * Digests of each migration's name, DDL and retention tables, for the embedded engine with no
 * retention and for a server cluster with retention: an applied migration never changes (a change is a new
 * migration), so these digests only ever gain entries.
 */
const DIGESTS: Record<number, [string, string]> = {
  1: ['59f6a42ae2edff994f27e9d1ab2f54bcb880366955d221a955c026ca489c42fa', '0d29cffbeb18f26dab9f53f6c811b1bfebd67549d723f60f2da1e66b43ae9dd2'],
  2: ['2b974195bb7fb7a342b3498d1ee765f6e19d0b8e76d07f2814ba5185d4b84ad2', 'f42048759f68dd57a9e6947cbb4beaaba2f8205d18203c0cb7f68083559ea893'],
  3: ['ad601b740331faf0764696bce1019719e7f47074d37552a3589804f7a197c251', 'c43df3675c95ad761cc4e3734c7e5688653a059bb67250c26a0adadf7eb224bd'],
  4: ['bb63861b1dd3e7b1ce8a74d3271080cc53244110815053b4d59f48d1a8f94a1b', '1e40d4dc42576e0ae8ef0c41d48f01936cd519fcdf67c9828513a48414b8f896'],
  5: ['a4efd58cfe214fc5ca5f08fc44444420a48855015c51975a349421ab1b4a0c2e', '90e696a126daad10592a5eae0fa62352b66dbee0b968a4799cd8099c3b24763c'],
  6: ['ee102d5f0da01758aa72d118b37c500ee2f9beb363ddd9bbf1915bdd2f4e9e75', '73791f37ebc0c2b5e40db4ef4fab28347a917be18ef326eeb93d368c66f3bf6f'],
  7: ['35a8941110957511e6b73f683f72766968225ec6d90dbc924b8c0a907dc3fa40', '88cf7b1f33f8a71453d1ad93beef360da568a49368ccf57bfb3d15046fc46266'],
  8: ['4d1ef7e4e543e87cf0e321ab69b514ea373263682a1abc058f2049bb2b6b6d59', 'b22c36ae41440106500db1c9830280c6c2a340d257206e30bdd38ad7bd6c1d86'],
  9: ['acd0b410d5ad323bbd65fd5e2c21ac441392021ef02106c9e7ce920b95de63d6', '58e7349fe035eb1c21394c227de591940358acde2eab03bbce74ea4967ef92f3'],
};

describe('migrations', () => {
  it('render the same DDL as when they were applied', () => {
    const contexts = [
      schemaContext({ retention: { traces: 0, logs: 0, metrics: 0, events: 0 }, embedded: true }),
      schemaContext({ cluster: 'prod', retention: { traces: 86_400_000, logs: 3_600_000, metrics: 7_200_000, events: 1_000 } }),
    ];
    const digests = Object.fromEntries(MIGRATIONS.map((m) => [m.version, contexts.map((c) => createHash('sha256').update(JSON.stringify([m.name, m.statements(c), m.retention ?? []])).digest('hex'))]));
    expect(digests).toEqual(DIGESTS);
  });

  it('leave a server\'s merges to its operator: wider merges only for the embedded engine', () => {
    const retention = { traces: 0, logs: 0, metrics: 0, events: 0 };
    expect(migration0008.statements(schemaContext({ retention }))).toEqual([]);
    expect(migration0008.statements(schemaContext({ retention, embedded: true }))).toContain('ALTER TABLE otel_traces MODIFY SETTING merge_selector_base = 20');
  });
});
