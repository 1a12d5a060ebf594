import type { BackendInfo, BackendName } from '../src/backend/select.ts';
import type { Logger } from '../src/util/log.ts';

/** What a bench case gets when it runs on one backend. */
export interface BenchContext {
  /** The active backend (already initialised). */
  backend: BackendInfo;
  /** `--quick`: as few steps as give a usable number (smoke runs, CI). */
  quick: boolean;
  /** Time budget for one measurement, in seconds (`--seconds`, default 3). */
  seconds: number;
  /** Whether peers (e.g. PyTorch) may run (`--no-peer` turns them off). */
  peer: boolean;
  log: Logger;
}

/** One number measured by a case on one backend. */
export interface BenchMeasurement {
  /** Name of the measurement, e.g. `mlp-train-784-1200-1200-10`. */
  bench: string;
  value: number;
  /** e.g. `ex/s`, `ms`, `GFLOP/s`. */
  unit: string;
  /** Free text shown in the table (e.g. steps, batch). */
  detail?: string;
  /** A peer's number for the same measurement, when the case ran the peer itself (interleaved). */
  peer?: { name: string; value: number };
}

/** A peer's number for a measurement (e.g. PyTorch on the same CPU). */
export interface PeerMeasurement {
  bench: string;
  /** Who, e.g. `pytorch 1.13.0 (1 thread)`. */
  peer: string;
  value: number;
  unit: string;
}

/**
 * One entry of the bench registry. Every file `bench/cases/*.ts` exports `benchCase`; `npm run
 * bench` runs each case once per available backend, and its `peers` once per invocation.
 */
export interface BenchCase {
  /** Short unique name, used by `--filter`. */
  name: string;
  description: string;
  /** Backends this case is worth running on (default: every available one). */
  backends?: readonly BackendName[];
  /** Measures on the active backend. Must not leak tensors. */
  run(ctx: BenchContext): Promise<BenchMeasurement[]>;
  /**
   * Peer numbers for the same measurements, run once per invocation after all backends (for
   * cases that do not interleave their peer in `run`); unavailable peers return [].
   */
  peers?(ctx: Omit<BenchContext, 'backend'>): Promise<PeerMeasurement[]>;
}

/** A row of the output (`--json` prints one per line). */
export interface BenchRow {
  bench: string;
  backend: string;
  value: number;
  unit: string;
  peer?: string;
  peer_value?: number;
  ratio?: number;
  detail?: string;
}
