export { createScrubber, countHits, DEFAULT_MIN_SECRET_LENGTH, MIN_SECRET_LENGTH_FLOOR, MAX_DEPTH } from './scrubber.js';
export type { Scrubber, ScrubberOptions, ScrubHit, SecretInput, SecretForm, ShapeName } from './scrubber.js';
export type { BaseForm, OuterForm } from './forms.js';
export { SHAPE_NAMES } from './shapes.js';
export { formsOf, base64Core } from './forms.js';
export { scrubToolResult, noticeItem, type ScrubbedResult } from './result.js';
