/**
 * Output that outlives its reader. When the process reading our stdout or stderr dies (a
 * crashed supervisor, a test runner that threw), every write fails with EPIPE, and Node reports
 * that as an 'error' event on the stream. Unheard, the event is an uncaught exception; logging
 * that exception writes to the same stream, which fails again a tick later, and so on: a chain
 * of ticks that never lets the event loop turn, so neither SIGTERM nor a gRPC call is handled
 * again. A guarded output takes its stream's first error as final and drops every later write.
 */
import type { DestinationStream } from 'pino';

/** A Node writable (process.stderr, a test sink) or a pino destination (SonicBoom). */
export interface Sink extends DestinationStream {
  on?(event: 'error', listener: (err: Error) => void): unknown;
  flush?(cb: (err?: Error | null) => void): void;
}

export interface GuardedOutput extends DestinationStream {
  /** Writes `text` unless the stream failed before; never throws. */
  write(text: string): void;
  /** Calls back once buffered lines are written, or at once when there is nothing to wait for. */
  flush(cb: () => void): void;
  /** True once the stream failed (EPIPE, EBADF, a write after end…): it is written no more. */
  readonly broken: boolean;
}

const guarded = new WeakMap<Sink, GuardedOutput>();

/** The guard of `sink`; one per sink, so every writer to it knows when it broke. */
export function guardOutput(sink: Sink): GuardedOutput {
  const known = guarded.get(sink);
  if (known !== undefined) return known;
  let broken = false;
  // Whatever the error, the lines are lost and the reader will not come back: stop writing.
  sink.on?.('error', () => {
    broken = true;
  });
  const output: GuardedOutput = {
    get broken() {
      return broken;
    },
    write(text) {
      if (broken) return;
      try {
        sink.write(text);
      } catch {
        broken = true;
      }
    },
    flush(cb) {
      if (broken || sink.flush === undefined) return cb();
      try {
        sink.flush(() => cb());
      } catch {
        cb();
      }
    },
  };
  guarded.set(sink, output);
  return output;
}

/** The process's stdout, guarded: write the CLI's own output (ready line, banner) through it. */
export function stdout(): GuardedOutput {
  return guardOutput(process.stdout);
}

/** The process's stderr, guarded. */
export function stderr(): GuardedOutput {
  return guardOutput(process.stderr);
}
