import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { pageMeta } from '../../core/db.ts';
import { AUDIT_CSV_COLUMNS, auditCsvRow, type AuditQuery } from '../../core/services/audit.service.ts';
import { errors, Id, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';
import { PageMeta, Paging, paging } from './admin-users.routes.ts';

// The audit log for admins: who did what, when, before and after; filtered,
// paginated, and exported as CSV (streamed in batches, the same filters).

const Filters = {
  actorId: Type.Optional(Id),
  /** An action, or a prefix ending in a dot (`user.`). */
  action: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z_]+(\\.[a-z_]+)*\\.?$' })),
  /** A target, or a prefix ending in a colon (`user:`). */
  target: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[a-z_]+:[A-Za-z0-9_./@:-]*$' })),
  from: Type.Optional(Type.String({ format: 'date-time' })),
  to: Type.Optional(Type.String({ format: 'date-time' })),
};
const Entry = Type.Object({
  id: Type.String(),
  at: Type.String(),
  actorId: Nullable(Type.String()),
  actorName: Nullable(Type.String()),
  action: Type.String(),
  target: Type.String(),
  before: Type.Unknown(),
  after: Type.Unknown(),
});

const toQuery = (q: { actorId?: string; action?: string; target?: string; from?: string; to?: string }): AuditQuery => ({
  actorId: q.actorId,
  action: q.action,
  target: q.target,
  from: q.from ? new Date(q.from) : undefined,
  to: q.to ? new Date(q.to) : undefined,
});

export async function adminAuditRoutes(fastify: FastifyInstance, { core, auth }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);

  app.get('/api/admin/audit', {
    schema: {
      querystring: strict({ ...Paging.properties, ...Filters }),
      response: { 200: Type.Object({ data: Type.Array(Entry), meta: PageMeta }), ...errors(400, 401, 403) },
    },
  }, async (request) => {
    const { page, limit } = paging(request.query);
    const { total, rows } = await core.audit.list(toQuery(request.query), page, limit);
    return { data: rows, meta: pageMeta(total, page, limit) };
  });

  app.get('/api/admin/audit.csv', {
    schema: {
      querystring: strict(Filters),
      response: {
        200: { description: 'Every matching entry, newest first, as CSV (RFC 4180; JSON in before/after)', content: { 'text/csv': { schema: Type.String() } } },
        ...errors(400, 401, 403),
      },
    },
  }, async (request, reply) => {
    const query = toQuery(request.query);
    async function* lines() {
      yield `${AUDIT_CSV_COLUMNS.join(',')}\r\n`;
      for await (const batch of core.audit.all(query)) yield batch.map(auditCsvRow).join('');
    }
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="hangar-audit-${stamp}.csv"`)
      .header('cache-control', 'no-store')
      // A stream, which the typed reply (a string, per the schema) does not know of.
      .send(Readable.from(lines()) as never);
  });
}
