import { isEncrypted, type Keyring } from '../crypto.ts';
import { asSystem, type Db } from '../db.ts';

/**
 * Re-encrypts every stored secret under the keyring's current key (it reads
 * with any of its keys). System work: row-level security must show every
 * tenant's secrets to re-encrypt them. One transaction: all or nothing.
 */
export function reencryptSecrets(db: Db, ring: Keyring) {
  return asSystem(db, async (tx) => {
    let providers = 0, agents = 0, settings = 0;
    for (const p of await tx.llmProvider.findMany({ where: { apiKey: { not: null } } })) {
      if (!isEncrypted(p.apiKey)) continue;
      await tx.llmProvider.update({ where: { id: p.id }, data: { apiKey: ring.encrypt(ring.decrypt(p.apiKey)) } });
      providers++;
    }
    for (const a of await tx.agent.findMany()) {
      await tx.agent.update({ where: { id: a.id }, data: { gatewayToken: ring.encrypt(ring.decrypt(a.gatewayToken)) } });
      agents++;
    }
    for (const s of await tx.systemConfig.findMany({ where: { encrypted: true } })) {
      await tx.systemConfig.update({ where: { key: s.key }, data: { value: ring.encrypt(ring.decrypt(s.value)) } });
      settings++;
    }
    return { providers, agents, settings };
  }, { timeoutMs: 120_000 });
}
