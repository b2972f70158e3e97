// The members of a workspace agent's workspace, as Hangar's memberProvisioning
// workflow pushes them (GET/PUT/DELETE /internal/members, gateway token as
// bearer). Kept in the agent's own volume, so the list survives restarts and
// image updates. Every write is idempotent (PUT sets, DELETE of an absent
// member is fine) and atomic (a temporary file renamed over the old one).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const ROLES = ['owner', 'admin', 'member', 'viewer'];
const USER_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_MEMBERS = 10_000;

export class MemberInputError extends Error {}

export async function createMembers(dataDir, log = () => undefined) {
  const file = path.join(dataDir, 'members.json');
  let members = new Map();
  try {
    const stored = JSON.parse(await readFile(file, 'utf8'));
    for (const m of Array.isArray(stored?.members) ? stored.members : []) if (USER_ID.test(m?.userId ?? '')) members.set(m.userId, m);
  } catch (err) {
    if (err.code !== 'ENOENT') log('members.json unreadable; starting with none (Hangar pushes them again)', { error: err.code ?? err.message });
  }
  // One write at a time, in order.
  let queue = Promise.resolve();
  const persist = () => {
    const snapshot = JSON.stringify({ members: [...members.values()] });
    queue = queue.then(async () => {
      await mkdir(dataDir, { recursive: true });
      const tmp = `${file}.tmp`;
      await writeFile(tmp, snapshot);
      await rename(tmp, file);
    });
    return queue;
  };

  return {
    list: () => [...members.values()].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0)),
    get: (userId) => members.get(userId),

    async put(userId, body) {
      if (!USER_ID.test(userId)) throw new MemberInputError('userId must be 1-64 characters of A-Z a-z 0-9 _ -');
      if (!body || typeof body !== 'object' || !ROLES.includes(body.role)) throw new MemberInputError(`role must be one of ${ROLES.join(', ')}`);
      const email = typeof body.email === 'string' && body.email.length <= 254 ? body.email : null;
      const displayName = typeof body.displayName === 'string' && body.displayName.length <= 200 ? body.displayName : userId;
      if (!members.has(userId) && members.size >= MAX_MEMBERS) throw new MemberInputError(`at most ${MAX_MEMBERS} members`);
      const member = { userId, email, displayName, role: body.role, updatedAt: new Date().toISOString() };
      members.set(userId, member);
      await persist();
      return member;
    },

    async remove(userId) {
      if (!members.delete(userId)) return false;
      await persist();
      return true;
    },
  };
}
