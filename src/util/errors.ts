/**
 * The project's error hierarchy. Every error a user can cause (bad data, bad config, missing
 * artifacts) is a {@link UserError}: the CLI prints its message alone, without a stack trace
 * (unless `--verbose`), and exits non-zero. Messages say what was wrong, where, and how to fix it.
 */
export class UserError extends Error {
  /** A short machine-readable category, e.g. `config`, `data`, `artifact`, `backend`. */
  readonly kind: string;
  constructor(kind: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
    this.kind = kind;
  }
}

/** A configuration file that does not parse or does not match the schema. */
export class ConfigError extends UserError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('config', message, options);
    this.name = 'ConfigError';
  }
}

/** Input data (an Arrow file, a dataset recipe's options) that does not meet the schema. */
export class DataError extends UserError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('data', message, options);
    this.name = 'DataError';
  }
}

/** A missing, corrupted or tampered artifact (model weights, manifest, stage output). */
export class ArtifactError extends UserError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('artifact', message, options);
    this.name = 'ArtifactError';
  }
}

/** A tensor backend that is unknown or cannot be initialised here. */
export class BackendError extends UserError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('backend', message, options);
    this.name = 'BackendError';
  }
}

/** Exhaustiveness check for `switch` over closed string unions. */
export function assertUnreachable(x: never): never {
  throw new Error(`unreachable: ${String(x)}`);
}
