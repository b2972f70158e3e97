import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The checkout's root (where package.json is), the same whether this file
 * runs as TypeScript (core/runtime/) or compiled (dist/core/runtime/): files
 * that are not code (web/, prisma/migrations/, docker/) are read from there.
 */
export const repoRoot = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json')) && path.basename(dir) !== 'dist') return dir;
    dir = path.dirname(dir);
  }
  throw new Error('Hangar: package.json not found above core/runtime');
})();

/** Whether this process runs the compiled build (dist/) rather than the TypeScript sources. */
export const runsCompiled = import.meta.url.endsWith('.js');
