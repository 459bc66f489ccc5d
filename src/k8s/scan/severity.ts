/** Finding severities, lowest first (docs/k8s-scan.md "Rules and severities"). Pure, no imports: the CLI loads it at start. */
export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const severityRank = (s: Severity): number => SEVERITIES.indexOf(s);
