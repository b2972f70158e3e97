import { describe, expect, it } from 'vitest';
import { demuxLogs } from '../../activities/docker.activities.ts';
import { parseConfig } from '../../core/config.ts';
import { buildOpenClawConfig, HANGAR_MANAGED_MARKER, openClawApi, workspaceFiles } from '../../core/services/openclaw-config.service.ts';

// The openclaw.json Hangar hands each agent. OpenClaw refuses unknown keys,
// so the shape is pinned here; openclaw.test.ts proves a real gateway takes it.
describe('openclaw.json', () => {
  const providers = [
    { name: 'work', type: 'openai', baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-work', apiType: 'openai-completions', models: [{ id: 'gpt-4o', contextWindow: 128000 }] },
    { name: 'claude', type: 'anthropic', baseUrl: 'https://api.anthropic.com/v1', apiKey: 'sk-ant', apiType: 'something-else', models: [{ id: 'sonnet', name: 'Sonnet' }] },
    { name: 'local', type: 'ollama', baseUrl: 'http://host.docker.internal:11434/v1', apiKey: null, apiType: null, models: [] },
  ];

  it('has the gateway, the providers, the model preference and nothing else', () => {
    const cfg = buildOpenClawConfig({ gatewayToken: 'tok', providers, primaryModel: 'claude/sonnet', fallbackModels: ['work/gpt-4o'] });
    expect(Object.keys(cfg).sort()).toEqual(['agents', 'gateway', 'logging', 'models', 'plugins']);
    expect(cfg.gateway).toEqual({
      mode: 'local',
      port: 18789,
      bind: 'lan',
      auth: { mode: 'token', token: 'tok' },
      http: { endpoints: { chatCompletions: { enabled: true } } },
    });
    expect(cfg.agents).toEqual({ defaults: { model: { primary: 'claude/sonnet', fallbacks: ['work/gpt-4o'] } } });
    expect(cfg.models.mode).toBe('replace');
    expect(cfg.models.providers.work).toEqual({
      baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-work', api: 'openai-completions', models: [{ id: 'gpt-4o', name: 'gpt-4o', contextWindow: 128000 }],
    });
    expect(cfg.models.providers.claude.api).toBe('anthropic-messages');
    expect(cfg.models.providers.local).toEqual({ baseUrl: 'http://host.docker.internal:11434/v1', api: 'openai-completions', models: [] });
    expect(cfg.plugins).toEqual({ allow: ['memory-core'] });
  });

  it('defaults the primary model to the preferred provider\'s first model, and omits it when there is none', () => {
    expect(buildOpenClawConfig({ gatewayToken: 't', providers, primaryModel: null, fallbackModels: [], preferredProvider: 'claude' }).agents.defaults)
      .toEqual({ model: { primary: 'claude/sonnet', fallbacks: [] } });
    expect(buildOpenClawConfig({ gatewayToken: 't', providers: [], primaryModel: null, fallbackModels: [] }).agents.defaults).toEqual({});
  });

  it('maps provider types to OpenClaw request adapters', () => {
    expect(openClawApi('anthropic', null)).toBe('anthropic-messages');
    expect(openClawApi('zai', null)).toBe('openai-completions');
    expect(openClawApi('custom', 'openai-responses')).toBe('openai-responses');
    expect(openClawApi('custom', 'made-up')).toBe('openai-completions');
  });

  it('carries the personality as a marked SOUL.md, and null without one', () => {
    expect(workspaceFiles('  Be brief.  ')).toEqual({ 'SOUL.md': `${HANGAR_MANAGED_MARKER}\n\nBe brief.\n` });
    expect(workspaceFiles(null)).toEqual({ 'SOUL.md': null });
    expect(workspaceFiles('   ')).toEqual({ 'SOUL.md': null });
  });
});

describe('agent runtime config', () => {
  it('defaults to OpenClaw with its own image, memory, start timeout and tmpfs', () => {
    const cfg = parseConfig({});
    expect(cfg.agentRuntime).toBe('openclaw');
    expect(cfg.agentImage).toBe('hangar/openclaw:latest');
    expect(cfg.agentMemoryMb).toBe(2048);
    expect(cfg.agentStartTimeoutSec).toBe(240);
    expect(cfg.agentTmpfsMb).toBe(64);
  });

  it('the reference runtime keeps the small defaults; explicit values win over either', () => {
    const ref = parseConfig({ HANGAR_AGENT_RUNTIME: 'reference' });
    expect([ref.agentImage, ref.agentMemoryMb, ref.agentStartTimeoutSec, ref.agentTmpfsMb]).toEqual(['hangar/agent:latest', 512, 120, 16]);
    const own = parseConfig({ HANGAR_AGENT_RUNTIME: 'openclaw', HANGAR_AGENT_MEMORY_MB: '3000', HANGAR_AGENT_IMAGE: 'me/claw:1' });
    expect([own.agentImage, own.agentMemoryMb]).toEqual(['me/claw:1', 3000]);
    expect(() => parseConfig({ HANGAR_AGENT_RUNTIME: 'docker' })).toThrow(/HANGAR_AGENT_RUNTIME: must be one of openclaw, reference/);
  });
});

describe('container logs', () => {
  it('strips Docker\'s stream frame headers, whatever bytes the lengths hold', () => {
    const frame = (stream: number, text: string) => {
      const body = Buffer.from(text);
      const head = Buffer.alloc(8);
      head[0] = stream;
      head.writeUInt32BE(body.length, 4);
      return Buffer.concat([head, body]);
    };
    // 100 and 116 are 'd' and 't': a naive strip of control bytes leaves them in.
    const buf = Buffer.concat([frame(1, 'x'.repeat(100)), frame(2, `Gateway failed to start: Invalid config${' '.repeat(77)}`)]);
    expect(demuxLogs(buf)).toBe(`${'x'.repeat(100)}Gateway failed to start: Invalid config${' '.repeat(77)}`);
    expect(demuxLogs(Buffer.from('plain text'))).toBe('plain text');
  });
});
