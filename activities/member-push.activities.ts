import http from 'node:http';
import { ApplicationFailure } from '@temporalio/common';
import { diffMembers, type AgentMember, type MemberPushResult } from '../core/contracts/workspace.contract.ts';
import type { Keyring } from '../core/crypto.ts';

// Docker-host side of member provisioning: the workspace agent's member list
// through its own endpoint (/internal/members, the gateway token as bearer),
// reached where the chat proxy reaches it (the published loopback port).
// Every step is idempotent: PUT sets a member, DELETE of an absent one is fine,
// so a retried push converges on the same list.

interface Answer {
  status: number;
  body: unknown;
}

function request(port: number, token: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1',
      port,
      path,
      method,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) },
      signal: AbortSignal.timeout(timeoutMs),
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 4 * 1024 * 1024) chunks.push(c);
      });
      res.on('end', () => {
        let parsed: unknown = null;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          parsed = null;
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const memberList = (a: Answer): AgentMember[] | null => {
  const members = (a.body as { members?: unknown } | null)?.members;
  return a.status === 200 && Array.isArray(members) ? (members as AgentMember[]) : null;
};

export function createMemberPushActivities({ keyring, timeoutMs = 5000 }: { keyring: Pick<Keyring, 'decrypt'>; timeoutMs?: number }) {
  return {
    async pushAgentMembers(req: { port: number; sealedToken: string; members: AgentMember[] }): Promise<MemberPushResult> {
      const token = keyring.decrypt(req.sealedToken);
      const call = (method: string, path: string, body?: unknown) => request(req.port, token, method, path, body, timeoutMs);
      const listed = await call('GET', '/internal/members');
      const actual = memberList(listed);
      if (!actual) {
        // A runtime without the endpoint (OpenClaw answers 404, or its UI's HTML): nothing to push, and retrying cannot help.
        if (listed.status === 404 || (listed.status === 200 && listed.body === null)) return { supported: false, added: [], changed: [], removed: [], members: [] };
        // 401 (a restart minted a new token) or 5xx: retried, with a fresh plan from the workflow after a few tries.
        throw ApplicationFailure.retryable(`the agent answered HTTP ${listed.status} to GET /internal/members`, 'agent_members_failed');
      }
      const diff = diffMembers(req.members, actual);
      for (const m of diff.put) {
        const r = await call('PUT', `/internal/members/${encodeURIComponent(m.userId)}`, { email: m.email, displayName: m.displayName, role: m.role });
        if (r.status >= 300) throw ApplicationFailure.retryable(`the agent answered HTTP ${r.status} to PUT member ${m.userId}`, 'agent_members_failed');
      }
      for (const userId of diff.remove) {
        const r = await call('DELETE', `/internal/members/${encodeURIComponent(userId)}`);
        if (r.status >= 300 && r.status !== 404) throw ApplicationFailure.retryable(`the agent answered HTTP ${r.status} to DELETE member ${userId}`, 'agent_members_failed');
      }
      const after = memberList(await call('GET', '/internal/members'));
      if (!after) throw ApplicationFailure.retryable('the agent did not list its members after the push', 'agent_members_failed');
      return { supported: true, added: diff.added, changed: diff.changed, removed: diff.remove, members: after };
    },
  };
}
