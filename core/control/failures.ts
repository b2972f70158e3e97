import { ApplicationFailure } from '@temporalio/common';
import { FAILURE_STATUS, rootMessage } from '../contracts/failures.contract.ts';
import { AppError, UnavailableError } from '../errors.ts';

// The one mapping between Hangar's domain errors and Temporal failures, both
// ways. Activities turn a business error into a non-retryable failure that
// carries its status and code; the Temporal port turns a failed workflow,
// update or activity back into that same domain error, so the API answers
// with the status and code the service meant.

interface FailureDetails {
  status: number;
  details: unknown;
}

/** Domain → failure. A 4xx AppError is final (retrying cannot help); anything else stays retryable. */
export function toFailure(err: unknown): unknown {
  if (err instanceof AppError && err.status < 500) {
    return ApplicationFailure.create({
      message: err.message,
      type: err.code,
      nonRetryable: true,
      details: [{ status: err.status, details: err.details ?? null } satisfies FailureDetails],
    });
  }
  return err;
}

/** Runs an activity body, turning business errors into final failures. */
export async function businessErrorsFinal<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toFailure(err);
  }
}

export class TemporalUnavailableError extends UnavailableError {
  constructor() {
    super('The workflow service is unavailable; try again shortly', 'temporal_unavailable');
  }
}

/** gRPC UNAVAILABLE (14) or DEADLINE_EXCEEDED (4), or the client's connection errors, anywhere in the chain. */
function isTemporalUnavailable(err: unknown): boolean {
  for (let e = err as { name?: string; code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 20; e = e.cause as typeof e, i++) {
    if (e.name === 'ServiceError' || e.name === 'ConnectionError' || e.name === 'TransportError') return true;
    if (e.code === 14 || e.code === 4) return true;
  }
  return false;
}

function statusOf(f: ApplicationFailure): { status: number; details: unknown } | null {
  const d = f.details?.[0] as Partial<FailureDetails> | undefined;
  if (d && typeof d.status === 'number') return { status: d.status, details: d.details ?? undefined };
  const known = f.type ? (FAILURE_STATUS as Record<string, number>)[f.type] : undefined;
  return known ? { status: known, details: undefined } : null;
}

/**
 * Failure → domain. The outermost business failure in the chain decides the
 * status and code; a failure with none (an activity that gave up, a bug)
 * becomes `fallback` with the root cause's message. Errors that are not
 * Temporal's (already domain errors, programming errors) pass through.
 */
export function fromFailure(err: unknown, fallback: { code: string; message: string }): unknown {
  if (err instanceof AppError) return err;
  if (isTemporalUnavailable(err)) return new TemporalUnavailableError();
  let temporal = false;
  for (let c = err as { cause?: unknown } | undefined, i = 0; c && i < 20; c = c.cause as typeof c, i++) {
    const name = (c as Error).name ?? '';
    if (/^Workflow(Update)?FailedError$|Failure$/.test(name)) temporal = true;
    if (c instanceof ApplicationFailure) {
      const s = statusOf(c);
      if (s) return new AppError(s.status, c.type!, c.message, s.details);
    }
  }
  if (!temporal) return err;
  return new UnavailableError(`${fallback.message}: ${rootMessage(err)}`, fallback.code);
}
