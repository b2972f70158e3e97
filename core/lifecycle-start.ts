import { WithStartWorkflowOperation } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { agentLifecycle } from '../workflows/agent-lifecycle.workflow.ts';
import type { HangarConfig } from './config.ts';
import { agentWorkflowId, CONTROL_TASK_QUEUE, SEARCH_ATTRIBUTES } from './contracts/agent.contract.ts';
import type { Agent } from './db.ts';

// Shared by the API (a user's start) and the rollout activities (an update to
// an agent whose lifecycle may not be running yet).

const AGENT_ID = defineSearchAttributeKey(SEARCH_ATTRIBUTES.agentId, SearchAttributeType.KEYWORD);
const OWNER_ID = defineSearchAttributeKey(SEARCH_ATTRIBUTES.ownerId, SearchAttributeType.KEYWORD);

/** How an agent's lifecycle is started if it is not running yet: one id per agent, so any number of callers share one. */
export function lifecycleStartOperation(agent: Agent, config: HangarConfig) {
  return new WithStartWorkflowOperation(agentLifecycle, {
    workflowId: agentWorkflowId(agent.id),
    taskQueue: CONTROL_TASK_QUEUE,
    workflowIdConflictPolicy: 'USE_EXISTING',
    args: [
      {
        agentId: agent.id,
        dockerHostId: agent.dockerHostId,
        alwaysOn: agent.ownerKind === 'system',
        settings: { restartDebounceMs: config.restartDebounceSec * 1000, healthTimeoutSec: config.agentStartTimeoutSec },
      },
    ],
    typedSearchAttributes: [
      { key: AGENT_ID, value: agent.id },
      { key: OWNER_ID, value: agent.ownerId },
    ],
    staticSummary: `Agent "${agent.name}" of ${agent.ownerKind} ${agent.ownerId}`,
  });
}

