import type { WorkspaceRole } from '../core/contracts/workspace.contract.ts';
import type { User } from '../core/db.ts';

/**
 * Who is talking, as the chat proxy tells the agent. Built from scratch for
 * every request from the signed-in user, so nothing a caller sends under
 * x-hangar-user-* ever reaches an agent. Values that may hold any character
 * are percent-encoded. The role is the speaker's role in the workspace that
 * owns the agent (absent for a user's own agent).
 *
 * OpenClaw reads none of these (with its gateway in token mode, which Hangar
 * uses, it has no trusted-proxy identity: the two are mutually exclusive); it
 * tells speakers apart by the per-user session key. The reference agent
 * passes them to the model (docker/agent/server.mjs).
 */
export function speakerHeaders(user: Pick<User, 'id' | 'displayName' | 'email'>, role: WorkspaceRole | null): Record<string, string> {
  return {
    'x-hangar-user-id': user.id,
    'x-hangar-user-name': encodeURIComponent(user.displayName),
    ...(user.email ? { 'x-hangar-user-email': encodeURIComponent(user.email) } : {}),
    ...(role ? { 'x-hangar-user-role': role } : {}),
  };
}
