export type { Store, SqlExecutor, SqlValue, Row, LeaderLock } from './port.js';
export { MIGRATIONS } from './migrations.js';
