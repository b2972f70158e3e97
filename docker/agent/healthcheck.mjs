// Docker's HEALTHCHECK (so `docker ps` shows health): asks this container's
// own server the question Hangar asks, /readyz, then /health when /readyz is
// not there (404) or not open (401). Exit 0 healthy, 1 not. Node built-ins
// only: the base image may have no shell and no curl.
const port = Number(process.env.PORT || 18789);
const ask = (path) => fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(4000) });
try {
  const ready = await ask('/readyz');
  if (ready.ok) process.exit(0);
  if (ready.status !== 404 && ready.status !== 401) process.exit(1);
  process.exit((await ask('/health')).ok ? 0 : 1);
} catch {
  process.exit(1);
}
