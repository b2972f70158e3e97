// One error hierarchy for the API and the activities. The API's error handler
// maps `status`/`code` to the JSON error shape of API.md; activities convert
// these into non-retryable Temporal failures (business errors never retry).

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends AppError {
  constructor(message: string, details?: unknown, code = 'invalid_input') {
    super(400, code, message, details);
  }
}

export class UnauthorizedError extends AppError {
  constructor(message = 'Sign in first', code = 'unauthorized') {
    super(401, code, message);
  }
}

export class ForbiddenError extends AppError {
  constructor(message = 'Not allowed', code = 'forbidden') {
    super(403, code, message);
  }
}

export class NotFoundError extends AppError {
  constructor(what = 'Resource', code = 'not_found') {
    super(404, code, `${what} not found`);
  }
}

export class MethodNotAllowedError extends AppError {
  constructor(method: string, path: string, allow: string[]) {
    super(405, 'method_not_allowed', `${method} is not allowed on ${path}; use ${allow.join(', ')}`, { allow }, { allow: allow.join(', ') });
  }
}

export class ConflictError extends AppError {
  constructor(message: string, code = 'conflict', details?: unknown) {
    super(409, code, message, details);
  }
}

export class GoneError extends AppError {
  constructor(message: string, code = 'gone') {
    super(410, code, message);
  }
}

export class RateLimitedError extends AppError {
  constructor(message: string, retryAfterSeconds: number, code = 'rate_limited') {
    super(429, code, message, undefined, { 'retry-after': String(retryAfterSeconds) });
  }
}

/** Over a monthly token budget: refused until the month ends (details say which budget and when). */
export class BudgetExceededError extends AppError {
  constructor(message: string, details: { scope: string; monthlyTokens: number; used: number; resetsAt: string }) {
    const seconds = Math.max(1, Math.ceil((Date.parse(details.resetsAt) - Date.now()) / 1000));
    super(429, 'budget_exceeded', message, details, { 'retry-after': String(seconds) });
  }
}

export class UnavailableError extends AppError {
  constructor(message: string, code = 'unavailable', details?: unknown) {
    super(503, code, message, details);
  }
}
