/**
 * nest-outbox/dashboard: the outbox page and Bull Board, behind the app's authorisation. A separate
 * entry point, so `import … from 'nest-outbox'` never loads Bull Board; install @bull-board/api and
 * @bull-board/express to use this one.
 */

export { OutboxDashboardModule } from './ops/dashboard/outbox-dashboard.module.js';
export type { OutboxDashboardOptions, DashboardRequest } from './ops/dashboard/dashboard.options.js';
