import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';
import { openApiDocument, renderMarkdown } from '../../scripts/api-docs.ts';

// The REST reference in docs/ is generated from the routes' own schemas; this
// fails when a route changes and `npm run docs:api` was not run.
describe('docs/api.md', () => {
  it('matches the OpenAPI document the routes publish', async () => {
    const doc = await openApiDocument();
    expect(await readFile(path.join(repoRoot, 'docs/api.md'), 'utf8'), 'run `npm run docs:api`').toBe(renderMarkdown(doc));
    expect(JSON.parse(await readFile(path.join(repoRoot, 'docs/openapi.json'), 'utf8')), 'run `npm run docs:api`').toEqual(JSON.parse(JSON.stringify(doc)));
  });
});
