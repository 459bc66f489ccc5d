/** `kubernetes.injector` (docs/k8s-injector.md). Owned by the injector; filled in by issue 12. */
import { z } from 'zod';

export const injectorConfigSchema = z.object({}).strict();
