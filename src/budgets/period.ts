/**
 * Calendar periods for token budgets: the minute, hour, day, ISO week (Monday first) or month that
 * contains an instant, on the wall clock of an IANA time zone. Offsets come from
 * Intl.DateTimeFormat, so daylight-saving changes are honoured: a period starts at the first
 * instant its wall-clock start is reached. When that wall time does not exist (a midnight
 * skipped by a DST jump) the period starts at the jump; when it exists twice (clocks set
 * back) it starts at the first. Consecutive windows therefore tile time without gaps or
 * overlaps, and one id always names one window.
 */

export type Period = 'minute' | 'hour' | 'day' | 'week' | 'month';

export interface PeriodWindow {
  /**
   * `2026-11` (month), `2026-W48` (ISO week), `2026-11-29` (day), `2026-11-29T13` (hour),
   * `2026-11-29T13:07` (minute).
   */
  id: string;
  /** First millisecond of the window (inclusive). */
  startMs: number;
  /** First millisecond of the next window (exclusive). */
  endMs: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A wall-clock date and hour; `day` and `hour` may overflow and are normalized by Date.UTC. */
interface Wall {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
}

const formats = new Map<string, Intl.DateTimeFormat>();

function formatFor(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formats.set(timeZone, f);
  }
  return f;
}

/** True when `timeZone` is an IANA zone name this runtime knows (for config validation). */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

function isUtc(timeZone: string): boolean {
  return (
    timeZone === 'UTC' || timeZone === 'Etc/UTC' || timeZone === 'Etc/GMT' || timeZone === 'GMT'
  );
}

/** The zone's offset from UTC (ms) at instant `ms`. */
function offsetAt(ms: number, timeZone: string): number {
  if (isUtc(timeZone)) return 0;
  const seconds = Math.floor(ms / 1000) * 1000;
  const parts: Record<string, number> = {};
  for (const p of formatFor(timeZone).formatToParts(seconds)) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  const asUtc = Date.UTC(
    parts['year'] ?? 1970,
    (parts['month'] ?? 1) - 1,
    parts['day'] ?? 1,
    parts['hour'] ?? 0,
    parts['minute'] ?? 0,
    parts['second'] ?? 0,
  );
  return asUtc - seconds;
}

function wallAt(ms: number, timeZone: string): Wall {
  const d = new Date(ms + offsetAt(ms, timeZone));
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
  };
}

/** The first instant at which the zone's wall clock reads `wall` or later. */
function firstInstantOf(wall: Wall, timeZone: string): number {
  const local = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour);
  // Offsets a day before and after cover any transition near this wall time.
  const before = offsetAt(local - DAY, timeZone);
  const after = offsetAt(local + DAY, timeZone);
  const candidates = [local - before, local - after].filter(
    (t) => offsetAt(t, timeZone) + t === local,
  );
  if (candidates.length > 0) return Math.min(...candidates);
  // The wall time was skipped by a jump forward: find the jump, between the two readings.
  let lo = Math.min(local - before, local - after);
  let hi = Math.max(local - before, local - after);
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (mid + offsetAt(mid, timeZone) >= local) hi = mid;
    else lo = mid;
  }
  return hi;
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** Normalizes an overflowing wall (e.g. day 32) through Date.UTC. */
function normalize(wall: Wall): Wall {
  const d = new Date(Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour));
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
  };
}

/** ISO-8601 week of a date: the week (Monday first) belongs to the year of its Thursday. */
function isoWeek(monday: Wall): { year: number; week: number } {
  const thursday = normalize({ ...monday, day: monday.day + 3, hour: 0 });
  const jan1 = Date.UTC(thursday.year, 0, 1);
  const thu = Date.UTC(thursday.year, thursday.month - 1, thursday.day);
  return { year: thursday.year, week: 1 + Math.floor((thu - jan1) / (7 * DAY)) };
}

const lastWindows = new Map<string, PeriodWindow>();

/**
 * The window of `period` containing `nowMs`, aligned to the calendar of `timeZone`
 * (default UTC). Throws a RangeError for a zone the runtime does not know; configuration
 * validation should reject such zones first (see isValidTimeZone).
 */
export function periodWindow(
  period: Period,
  timeZone = 'UTC',
  nowMs: number = Date.now(),
): PeriodWindow {
  // Every admission asks for its budgets' windows; the last one per period and zone is reused
  // while it still contains the instant, sparing the Intl calls.
  const key = `${period}|${timeZone}`;
  const cached = lastWindows.get(key);
  if (cached && nowMs >= cached.startMs && nowMs < cached.endMs) return { ...cached };
  const window = computeWindow(period, timeZone, nowMs);
  if (lastWindows.size >= 1024) lastWindows.clear();
  lastWindows.set(key, window);
  return { ...window };
}

function computeWindow(period: Period, timeZone: string, nowMs: number): PeriodWindow {
  if (period === 'minute') {
    // Every zone's offset is a whole number of minutes today, so minutes start together
    // everywhere; the id reads the zone's wall clock.
    const startMs = Math.floor(nowMs / 60_000) * 60_000;
    const wall = new Date(startMs + offsetAt(startMs, timeZone)).toISOString().slice(0, 16);
    return { id: wall, startMs, endMs: startMs + 60_000 };
  }
  const now = wallAt(nowMs, timeZone);
  let start: Wall;
  let next: Wall;
  let id: string;
  switch (period) {
    case 'hour':
      start = now;
      next = normalize({ ...now, hour: now.hour + 1 });
      id = `${pad(now.year, 4)}-${pad(now.month)}-${pad(now.day)}T${pad(now.hour)}`;
      break;
    case 'day':
      start = { ...now, hour: 0 };
      next = normalize({ ...start, day: start.day + 1 });
      id = `${pad(now.year, 4)}-${pad(now.month)}-${pad(now.day)}`;
      break;
    case 'week': {
      const weekday = (new Date(Date.UTC(now.year, now.month - 1, now.day)).getUTCDay() + 6) % 7; // Monday = 0
      start = normalize({ ...now, day: now.day - weekday, hour: 0 });
      next = normalize({ ...start, day: start.day + 7 });
      const w = isoWeek(start);
      id = `${pad(w.year, 4)}-W${pad(w.week)}`;
      break;
    }
    case 'month':
      start = { ...now, day: 1, hour: 0 };
      next = normalize({ ...start, month: start.month + 1 });
      id = `${pad(now.year, 4)}-${pad(now.month)}`;
      break;
  }
  return { id, startMs: firstInstantOf(start, timeZone), endMs: firstInstantOf(next, timeZone) };
}
