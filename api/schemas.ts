import { Type, type TSchema } from 'typebox';

// Shared pieces of the REST contract (API.md).
export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    details: Type.Optional(Type.Unknown()),
  }),
});

/** Standard error responses every route may give. */
export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorBody]));

export const Id = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });
export const IdParams = Type.Object({ id: Id }, { additionalProperties: false });

export const strict = <T extends Record<string, TSchema>>(props: T) => Type.Object(props, { additionalProperties: false });

export const PublicUser = Type.Object({
  id: Type.String(),
  email: Type.Union([Type.String(), Type.Null()]),
  username: Type.Union([Type.String(), Type.Null()]),
  displayName: Type.String(),
  role: Type.String(),
  authSource: Type.String(),
});

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
export { Nullable };

export const AgentView = Type.Object({
  id: Type.String(),
  status: Type.String(),
  statusReason: Nullable(Type.String()),
  image: Type.String(),
  imageDigest: Nullable(Type.String()),
  lastActiveAt: Nullable(Type.String()),
  idleTimeoutMin: Type.Integer(),
  updateAvailable: Type.Boolean(),
  workflowId: Type.String(),
  temporalUrl: Type.Optional(Type.String()),
});
