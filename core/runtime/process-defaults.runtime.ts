/**
 * Environment the API and worker processes start with unless the operator
 * sets the variable themselves (npm start's supervisor, the bench's production
 * processes; the container image sets the same in its Dockerfile).
 *
 * MALLOC_ARENA_MAX=2: glibc gives every thread that allocates its own malloc
 * arena (up to 8 per core), and each keeps the memory its thread freed. The
 * worker runs Temporal's Rust core (a thread pool), a workflow thread and
 * libuv's pool: with 1,000 lifecycles alive the bench found 173 MB of its
 * 511 MB RSS in nine such arenas. Two arenas held 37 MB, and the worker came
 * to 439 MB, with no change in the fleet bench's timings.
 */
export const PROCESS_DEFAULTS: Readonly<Record<string, string>> = Object.freeze({ MALLOC_ARENA_MAX: '2' });

/** `env` with PROCESS_DEFAULTS under it: what the operator set wins. */
export const withProcessDefaults = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({ ...PROCESS_DEFAULTS, ...env });
