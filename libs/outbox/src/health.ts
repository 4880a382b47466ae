/**
 * nest-outbox/health: a @nestjs/terminus indicator for the outbox. A separate entry point, so
 * `import … from 'nest-outbox'` never loads @nestjs/terminus; install it to use this one.
 */

export { OutboxHealthModule } from './ops/health/outbox-health.module.js';
export { OutboxHealthIndicator } from './ops/health/outbox-health.indicator.js';
export type { OutboxHealthOptions, OutboxHealthThresholds } from './ops/health/health.options.js';
export type { OutboxHealthDetails } from './ops/health/health.figures.js';
