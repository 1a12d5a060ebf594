import cliProgress from 'cli-progress';

/** Where progress and messages go. Stages log through this, never through console directly. */
export interface Logger {
  /** A line of information. */
  info(msg: string): void;
  /** A warning (printed with a `warning:` prefix). */
  warn(msg: string): void;
  /**
   * Starts a progress indicator for `total` units of work: a bar on a TTY, a plain line at most
   * every `intervalMs` (default 10 s) and at the end otherwise.
   */
  progress(label: string, total: number): Progress;
}

/** One progress indicator; `tick` advances it, `done` closes it. */
export interface Progress {
  tick(n?: number, status?: string): void;
  done(status?: string): void;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Print nothing at all (tests). Default false. */
  silent?: boolean;
  /** Force the bar (true) or plain lines (false); default: whether stderr is a TTY. */
  tty?: boolean;
  /** Minimum time between plain progress lines, in ms. Default 10,000. */
  intervalMs?: number;
  /** Prefix for every line, e.g. the stage name. */
  prefix?: string;
  /** Sink for lines; default `process.stderr`. */
  write?: (line: string) => void;
}

/** Creates a {@link Logger} that writes to stderr (bars on a TTY, periodic lines otherwise). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const silent = options.silent ?? false;
  const tty = options.tty ?? Boolean(process.stderr.isTTY);
  const interval = options.intervalMs ?? 10_000;
  const prefix = options.prefix ? `[${options.prefix}] ` : '';
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  return {
    info(msg) {
      if (!silent) write(prefix + msg);
    },
    warn(msg) {
      if (!silent) write(prefix + 'warning: ' + msg);
    },
    progress(label, total) {
      if (silent) return { tick() {}, done() {} };
      let count = 0;
      const start = Date.now();
      if (tty) {
        const bar = new cliProgress.SingleBar(
          { format: `${prefix}${label} [{bar}] {value}/{total} {eta_formatted} {status}`, stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0, { status: '' });
        return {
          tick(n = 1, status = '') {
            count += n;
            bar.update(Math.min(count, total), { status });
          },
          done(status = '') {
            bar.update(total, { status });
            bar.stop();
          },
        };
      }
      let last = start;
      return {
        tick(n = 1, status = '') {
          count += n;
          const now = Date.now();
          if (now - last >= interval) {
            last = now;
            const pct = total > 0 ? ((100 * count) / total).toFixed(0) : '?';
            write(`${prefix}${label}: ${count}/${total} (${pct}%) ${((now - start) / 1000).toFixed(0)}s ${status}`.trimEnd());
          }
        },
        done(status = '') {
          write(`${prefix}${label}: done ${count}/${total} in ${((Date.now() - start) / 1000).toFixed(1)}s ${status}`.trimEnd());
        },
      };
    },
  };
}

/** A logger that prints nothing (for tests and library use). */
export const silentLogger: Logger = createLogger({ silent: true });
