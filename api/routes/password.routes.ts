import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { UnauthorizedError } from '../../core/errors.ts';
import { SESSION_COOKIE } from '../auth.ts';
import { errors, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// Passwords: a signed-in user changes their own (the current one first; every
// other session of theirs ends), and anyone holding an admin's reset link
// chooses a new one (one-time, expiring). The admin's side, sending the link,
// is in admin-users.routes.ts; the console's is `hangar admin reset-password`.

const NewPassword = Type.String({ minLength: 12, maxLength: 1024 });

export async function passwordRoutes(fastify: FastifyInstance, { core, auth, loginThrottle }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.post('/api/me/password', {
    preHandler: auth.requireUser,
    schema: {
      body: strict({ currentPassword: Type.String({ minLength: 1, maxLength: 1024 }), newPassword: NewPassword }),
      response: { 204: Type.Null(), ...errors(400, 401, 403, 409, 429) },
    },
  }, async (request, reply) => {
    const user = request.user!;
    // Guessing the current password from a stolen session is throttled like a sign-in.
    const account = `password:${user.id}`;
    loginThrottle.check(account, request.ip);
    try {
      await core.users.changePassword(user.id, request.body.currentPassword, request.body.newPassword, request.authVia === 'session' ? request.cookies[SESSION_COOKIE] : undefined);
    } catch (err) {
      if (err instanceof UnauthorizedError) loginThrottle.fail(account, request.ip);
      throw err;
    }
    loginThrottle.succeed(account, request.ip);
    await core.audit.record({ actorId: user.id, action: 'user.password_change', target: `user:${user.id}` });
    return reply.code(204).send(null);
  });

  app.post('/api/auth/password-reset', {
    schema: {
      body: strict({ token: Type.String({ minLength: 20, maxLength: 200, pattern: '^[A-Za-z0-9_-]+$' }), newPassword: NewPassword }),
      response: { 204: Type.Null(), ...errors(400, 401, 429) },
    },
  }, async (request, reply) => {
    // Guessing link tokens is throttled per address like a sign-in (and hopeless: 256 bits).
    loginThrottle.check('password-reset', request.ip);
    let user;
    try {
      user = await core.passwordResets.redeem(request.body.token, request.body.newPassword);
    } catch (err) {
      if (err instanceof UnauthorizedError) loginThrottle.fail('password-reset', request.ip);
      throw err;
    }
    await core.audit.record({ actorId: user.id, action: 'user.password_reset', target: `user:${user.id}` });
    return reply.code(204).send(null);
  });
}
