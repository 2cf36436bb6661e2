import { DataSource } from 'typeorm';
import { InitialSchema1763870400000 } from './migrations/1763870400000-initial-schema';
import { AtmChannel1763874000000 } from './migrations/1763874000000-atm-channel';
import { ActivationResults1763877600000 } from './migrations/1763877600000-activation-results';
import { PendingReversals1763881200000 } from './migrations/1763881200000-pending-reversals';
import { ActivationResultOnce1763884800000 } from './migrations/1763884800000-activation-result-once';
import { RegistryManagement1763906400000 } from './migrations/1763906400000-registry-management';
import { ActiveActive1764000000001 } from './migrations/1764000000001-active-active';
import { RefusedTraffic1764100000000 } from './migrations/1764100000000-refused-traffic';
import { LocksThenFacts1764200000000 } from './migrations/1764200000000-locks-then-facts';
import { MacKeyNext1764300000000 } from './migrations/1764300000000-mac-key-next';
import { TlsClients1764300000001 } from './migrations/1764300000001-tls-clients';

export const MIGRATIONS = [InitialSchema1763870400000, AtmChannel1763874000000, ActivationResults1763877600000, PendingReversals1763881200000, ActivationResultOnce1763884800000, RegistryManagement1763906400000, ActiveActive1764000000001, RefusedTraffic1764100000000, LocksThenFacts1764200000000, MacKeyNext1764300000000, TlsClients1764300000001];

/**
 * The schema is the migrations', written by hand; the repositories are plain
 * SQL on it (docs/architecture.md). No entities, so nothing can drift from
 * the schema, and `synchronize` stays off.
 */
export function createDataSource(url: string, poolSize: number): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    migrations: MIGRATIONS,
    migrationsTableName: 'schema_migration',
    synchronize: false,
    logging: false,
    extra: { max: poolSize, connectionTimeoutMillis: 3000, idleTimeoutMillis: 30000, application_name: 'absher-bank-gateway' },
  });
}

