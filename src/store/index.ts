export type { Store, SqlExecutor, SqlValue, Row } from './port.js';
export { MIGRATIONS } from './migrations.js';
