// Business failure codes that workflows (and activities that throw an
// ApplicationFailure directly) raise, with the HTTP status each stands for.
// Domain errors thrown by core services carry their own status into the
// failure's details (core/control/failures.ts); this table covers the codes
// that start life inside a workflow. No I/O: workflow code imports this file.

export const FAILURE_STATUS = {
  invalid_input: 400,
  image_missing: 400,
  breakglass_exists: 409,
  breakglass_required: 409,
  onboarding_completed: 409,
  agent_start_failed: 503,
  agent_stop_failed: 503,
  storage_quota_exceeded: 409,
  no_docker_host: 503,
} as const satisfies Record<string, number>;

export type FailureCode = keyof typeof FAILURE_STATUS;

/** The innermost message of a failure chain (activity failures wrap the real reason in `cause`). */
export function rootMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  for (let i = 0; e?.cause && i < 20; i++) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

/** The type of the innermost ApplicationFailure in a chain (activity failures wrap it in `cause`). */
export function rootFailureType(err: unknown): string | undefined {
  let e = err as { type?: string; cause?: unknown } | undefined;
  let type: string | undefined;
  for (let i = 0; e && i < 20; i++, e = e.cause as typeof e) type = e.type ?? type;
  return type;
}
