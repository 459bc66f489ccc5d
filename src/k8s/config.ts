/**
 * The `kubernetes` section of tessera.yaml (docs/kubernetes.md): the injector webhook
 * (src/k8s/injector/config.ts) and the pod watch (src/k8s/pods/config.ts).
 */
import { z } from 'zod';
import { injectorConfigSchema } from './injector/config.js';
import { podsConfigSchema } from './pods/config.js';

export const kubernetesConfigSchema = z
  .object({
    injector: injectorConfigSchema.prefault({}),
  })
  .extend(podsConfigSchema.shape)
  .strict();

export type KubernetesConfig = z.output<typeof kubernetesConfigSchema>;
