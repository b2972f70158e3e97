import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { periodOf, resetsAt, WARN_PERCENT, type BudgetView } from '../../core/services/usage.service.ts';
import { errors, Id, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// Chat usage (tokens in = prompt, out = completion) per UTC month: a user's
// own (GET /api/me/usage, with the budgets that bind them and whether they
// are near or over one), the instance's totals for admins, and admins'
// monthly token budgets per user or workspace. Totals and budget states come
// from each API process's memory, refreshed every HANGAR_USAGE_FLUSH_MS: a
// read may lag the last few seconds of other processes' chats.

const Scope = Type.Union([Type.Literal('user'), Type.Literal('workspace')]);
const Tokens = { tokensIn: Type.Integer(), tokensOut: Type.Integer(), requests: Type.Integer() };

const Budget = Type.Object({
  scope: Scope,
  targetId: Type.String(),
  /** The user's display name or the workspace's name. */
  name: Nullable(Type.String()),
  monthlyTokens: Type.Integer(),
  used: Type.Integer(),
  percent: Type.Number(),
  state: Type.Union([Type.Literal('ok'), Type.Literal('warning'), Type.Literal('exceeded')]),
  resetsAt: Type.String(),
  updatedAt: Type.String(),
});

const MyUsage = Type.Object({
  period: Type.String(),
  resetsAt: Type.String(),
  warnPercent: Type.Integer(),
  totals: Type.Object(Tokens),
  rows: Type.Array(Type.Object({ agentId: Type.String(), workspaceId: Nullable(Type.String()), model: Type.String(), ...Tokens })),
  budgets: Type.Array(Budget),
  /** The worst state among the budgets: the chat page shows a banner from `warning` on. */
  state: Type.Union([Type.Literal('ok'), Type.Literal('warning'), Type.Literal('exceeded')]),
});

const Line = (key: string) => Type.Object({ [key]: Type.String(), name: Nullable(Type.String()), ...Tokens });
const AdminUsage = Type.Object({
  period: Type.String(),
  totals: Type.Object(Tokens),
  byUser: Type.Array(Line('userId')),
  byWorkspace: Type.Array(Line('workspaceId')),
  byModel: Type.Array(Type.Object({ model: Type.String(), ...Tokens })),
});

const BudgetParams = strict({ scope: Scope, targetId: Id });
const Month = Type.String({ pattern: '^\\d{4}-(0[1-9]|1[0-2])$' });

const n = (v: bigint | number | null | undefined) => Number(v ?? 0);
const sums = (s: { tokensIn: bigint | null; tokensOut: bigint | null; requests: number | null }) => ({ tokensIn: n(s.tokensIn), tokensOut: n(s.tokensOut), requests: n(s.requests) });
const worst = (budgets: BudgetView[]): BudgetView['state'] => (budgets.some((b) => b.state === 'exceeded') ? 'exceeded' : budgets.some((b) => b.state === 'warning') ? 'warning' : 'ok');

export async function usageRoutes(fastify: FastifyInstance, { core, auth }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  const named = (views: BudgetView[]) => core.usage.withNames(views);

  app.get('/api/me/usage', {
    preHandler: auth.requireUser,
    schema: { response: { 200: MyUsage, ...errors(401, 403) } },
  }, async (request) => {
    const user = request.user!;
    const { rows, workspaceIds } = await core.usage.mine(user.id);
    const budgets = await named(core.usage.budgetsFor(user.id, workspaceIds));
    const out = rows.map((r) => ({ agentId: r.agentId, workspaceId: r.workspaceId, model: r.model, tokensIn: n(r.tokensIn), tokensOut: n(r.tokensOut), requests: r.requests }));
    const totals = out.reduce((t, r) => ({ tokensIn: t.tokensIn + r.tokensIn, tokensOut: t.tokensOut + r.tokensOut, requests: t.requests + r.requests }), { tokensIn: 0, tokensOut: 0, requests: 0 });
    return { period: periodOf().toISOString(), resetsAt: resetsAt().toISOString(), warnPercent: WARN_PERCENT, totals, rows: out, budgets, state: worst(budgets) };
  });

  app.get('/api/admin/usage', {
    preHandler: auth.requireAdmin,
    schema: {
      querystring: strict({ month: Type.Optional(Month), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) }),
      response: { 200: AdminUsage, ...errors(400, 401, 403) },
    },
  }, async (request) => {
    const month = request.query.month ? new Date(`${request.query.month}-01T00:00:00Z`) : new Date();
    const t = await core.usage.totals(month, request.query.limit ?? 100);
    return {
      period: periodOf(month).toISOString(),
      totals: sums(t.all),
      byUser: t.byUser.map((r) => ({ userId: r.userId, name: t.names.user.get(r.userId) ?? null, ...sums(r._sum) })),
      byWorkspace: t.byWorkspace.map((r) => ({ workspaceId: r.workspaceId!, name: t.names.workspace.get(r.workspaceId!) ?? null, ...sums(r._sum) })),
      byModel: t.byModel.map((r) => ({ model: r.model, ...sums(r._sum) })),
    };
  });

  app.get('/api/admin/budgets', {
    preHandler: auth.requireAdmin,
    schema: { response: { 200: Type.Object({ data: Type.Array(Budget) }), ...errors(401, 403) } },
  }, async () => ({ data: await named(await core.usage.listBudgets()) }));

  app.get('/api/admin/budgets/:scope/:targetId', {
    preHandler: auth.requireAdmin,
    schema: { params: BudgetParams, response: { 200: Budget, ...errors(400, 401, 403, 404) } },
  }, async (request) => (await named([await core.usage.getBudget(request.params.scope, request.params.targetId)]))[0]);

  app.put('/api/admin/budgets/:scope/:targetId', {
    preHandler: auth.requireAdmin,
    schema: {
      params: BudgetParams,
      body: strict({ monthlyTokens: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) }),
      response: { 200: Budget, ...errors(400, 401, 403, 404) },
    },
  }, async (request) => {
    const { scope, targetId } = request.params;
    const { before, after } = await core.usage.setBudget(scope, targetId, request.body.monthlyTokens, request.user!.id);
    await core.audit.record({
      actorId: request.user!.id,
      ...(scope === 'workspace' ? { workspaceId: targetId } : {}),
      action: 'budget.set',
      target: `${scope}:${targetId}`,
      before: before ? { monthlyTokens: before.monthlyTokens } : null,
      after: { monthlyTokens: after.monthlyTokens },
    });
    return (await named([after]))[0];
  });

  app.delete('/api/admin/budgets/:scope/:targetId', {
    preHandler: auth.requireAdmin,
    schema: { params: BudgetParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404) } },
  }, async (request, reply) => {
    const { scope, targetId } = request.params;
    const before = await core.usage.removeBudget(scope, targetId);
    await core.audit.record({
      actorId: request.user!.id,
      ...(scope === 'workspace' ? { workspaceId: targetId } : {}),
      action: 'budget.remove',
      target: `${scope}:${targetId}`,
      before: { monthlyTokens: before.monthlyTokens },
      after: null,
    });
    return reply.code(204).send(null);
  });
}
