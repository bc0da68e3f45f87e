import { expect } from 'chai';
import fc from 'fast-check';
import { isValidTimeZone, periodWindow, type Period } from '../../../src/budgets/period.js';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();
const win = (period: Period, zone: string, when: string) => {
  const w = periodWindow(period, zone, at(when));
  return { id: w.id, start: iso(w.startMs), end: iso(w.endMs) };
};

describe('budgets/period', () => {
  it('aligns UTC hour, day, ISO week and month', () => {
    expect(win('hour', 'UTC', '2026-11-29T13:05:00Z')).to.deep.equal({
      id: '2026-11-29T13',
      start: '2026-11-29T13:00:00.000Z',
      end: '2026-11-29T14:00:00.000Z',
    });
    expect(win('day', 'UTC', '2026-11-29T13:05:00Z')).to.deep.equal({
      id: '2026-11-29',
      start: '2026-11-29T00:00:00.000Z',
      end: '2026-11-30T00:00:00.000Z',
    });
    // 2026-11-29 is a Sunday: the ISO week began on Monday the 23rd.
    expect(win('week', 'UTC', '2026-11-29T13:05:00Z')).to.deep.equal({
      id: '2026-W48',
      start: '2026-11-23T00:00:00.000Z',
      end: '2026-11-30T00:00:00.000Z',
    });
    expect(win('month', 'UTC', '2026-11-29T13:05:00Z')).to.deep.equal({
      id: '2026-11',
      start: '2026-11-01T00:00:00.000Z',
      end: '2026-12-01T00:00:00.000Z',
    });
  });

  it('defaults to UTC', () => {
    expect(periodWindow('day', undefined, at('2026-01-01T00:00:00Z')).id).to.equal('2026-01-01');
  });

  it('rolls over at month end, including the leap day 2028-02-29', () => {
    expect(win('month', 'UTC', '2026-12-31T23:59:59.999Z')).to.deep.equal({
      id: '2026-12',
      start: '2026-12-01T00:00:00.000Z',
      end: '2027-01-01T00:00:00.000Z',
    });
    expect(win('month', 'UTC', '2027-01-01T00:00:00.000Z').id).to.equal('2027-01');
    expect(win('month', 'UTC', '2028-02-29T12:00:00Z')).to.deep.equal({
      id: '2028-02',
      start: '2028-02-01T00:00:00.000Z',
      end: '2028-03-01T00:00:00.000Z',
    });
    expect(win('day', 'UTC', '2028-02-29T23:59:59Z')).to.deep.equal({
      id: '2028-02-29',
      start: '2028-02-29T00:00:00.000Z',
      end: '2028-03-01T00:00:00.000Z',
    });
  });

  it('uses the ISO week-year at year boundaries', () => {
    // 2026 has 53 ISO weeks (it starts on a Thursday): 1 January 2027 is still in 2026-W53.
    expect(win('week', 'UTC', '2027-01-01T10:00:00Z')).to.deep.equal({
      id: '2026-W53',
      start: '2026-12-28T00:00:00.000Z',
      end: '2027-01-04T00:00:00.000Z',
    });
    expect(win('week', 'UTC', '2027-01-04T00:00:00Z').id).to.equal('2027-W01');
    // Monday 29 December 2025 already belongs to 2026-W01.
    expect(win('week', 'UTC', '2025-12-29T00:00:00Z')).to.deep.equal({
      id: '2026-W01',
      start: '2025-12-29T00:00:00.000Z',
      end: '2026-01-05T00:00:00.000Z',
    });
  });

  it('aligns to America/New_York, whose day starts at 05:00 UTC in winter', () => {
    expect(win('day', 'America/New_York', '2026-11-29T03:00:00Z')).to.deep.equal({
      id: '2026-11-28',
      start: '2026-11-28T05:00:00.000Z',
      end: '2026-11-29T05:00:00.000Z',
    });
    expect(win('month', 'America/New_York', '2026-12-01T04:59:59Z')).to.deep.equal({
      id: '2026-11',
      start: '2026-11-01T04:00:00.000Z',
      end: '2026-12-01T05:00:00.000Z',
    });
  });

  it('aligns to Asia/Kolkata, whose hours start at half past UTC', () => {
    expect(win('hour', 'Asia/Kolkata', '2026-11-29T13:05:00Z')).to.deep.equal({
      id: '2026-11-29T18',
      start: '2026-11-29T12:30:00.000Z',
      end: '2026-11-29T13:30:00.000Z',
    });
    expect(win('day', 'Asia/Kolkata', '2026-11-29T18:29:59Z')).to.deep.equal({
      id: '2026-11-29',
      start: '2026-11-28T18:30:00.000Z',
      end: '2026-11-29T18:30:00.000Z',
    });
  });

  it('handles a DST change inside a week and a day', () => {
    // US clocks spring forward on Sunday 2026-03-08 at 02:00: that ISO week is an hour short.
    expect(win('week', 'America/New_York', '2026-03-05T12:00:00Z')).to.deep.equal({
      id: '2026-W10',
      start: '2026-03-02T05:00:00.000Z',
      end: '2026-03-09T04:00:00.000Z',
    });
    expect(win('day', 'America/New_York', '2026-03-08T12:00:00Z')).to.deep.equal({
      id: '2026-03-08',
      start: '2026-03-08T05:00:00.000Z',
      end: '2026-03-09T04:00:00.000Z',
    });
    // Fall back on 2026-11-01: a 25-hour day, and the repeated 01:00 hour is one 2-hour window.
    expect(win('day', 'America/New_York', '2026-11-01T12:00:00Z')).to.deep.equal({
      id: '2026-11-01',
      start: '2026-11-01T04:00:00.000Z',
      end: '2026-11-02T05:00:00.000Z',
    });
    const first = win('hour', 'America/New_York', '2026-11-01T05:30:00Z'); // 01:30 EDT
    const second = win('hour', 'America/New_York', '2026-11-01T06:30:00Z'); // 01:30 EST
    expect(first).to.deep.equal({
      id: '2026-11-01T01',
      start: '2026-11-01T05:00:00.000Z',
      end: '2026-11-01T07:00:00.000Z',
    });
    expect(second).to.deep.equal(first);
    // The skipped 02:00 hour: 01:00 EST runs straight into 03:00 EDT.
    expect(win('hour', 'America/New_York', '2026-03-08T06:30:00Z')).to.deep.equal({
      id: '2026-03-08T01',
      start: '2026-03-08T06:00:00.000Z',
      end: '2026-03-08T07:00:00.000Z',
    });
    expect(win('hour', 'America/New_York', '2026-03-08T07:00:00Z').id).to.equal('2026-03-08T03');
  });

  it('starts a day at the DST jump when its midnight does not exist (America/Santiago)', () => {
    // Chile springs forward at 00:00 on Sunday 2026-09-06: the day begins at 01:00 local.
    expect(win('day', 'America/Santiago', '2026-09-06T12:00:00Z')).to.deep.equal({
      id: '2026-09-06',
      start: '2026-09-06T04:00:00.000Z',
      end: '2026-09-07T03:00:00.000Z',
    });
  });

  it('property: windows contain the instant and tile time without gaps or overlaps', () => {
    const zones = [
      'UTC',
      'America/New_York',
      'Asia/Kolkata',
      'Europe/Berlin',
      'Australia/Lord_Howe',
      'America/Santiago',
      'Pacific/Chatham',
    ];
    fc.assert(
      fc.property(
        fc.constantFrom<Period>('hour', 'day', 'week', 'month'),
        fc.constantFrom(...zones),
        fc.integer({ min: at('2024-01-01T00:00:00Z'), max: at('2030-12-31T00:00:00Z') }),
        (period, zone, now) => {
          const w = periodWindow(period, zone, now);
          expect(now).to.be.within(w.startMs, w.endMs - 1);
          const next = periodWindow(period, zone, w.endMs);
          expect(next.startMs).to.equal(w.endMs);
          expect(next.id).to.not.equal(w.id);
          expect(periodWindow(period, zone, w.endMs - 1).id).to.equal(w.id);
          expect(periodWindow(period, zone, w.startMs).id).to.equal(w.id);
          if (w.startMs > 0)
            expect(periodWindow(period, zone, w.startMs - 1).endMs).to.equal(w.startMs);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('validates zone names for the config loader', () => {
    expect(isValidTimeZone('Europe/Paris')).to.equal(true);
    expect(isValidTimeZone('Mars/Olympus_Mons')).to.equal(false);
    expect(() => periodWindow('day', 'Mars/Olympus_Mons', 0)).to.throw(RangeError);
  });
});
