/** `kubernetes.watch_pods` and the API connection (docs/k8s-pods.md). Filled in by issue 12. */
import { z } from 'zod';

export const podsConfigSchema = z.object({
  watch_pods: z.boolean().default(false),
});
