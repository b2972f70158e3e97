import type Docker from 'dockerode';
import tar from 'tar-stream';

// Agent image variants for rollout tests, built locally from the reference
// image (no registry): a new label is enough for a new digest.

/** Builds TAG from a Dockerfile given as text (no context); resolves with the image id. */
export async function buildImageFromDockerfile(docker: Docker, tag: string, dockerfile: string): Promise<string> {
  const pack = tar.pack();
  pack.entry({ name: 'Dockerfile' }, dockerfile);
  pack.finalize();
  const stream = await docker.buildImage(pack as unknown as NodeJS.ReadableStream, { t: tag, rm: true, forcerm: true });
  const out = await new Promise<{ error?: string }[]>((resolve, reject) =>
    docker.modem.followProgress(stream, (err, res) => (err ? reject(err) : resolve(res as { error?: string }[]))),
  );
  const failed = out.find((o) => o.error);
  if (failed) throw new Error(`docker build ${tag}: ${failed.error}`);
  return (await docker.getImage(tag).inspect()).Id;
}

/** Same code, new digest and changelog. */
export function buildVersion(docker: Docker, base: string, tag: string, version: string, changelog: string): Promise<string> {
  return buildImageFromDockerfile(docker, tag, `FROM ${base}\nLABEL org.opencontainers.image.version="${version}" dev.hangar.changelog="${changelog}"\n`);
}

/** An image that writes over /data at boot and then dies: its health check never passes. */
export function buildScribbler(docker: Docker, base: string, tag: string): Promise<string> {
  const script = [
    "const fs=require('fs');",
    "for (const f of fs.readdirSync('/data')) { try { fs.writeFileSync('/data/'+f, 'scribbled'); } catch {} }",
    "fs.writeFileSync('/data/SCRIBBLED', 'v3 was here');",
    "console.log('scribbled over /data');",
    'process.exit(3);',
  ].join(' ');
  return buildImageFromDockerfile(docker, tag, `FROM ${base}\nLABEL org.opencontainers.image.version="3.0.0-bad" dev.hangar.changelog="v3 scribbles"\nCMD ["node", "-e", ${JSON.stringify(script)}]\n`);
}

/** Every file under a container's /data: name → content hash, mode and owner (what "byte-identical" means). */
export async function volumeFingerprint(docker: Docker, containerName: string): Promise<Record<string, string>> {
  const { createHash } = await import('node:crypto');
  const stream = (await docker.getContainer(containerName).getArchive({ path: '/data' })) as NodeJS.ReadableStream;
  const extract = tar.extract();
  const out: Record<string, string> = {};
  extract.on('entry', (h, s, next) => {
    const hash = createHash('sha256');
    s.on('data', (d: unknown) => hash.update(d as Buffer));
    s.on('end', () => {
      out[h.name] = `${h.type} ${h.mode?.toString(8)} ${h.uid}:${h.gid} ${h.type === 'file' ? hash.digest('hex') : ''}`;
      next();
    });
    s.resume();
  });
  stream.pipe(extract);
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  return out;
}
