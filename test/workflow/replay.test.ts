import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import * as workflows from '../../workflows/index.ts';
import { historiesDir, loadHistory, quietRuntime, workflowBundle } from '../support/workflow-tier.harness.ts';

// Replays the recorded histories (test/workflow/histories/, written by
// `npm run histories:record`) against today's workflow code. A change that
// would break a workflow already running in production (a command added,
// removed or reordered without `patched()`) fails here, not in production.

interface Recorded {
  name: string;
  workflowType: string;
  history: ReturnType<typeof loadHistory>;
}

function recorded(): Recorded[] {
  return readdirSync(historiesDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const history = loadHistory(path.join(historiesDir, f));
      const workflowType = history.events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?';
      return { name: f.replace(/\.json$/, ''), workflowType, history };
    });
}

describe('replay of recorded histories', () => {
  const histories = recorded();

  it('has at least one history of every workflow type the worker runs', () => {
    const types = new Set(histories.map((h) => h.workflowType));
    expect(Object.keys(workflows).filter((t) => !types.has(t))).toEqual([]);
  });

  it('replays every history without a non-determinism error', async () => {
    quietRuntime();
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: workflowBundle(), replayName: 'hangar-replay' },
      histories.map((h) => ({ workflowId: h.name, history: h.history })),
    )) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toBe(histories.length);
  });
});
