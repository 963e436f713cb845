import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createDropLog, type NotificationResult } from '../../../src/notify/webhook-metrics.js';

describe('drop log', () => {
  it('counts every drop and logs a burst twice: when it starts and, with the count, when it ends', () => {
    const lines: Array<{ msg: string; dropped?: number }> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    const counted: NotificationResult[] = [];
    const drops = createDropLog({ logger, count: (r) => counted.push(r) });
    drops.taken();
    for (let i = 0; i < 3; i++) drops.dropped('the queue is full');
    drops.taken();
    drops.taken();
    drops.dropped('the agent is shutting down');
    expect(counted).toEqual(['dropped', 'dropped', 'dropped', 'dropped']);
    expect(lines.map((l) => [l.msg, l.dropped])).toEqual([
      ['dropping webhook notifications: the queue is full', undefined],
      ['webhook notifications are taken again; 3 dropped', 3],
      ['dropping webhook notifications: the agent is shutting down', undefined],
    ]);
  });
});
