/**
 * `tessera k8s scan` (docs/k8s-scan.md): reports agent pods given static credentials, with a
 * suggested Tessera replacement for each. The core (documents → objects → scan → report) is
 * pure; `api.ts` reads the same objects from a Kubernetes API server.
 */
export { parseDocuments, docName, MAX_INPUT_BYTES, MAX_DEPTH, MAX_YAML_ALIASES } from './documents.js';
export { addDocument, emptyObjects, sawKind, MAX_OBJECTS, type ClusterObjects } from './objects.js';
export { scanObjects, SEVERITIES, RULES, SYSTEM_NAMESPACES, type Finding, type ScanOptions, type ScanResult, type Severity } from './scan.js';
export { buildReport, tableRows, subjectOf, failsAt, TABLE_COLUMNS, REPORT_SCHEMA, type Report } from './report.js';
// api.ts (the Kubernetes client, heavy to load) is imported by its path, only when the API is read.
export type { ApiSource } from './api.js';
