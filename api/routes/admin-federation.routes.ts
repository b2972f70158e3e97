import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { pageMeta, type FederatedAgent } from '../../core/db.ts';
import { federatedAgentView, peerView } from '../../core/services/federation.service.ts';
import { errors, Id, IdParams, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';
import { PageMeta, paging } from './admin-users.routes.ts';

// Federation for admins: peers (added by URL and the key an admin expects,
// checked against the identity the peer presents), and the agents this
// instance runs on peers — each driven by its `federationCommand` workflow.

const Direction = Type.Union([Type.Literal('outbound'), Type.Literal('inbound'), Type.Literal('both')]);
const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
const Peer = Type.Object({
  id: Type.String(),
  name: Type.String(),
  url: Type.String(),
  instanceId: Type.String(),
  instanceUrl: Type.String(),
  publicKey: Type.String(),
  fingerprint: Type.String(),
  direction: Direction,
  agentLimit: Type.Integer(),
  providerId: Nullable(Type.String()),
  lastSeenAt: Nullable(Type.String()),
  createdAt: Type.String(),
});
const RemoteAgent = Type.Object({
  id: Type.String(),
  peerId: Type.String(),
  peerName: Nullable(Type.String()),
  name: Type.String(),
  primaryModel: Nullable(Type.String()),
  status: Type.String(),
  statusReason: Nullable(Type.String()),
  remoteAgentId: Nullable(Type.String()),
  workflowId: Type.String(),
  temporalUrl: Type.String(),
  lastSeenAt: Nullable(Type.String()),
  createdAt: Type.String(),
});

export async function adminFederationRoutes(fastify: FastifyInstance, { core, auth }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);
  const control = core.federationControl;

  async function agentView(a: FederatedAgent) {
    const peer = await core.federation.peerForCommands(a.peerId).catch(() => null);
    return { ...federatedAgentView(a), peerName: peer?.name ?? null, temporalUrl: control.workflowUrl(a.workflowId) };
  }

  app.get('/api/admin/federation/peers', {
    schema: { response: { 200: Type.Object({ data: Type.Array(Peer) }), ...errors(401, 403) } },
  }, async () => ({ data: (await core.federation.listPeers()).map(peerView) }));

  app.post('/api/admin/federation/peers', {
    schema: {
      body: strict({
        name: Name,
        url: Type.String({ minLength: 8, maxLength: 500, pattern: '^https?://[^\\s]+$' }),
        // The key you expect the peer to present: its fingerprint (SHA256:…, from its identity) or its public key.
        fingerprint: Type.Optional(Type.String({ minLength: 10, maxLength: 100, pattern: '^SHA256:[A-Za-z0-9+/]+$' })),
        publicKey: Type.Optional(Type.String({ minLength: 43, maxLength: 43, pattern: '^[A-Za-z0-9_-]+$' })),
        direction: Type.Optional(Direction),
        agentLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
        providerId: Type.Optional(Nullable(Id)),
      }),
      response: { 201: Peer, ...errors(400, 401, 403, 409, 503) },
    },
  }, async (request, reply) => {
    const peer = peerView(await core.federation.addPeer(request.body));
    await core.audit.record({ actorId: request.user!.id, action: 'federation.peer_added', target: `peer:${peer.id}`, after: peer });
    return reply.code(201).send(peer);
  });

  app.delete('/api/admin/federation/peers/:id', {
    schema: {
      params: IdParams,
      response: { 200: Type.Object({ peer: Peer, killing: Type.Integer(), retiring: Type.Integer() }), ...errors(400, 401, 403, 404, 503) },
    },
  }, async (request) => {
    const { peer, killing, retiring } = await control.removePeer(request.params.id);
    await core.audit.record({ actorId: request.user!.id, action: 'federation.peer_removed', target: `peer:${peer.id}`, before: peerView(peer), after: { killing, retiring } });
    return { peer: peerView(peer), killing, retiring };
  });

  app.post('/api/admin/federation/peers/:id/agents', {
    schema: {
      params: IdParams,
      body: strict({ name: Name, primaryModel: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9._:/-]+$' }))) }),
      response: { 201: RemoteAgent, ...errors(400, 401, 403, 404, 409, 503) },
    },
  }, async (request, reply) => {
    const row = await control.spawnRemote(request.params.id, request.body, request.user!.id);
    await core.audit.record({ actorId: request.user!.id, action: 'federation.agent_spawn', target: `federated-agent:${row.id}`, after: federatedAgentView(row) });
    return reply.code(201).send(await agentView(row));
  });

  app.get('/api/admin/federation/agents', {
    schema: {
      querystring: strict({
        page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, default: 1 })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
        peerId: Type.Optional(Id),
      }),
      response: { 200: Type.Object({ data: Type.Array(RemoteAgent), meta: PageMeta }), ...errors(400, 401, 403) },
    },
  }, async (request) => {
    const { page, limit } = paging(request.query);
    const [total, rows] = await core.federation.listRemoteAgents(page, limit, request.query.peerId);
    return { data: await Promise.all(rows.map(agentView)), meta: pageMeta(total, page, limit) };
  });

  app.get('/api/admin/federation/agents/:id', {
    schema: { params: IdParams, response: { 200: RemoteAgent, ...errors(400, 401, 403, 404) } },
  }, async (request) => agentView(await core.federation.getRemoteAgent(request.params.id)));

  // Stops and removes the agent on the peer; waits a little for the peer to confirm, then answers with where it is.
  app.delete('/api/admin/federation/agents/:id', {
    schema: { params: IdParams, response: { 200: RemoteAgent, ...errors(400, 401, 403, 404, 503) } },
  }, async (request) => {
    const before = await core.federation.getRemoteAgent(request.params.id);
    const after = await control.killRemote(before.id, 'admin_request', 20_000);
    await core.audit.record({ actorId: request.user!.id, action: 'federation.agent_kill', target: `federated-agent:${before.id}`, before: federatedAgentView(before), after: federatedAgentView(after) });
    return agentView(after);
  });
}
