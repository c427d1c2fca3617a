import type { z } from 'zod';
import type { StageSpec } from '../../lib/index.ts';

export declare const crashSpec: StageSpec<z.ZodBoolean>;
