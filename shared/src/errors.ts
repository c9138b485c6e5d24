/**
 * Error classes shared by every doppel process. Each has a `name`, a stable
 * `code` and an optional `cause`. The code decides the gRPC status and the HTTP
 * status; that mapping lives in one place, `grpc/status.ts`.
 */

export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'DATA_LOSS'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'DEADLINE_EXCEEDED'
  | 'ABORTED'
  | 'INTERNAL';

export interface ErrorJson {
  name: string;
  code: ErrorCode;
  message: string;
}

export class DoppelError extends Error {
  override name = 'DoppelError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  toJSON(): ErrorJson {
    return { name: this.name, code: this.code, message: this.message };
  }
}

/** A request carried a bad value: a size, an index, an id, an option. */
export class InvalidArgumentError extends DoppelError {
  override name = 'InvalidArgumentError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options);
  }
}

/** A named thing (VM, host, job) does not exist. */
export class NotFoundError extends DoppelError {
  override name = 'NotFoundError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('NOT_FOUND', message, options);
  }
}

export class AlreadyExistsError extends DoppelError {
  override name = 'AlreadyExistsError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ALREADY_EXISTS', message, options);
  }
}

/** The system is not in a state where the request can run (e.g. pre-copy would not converge). */
export class FailedPreconditionError extends DoppelError {
  override name = 'FailedPreconditionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('FAILED_PRECONDITION', message, options);
  }
}

/** No room: memory on a host, a message over the size limit, a full queue. */
export class ResourceExhaustedError extends DoppelError {
  override name = 'ResourceExhaustedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('RESOURCE_EXHAUSTED', message, options);
  }
}

/** A host or service is down or unreachable. */
export class UnavailableError extends DoppelError {
  override name = 'UnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
  }
}

/** Data failed an integrity check: a corrupt frame, a checksum mismatch. */
export class DataCorruptionError extends DoppelError {
  override name = 'DataCorruptionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('DATA_LOSS', message, options);
  }
}

/** The caller may not do this (a missing or wrong credential or token). */
export class PermissionDeniedError extends DoppelError {
  override name = 'PermissionDeniedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('PERMISSION_DENIED', message, options);
  }
}

/** The caller did not say who it is (no client certificate, no bearer token). */
export class UnauthenticatedError extends DoppelError {
  override name = 'UnauthenticatedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAUTHENTICATED', message, options);
  }
}

export class DeadlineExceededError extends DoppelError {
  override name = 'DeadlineExceededError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('DEADLINE_EXCEEDED', message, options);
  }
}

/** The operation was cancelled or lost a race (another job holds the VM). */
export class AbortedError extends DoppelError {
  override name = 'AbortedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ABORTED', message, options);
  }
}

export class InternalError extends DoppelError {
  override name = 'InternalError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('INTERNAL', message, options);
  }
}

const BY_CODE: Record<ErrorCode, new (message: string, options?: { cause?: unknown }) => DoppelError> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  NOT_FOUND: NotFoundError,
  ALREADY_EXISTS: AlreadyExistsError,
  FAILED_PRECONDITION: FailedPreconditionError,
  RESOURCE_EXHAUSTED: ResourceExhaustedError,
  UNAVAILABLE: UnavailableError,
  DATA_LOSS: DataCorruptionError,
  PERMISSION_DENIED: PermissionDeniedError,
  UNAUTHENTICATED: UnauthenticatedError,
  DEADLINE_EXCEEDED: DeadlineExceededError,
  ABORTED: AbortedError,
  INTERNAL: InternalError,
};

/** Builds the error class for a code, e.g. when an error crosses NATS or gRPC. */
export function errorFromCode(code: ErrorCode, message: string, cause?: unknown): DoppelError {
  const Ctor = BY_CODE[code] ?? InternalError;
  return new Ctor(message, cause === undefined ? undefined : { cause });
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && value in BY_CODE;
}

/** Any thrown value as a DoppelError; unknown errors become INTERNAL with the original as cause. */
export function toDoppelError(err: unknown): DoppelError {
  if (err instanceof DoppelError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(message, { cause: err });
}

export function errorToJson(err: unknown): ErrorJson {
  return toDoppelError(err).toJSON();
}

export function errorFromJson(json: ErrorJson): DoppelError {
  const e = errorFromCode(isErrorCode(json.code) ? json.code : 'INTERNAL', json.message);
  e.name = json.name;
  return e;
}
