/**
 * `tessera k8s …` (docs/kubernetes.md): `manifests` prints the objects that deploy Tessera,
 * `scan` reports agents given static credentials. Each subcommand lives in its own module.
 */
import type { Command } from 'commander';

export function registerK8sCommand(program: Command): Command {
  return program.command('k8s').description('Kubernetes: manifests that deploy Tessera, a scan for static secrets given to agents (docs/kubernetes.md)');
}
