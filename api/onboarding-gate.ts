import type { FastifyInstance } from 'fastify';
import type { OnboardingControl } from '../core/control/onboarding-control.ts';
import { ConflictError } from '../core/errors.ts';

// Until onboarding completes, every route but these answers 409
// onboarding_required (API.md). Completion never reverts, so once seen it is
// remembered and costs nothing per request.
const OPEN = [/^\/healthz$/, /^\/readyz$/, /^\/metrics$/, /^\/docs(\/|$)/, /^\/api\/onboarding(\/|$)/, /^\/api\/auth\//, /^\/api\/internal\//];

export function installOnboardingGate(app: FastifyInstance, onboarding: OnboardingControl): void {
  app.addHook('onRequest', async (request) => {
    // The route fastify matched, never the raw URL: the router decodes the
    // path (/%61pi/... reaches /api/...), so only its answer is the truth.
    const route = request.routeOptions.url;
    // Unmatched requests reach no handler: they get their 404/405 either way.
    if (!route || OPEN.some((re) => re.test(route))) return;
    // Only the API is gated; the web UI's own files must load to show the wizard.
    if (!route.startsWith('/api/')) return;
    if (!(await onboarding.isComplete())) throw new ConflictError('Finish onboarding first (POST /api/onboarding/...)', 'onboarding_required');
  });
}
