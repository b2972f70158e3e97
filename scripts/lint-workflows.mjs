#!/usr/bin/env node
// Workflow code is replayed and must stay deterministic: it may import only
// @temporalio/workflow, pure contracts from core/contracts/, sibling workflow
// files (and their steps), and activity *types* (import type). Everything else
// is refused here. Date is allowed: the SDK's sandbox pins it to the workflow
// task's time on replay; timers must still go through sleep/condition.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../workflows');
const problems = [];
for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
  const src = readFileSync(path.join(dir, file), 'utf8');
  for (const m of src.matchAll(/^\s*import\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]/gms)) {
    const [, isType, spec] = m;
    if (isType) continue;
    const ok =
      spec === '@temporalio/workflow' ||
      spec.startsWith('../core/contracts/') ||
      (spec.startsWith('./') && (spec.endsWith('.workflow.ts') || spec.endsWith('.step.ts')));
    if (!ok) problems.push(`${file}: imports "${spec}" (workflows may import only @temporalio/workflow, core/contracts and activity types)`);
  }
  if (/\b(Math\.random|setTimeout|setInterval|process\.)\b/.test(src.replace(/\/\/.*$/gm, ''))) {
    problems.push(`${file}: uses a non-deterministic global (Math.random, setTimeout, setInterval or process)`);
  }
}
if (problems.length) {
  console.error(`workflow lint failed:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('workflow lint: ok');
