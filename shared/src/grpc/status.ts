/**
 * The one place where doppel error codes meet gRPC status codes and HTTP
 * statuses. Servers call `toServiceError`, clients call `fromServiceError`.
 */
import { Metadata, status as Status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { DoppelError, errorFromCode, toDoppelError, type ErrorCode } from '../errors.js';

const TO_GRPC: Record<ErrorCode, Status> = {
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  NOT_FOUND: Status.NOT_FOUND,
  ALREADY_EXISTS: Status.ALREADY_EXISTS,
  FAILED_PRECONDITION: Status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: Status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: Status.UNAVAILABLE,
  DATA_LOSS: Status.DATA_LOSS,
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
  ABORTED: Status.ABORTED,
  INTERNAL: Status.INTERNAL,
};

const TO_HTTP: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  FAILED_PRECONDITION: 412,
  RESOURCE_EXHAUSTED: 429,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
  PERMISSION_DENIED: 403,
  UNAUTHENTICATED: 401,
  DEADLINE_EXCEEDED: 504,
  ABORTED: 409,
  INTERNAL: 500,
};

const FROM_GRPC = new Map<number, ErrorCode>(
  (Object.entries(TO_GRPC) as [ErrorCode, Status][]).map(([code, s]) => [s, code]),
);
FROM_GRPC.set(Status.CANCELLED, 'ABORTED');
FROM_GRPC.set(Status.UNKNOWN, 'INTERNAL');
FROM_GRPC.set(Status.UNIMPLEMENTED, 'INTERNAL');
FROM_GRPC.set(Status.OUT_OF_RANGE, 'INVALID_ARGUMENT');

const NAME_KEY = 'doppel-error-name';

export function httpStatusOf(code: ErrorCode): number {
  return TO_HTTP[code];
}

/** Any error as a status object for a grpc-js callback or `call.destroy()`. */
export function toServiceError(err: unknown): Partial<StatusObject> & Error {
  const e = toDoppelError(err);
  const metadata = new Metadata();
  metadata.set(NAME_KEY, e.name);
  return Object.assign(new Error(e.message), { code: TO_GRPC[e.code], details: e.message, metadata });
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}

/** A grpc-js client error as the matching doppel error, keeping the original as cause. */
export function fromServiceError(err: unknown, context?: string): DoppelError {
  if (err instanceof DoppelError) return err;
  if (!isServiceError(err)) return toDoppelError(err);
  const code = FROM_GRPC.get(err.code) ?? 'INTERNAL';
  const details = err.details || err.message;
  const e = errorFromCode(code, context ? `${context}: ${details}` : details, err);
  const name = err.metadata?.get(NAME_KEY)[0];
  if (typeof name === 'string') e.name = name;
  return e;
}
