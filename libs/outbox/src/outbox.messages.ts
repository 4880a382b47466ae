import { logLine } from './util/log-line.js';
import { redactUrl } from './util/redact.js';

/**
 * The long texts the library says: what happened and what to do. Kept here, as small functions,
 * so the code that throws or logs stays readable and every message can be read in one place.
 */

/** A value as an error message may show it: strings quoted, credentials in URLs hidden, objects unnamed. */
export function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(redactUrl(value));
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

// Options

export const invalidOption = (name: string, expected: string, got: unknown) =>
  `Invalid nest-outbox option "${name}": expected ${expected}, got ${shown(got)}.`;

export const serviceMissing = () =>
  'OutboxModule needs the option "service": the name of this service, e.g. { service: \'orders\' }. ' +
  'It names the queue its handlers consume and the source of the messages it writes.';

export const optionsNotAnObject = (got: unknown) => `nest-outbox options must be an object, got ${shown(got)}.`;

export const sameTableNames = (name: string) =>
  `Invalid nest-outbox options "tables.outbox" and "tables.inbox": they must differ, both are "${name}".`;

export const keepCompletedBelowLease = (seconds: number, leaseMs: number) =>
  `Invalid nest-outbox option "keepCompletedSeconds": ${seconds}s is shorter than relay.leaseMs (${leaseMs} ms); ` +
  'completed jobs must outlive the lease so a re-dispatched message is recognised.';

export const inboxRetentionBelowRetryWindow = (
  seconds: number,
  windowSeconds: number,
  attempts: number,
  type: string,
  delayMs: number,
) =>
  `Invalid nest-outbox option "retention.inboxAfterSeconds": ${seconds}s is not longer than the retry window ` +
  `(${windowSeconds}s for ${attempts} attempts with ${type} backoff of ${delayMs} ms); ` +
  'an inbox row removed before the last retry would let a handler run twice.';

export const asyncOptionsWithoutSource = () =>
  'OutboxModule.forRootAsync() needs one of useFactory, useClass or useExisting.';

// Boot checks

export const entitiesNotRegistered = () =>
  'MikroORM does not know the outbox entities: ' +
  "add `...outboxEntities()` (from 'nest-outbox') to the `entities` of your MikroORM config.";

export const entitiesDisagree = (ormTable: string, moduleTable: string) =>
  `MikroORM maps the outbox to ${ormTable} but OutboxModule uses ${moduleTable}: ` +
  'pass the same `tables` to outboxEntities() and OutboxModule.';

export const databaseUnreachableAtBoot = (reason: string) =>
  `nest-outbox cannot reach PostgreSQL to check its tables: ${reason}. Start the database and boot again.`;

export const tablesMissing = (tables: string[]) =>
  `Table(s) ${tables.join(', ')} do not exist. Run the outbox migration (add ...outboxMigrations() to MikroORM's ` +
  'migrations.migrationsList and run it) or apply outboxSchemaSql() before the application starts.';

export const cqrsUnsupported = () =>
  'nest-outbox cannot find the event list of @nestjs/cqrs AggregateRoot; this @nestjs/cqrs version is not supported.';

// Handlers

export const handlerRequestScoped = (handler: string) =>
  `Handler ${handler} is request-scoped; outbox handlers run outside requests and must be singletons.`;

export const handlerCaughtFailedStatement = (handler: string, messageId: string) =>
  `Handler ${handler} returned for message ${messageId} after a SQL statement of its transaction failed ` +
  '(the error was caught): PostgreSQL aborted the transaction, so nothing the handler wrote, nor its ' +
  'inbox mark, can commit (its COMMIT rolls back without an error). The run fails and is retried. ' +
  'Let the error propagate, or run the statement that may fail in em.transactional(), which gives it ' +
  'a savepoint of its own.';

export const handlerNameTaken = (handler: string) =>
  `Two handler classes are named ${handler}; the name is the inbox key, so rename one of them.`;

export const eventTypeTaken = (type: string, first: string, second: string) =>
  `Event classes ${first} and ${second} share the type name "${type}"; ` +
  "give one a distinct name with @OutboxEvent('...').";

export const invalidEventTypeName = (name: unknown) =>
  `@OutboxEvent name ${shown(name)} is invalid: use 1-200 letters, digits or "_.-/@".`;

export const invalidEventVersion = (name: string, version: unknown) =>
  `@OutboxEvent "${name}" has version ${shown(version)}: use an integer from 1 to 10000 (absent means 1).`;

export const upcasterMissing = (name: string, from: number, version: number) =>
  `@OutboxEvent "${name}" is at version ${version} but has no upcaster from version ${from}: ` +
  `add upcast: { ${from}: (payload) => ... } returning the version-${from + 1} payload, ` +
  'so messages written at older versions stay readable.';

export const upcasterUnexpected = (name: string, key: string, version: number) =>
  `@OutboxEvent "${name}" has an upcaster under ${JSON.stringify(key)}: at version ${version}, ` +
  `upcast takes functions keyed 1 to ${version - 1}, each lifting a payload one version.`;

// Capture

export const publishOutsideContext = () =>
  'OutboxService.publish() needs an EntityManager context to write the message with: ' +
  'call it inside em.transactional(), ' +
  'an HTTP request (MikroORM registerRequestContext) or a @CreateRequestContext() method. Nothing was written.';

export const eventNotAnObject = (got: unknown) =>
  `An outbox event must be an object (an instance of an event class), got ${got === null ? 'null' : typeof got}.`;

export const eventNotSerialisable = (type: string, reason: string) =>
  `Event ${type} cannot be serialised to JSON (${reason}). ` +
  'Use plain data in events (strings, numbers, booleans, arrays, objects; no BigInt, no cycles). Nothing was written.';

export const payloadKeyForbidden = (type: string, key: string, path: string) =>
  `Event ${type} has a field named "${key}" (at ${path}); ` +
  'the keys __proto__, constructor and prototype are refused, because a reader could not rebuild them safely. ' +
  'Rename the field. Nothing was written.';

export const eventBusOutsideContext = () =>
  'EventBus.publish() writes through the outbox, and needs an EntityManager context to write the message with: ' +
  'call it inside em.transactional(), an HTTP request (MikroORM registerRequestContext) or a ' +
  '@CreateRequestContext() method, or raise the event on an aggregate with apply(). ' +
  'To keep @nestjs/cqrs in-memory publishing instead, set OutboxModule.forRoot({ eventBus: false }). ' +
  'Nothing was published.';

export const eventNotAJsonObject = (type: string, text: string | undefined) =>
  `Event ${type} must serialise to a JSON object, got ${text === undefined ? 'nothing' : text.slice(0, 40)}. ` +
  'Nothing was written.';

export const messageTooLarge = (type: string, bytes: number, maxBytes: number) =>
  `Event ${type} is ${bytes} bytes of JSON with its headers, ` +
  `over the ${maxBytes}-byte limit (option maxPayloadBytes). ` +
  'Store large data elsewhere and put its reference in the event. Nothing was written.';

export const headersNotAnObject = (type: string) =>
  `Headers of ${type} must be an object of string values. Nothing was written.`;

export const headerNameForbidden = (type: string, name: string) =>
  `Header name "${name}" of ${type} is not allowed. Nothing was written.`;

export const headerNotAString = (type: string, name: string, value: unknown) =>
  `Header "${name}" of ${type} must be a string, got ${value === null ? 'null' : typeof value}. Nothing was written.`;

export const invalidDelay = (type: string, delay: unknown) =>
  `Delay of ${type} must be a non-negative integer of milliseconds, got ${String(delay)}. Nothing was written.`;

export const flushRolledBackAfterRows = () =>
  'The transaction was rolled back instead of committed: a statement in it failed (and its error was ' +
  'caught) after the outbox rows were written, so neither its changes nor its outbox rows were saved. ' +
  'Let the error propagate, or run the statement in a savepoint (em.transactional inside the flush).';

export const silentlyRolledBack = () =>
  'PostgreSQL answered COMMIT with ROLLBACK for a transaction that wrote outbox messages: a statement in it ' +
  'failed and its error was caught, so nothing the transaction wrote was saved, and its messages are not ' +
  'sent. Let the error propagate, or run the statement in a savepoint (em.transactional inside).';

export const unseenCommit = () => "the answer to its transaction's COMMIT was not seen; a relay sends it if it exists";

// Reading messages

export const payloadUnreadable = (type: string, reason: string) => `Payload of ${type} cannot be read: ${reason}.`;

export const payloadRejectedByReviver = (type: string, reason: string) =>
  `Payload of ${type} was rejected by its revive function: ${reason}.`;

export const storedVersionInvalid = (value: unknown) =>
  `its headers carry version ${shown(value)}, not a positive integer`;

export const upcasterFailed = (type: string, from: number, reason: string) =>
  `Payload of ${type} could not be lifted from version ${from} to ${from + 1}: the upcaster threw: ${reason}.`;

export const upcasterNotAnObject = (type: string, from: number) =>
  `Payload of ${type} could not be lifted from version ${from} to ${from + 1}: the upcaster returned no object.`;

export const versionAhead = (type: string, stored: number, known: number) =>
  `Message of ${type} was written at version ${stored}, but this process knows it up to version ${known}: ` +
  'a newer build wrote it. It is handed back for a process that knows this version; ' +
  `deploy the class at version ${stored} (with its upcasters) here.`;

export const unknownEventType = (type: string, messageId: string) =>
  `Unknown event type "${type}" (message ${messageId}): no @EventsHandler in this process handles it. ` +
  'Register a handler for it, or name its class with @OutboxEvent if it was renamed.';

export const notAnOutboxJob = (jobId: string | undefined) =>
  `Job ${jobId} is not an outbox message (expected type, payload text and headers with a message id); ` +
  'only the outbox (a relay, or a process sending its rows on commit) should add jobs to this queue.';

export const stillFailing = (messageId: string, handlers: string[]) =>
  `Message ${messageId} was retried for some handlers only; ${handlers.join(', ')} still failed before, ` +
  'so it stays a dead letter for them. Retry it for them too, or discard them.';

export const handlersNeverCame = (type: string, messageId: string, missing: string[], waitedMs: number, why?: string) =>
  `Message ${messageId} (${type}) needs handler(s) ${missing.join(', ')}, which this service registered, ` +
  (why ? `and ${why.replace(/\.$/, '')}; ` : '') +
  `but no process that took it in ${Math.round(waitedMs / 1000)} s had them (worker.waitForHandlersMs). ` +
  'Deploy a build that has them and retry the dead letter, or retire them (retiredHandlers) and discard it.';

export const waitingForHandlers = (
  type: string,
  messageId: string,
  missing: string[],
  delayMs: number,
  who: { service: string; process: string; version: string },
  why?: string,
) =>
  `Message ${messageId} (${type}) needs handler(s) ${missing.join(', ')} that this process ` +
  `(service ${who.service}, process ${who.process}, version ${who.version}) ` +
  (why ? `cannot run (${why.replace(/\.$/, '')})` : 'does not have (an older or newer build?)') +
  `; handed back for another process, again in ${delayMs} ms, no attempt spent.`;

// Relay, worker and retention at run time

export const relayOutage = (service: string, reason: string, maxBackoffMs: number) =>
  logLine({
    event: 'outbox.relay.outage',
    service,
    error: reason,
    msg:
      'Relay cannot move outbox rows. Rows stay pending and nothing is lost; ' +
      `retrying with backoff up to ${maxBackoffMs} ms. Check Redis and PostgreSQL; this is logged once per outage.`,
  });

export const noRegistry = (service: string) =>
  `No consuming service has registered its handlers in Redis under this prefix yet (or Redis lost them): ` +
  `the outbox rows of ${service} stay pending until one does. Consumers register at boot and every few seconds.`;

export const relayRecovered = (seconds: string) => `Relay recovered after ${seconds} s; pending rows are moving again.`;

export const dispatchOnCommitOutage = (service: string, reason: string) =>
  logLine({
    event: 'outbox.dispatch_on_commit.outage',
    service,
    error: reason,
    msg:
      'Cannot enqueue or mark committed outbox rows right after their commit (relay.dispatchOnCommit). ' +
      'Rows not enqueued are handed to the relays, which send them once Redis and PostgreSQL answer; rows ' +
      'enqueued but not marked are sent again by a relay once their lease runs out (the repeated job is ' +
      'dropped, the inbox keeps effects once). Nothing is lost. This is logged once per outage.',
  });

export const dispatchOnCommitRecovered = (seconds: string) =>
  `Committed outbox rows are enqueued right after their commit again, after ${seconds} s.`;

export const addBulkTimedOut = (timeoutMs: number) => `BullMQ addBulk did not answer within ${timeoutMs} ms`;

export const databaseOutage = (service: string, reason: string) =>
  logLine({
    event: 'outbox.worker.database_outage',
    service,
    error: reason,
    msg: 'PostgreSQL is unreachable; jobs wait in Redis without spending attempts. Logged once per outage.',
  });

export const workerRedisError = (service: string, reason: string) =>
  logLine({
    event: 'outbox.worker.redis_error',
    service,
    error: reason,
    msg: 'Jobs wait in Redis; the worker reconnects by itself. Logged once until the error changes.',
  });

export const workerStopped = (service: string, reason: string) =>
  logLine({ event: 'outbox.worker.stopped', service, error: reason });

// Failures of one message: one logfmt line each, for log pipelines (fields, not prose)

export interface HandlerFailure {
  service: string;
  messageId: string;
  type: string;
  /** Absent when the run failed outside any handler (the message as a whole). */
  handler?: string;
  /** The attempt that failed (1 for the first delivery). */
  attempt: number;
  maxAttempts: number;
  /** `retry`: BullMQ runs it again after a backoff; `dead-letter`: this was the last attempt. */
  next: 'retry' | 'dead-letter';
  error: string;
}

export const handlerFailedLine = (failure: HandlerFailure) =>
  logLine({
    event: failure.handler ? 'outbox.handler.failed' : 'outbox.message.failed',
    service: failure.service,
    message_id: failure.messageId,
    type: failure.type,
    handler: failure.handler,
    attempt: failure.attempt,
    max_attempts: failure.maxAttempts,
    next: failure.next,
    error: failure.error,
  });

export interface GivenUp {
  service: string;
  messageId: string;
  type: string;
  reason: string;
  attempts: number;
  process: string;
  version: string;
  error: string;
}

export const deadLetterLine = (letter: GivenUp) =>
  logLine({
    event: 'outbox.dead_letter',
    service: letter.service,
    message_id: letter.messageId,
    type: letter.type,
    reason: letter.reason,
    attempts: letter.attempts,
    process: letter.process,
    version: letter.version,
    error: letter.error,
  });

export const enqueueRefusedLine = (
  service: string,
  rows: ReadonlyArray<{ id: string; type: string }>,
  maxAttempts: number,
  error: string,
) =>
  logLine({
    event: 'outbox.relay.enqueue_refused',
    service,
    ...(rows.length === 1 ? { message_id: rows[0].id, type: rows[0].type } : { rows: rows.length }),
    max_attempts: maxAttempts,
    error,
    msg:
      rows.length === 1
        ? 'Redis refused this message; it spends an attempt and is tried again.'
        : 'Redis refused the batch; its rows are handed back and tried one at a time.',
  });

export const databaseRecovered = (seconds: string) =>
  `PostgreSQL answers again after ${seconds} s; handlers are running.`;

export const retentionOutage = (reason: string, intervalMs: number) =>
  `Retention cleanup failed (${reason}). Old outbox and inbox rows stay until it succeeds; ` +
  `trying again every ${intervalMs} ms. Check PostgreSQL and Redis; this is logged once per outage.`;

export const retentionRecovered = (seconds: string) => `Retention cleanup recovered after ${seconds} s.`;

export const queueClosed = () => 'The outbox queue is closed: the application is shutting down.';

export const shutdownOutOfTime = (timeoutMs: number, released: number) =>
  `Shutdown took longer than shutdownTimeoutMs (${timeoutMs} ms): released ${released} claimed row(s); ` +
  'active handler runs were ended (their transactions roll back) and their jobs will run again elsewhere.';

export const handlerAbortedAtShutdown = (timeoutMs: number) =>
  `the application shut down after waiting shutdownTimeoutMs (${timeoutMs} ms)`;

// Admin calls

export const invalidQueryCount = (name: string, max: number, got: unknown) =>
  `Dead-letter query "${name}" must be an integer from 0 to ${max}, got ${shown(got)}.`;

export const notAFailedHandler = (messageId: string, handler: string, failing: string[]) =>
  `Dead letter ${messageId} has no failing handler ${JSON.stringify(handler)}; ` +
  `its failing handlers are ${failing.length > 0 ? failing.join(', ') : 'none (the message could not be read)'}.`;

export const invalidReplay = (reason: string) => `Invalid replay request: ${reason}. Nothing was delivered.`;

export const keyNotHeld = (handler: string, source: string, key: string) =>
  `Key ${JSON.stringify(key)} of ${source} is not held back for handler ${handler}: nothing to skip. ` +
  'List held keys with OutboxOrdering.heldKeys().';

export const invalidFilterField = (name: string, got: unknown) =>
  `Dead-letter filter "${name}" must be a string, got ${typeof got}.`;

export const notAMessageId = (got: unknown) => `A message id is a UUID, got ${shown(got)}.`;

// Health (nest-outbox/health): why the indicator is down or degraded

const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;

export const relayStalled = (sinceMs: number, due: number) =>
  `this process's relay has not finished a drain for ${seconds(sinceMs)} while ${due} row(s) are due`;

export const oldestPendingTooOld = (ageMs: number, limitMs: number) =>
  `the oldest due outbox row has waited ${seconds(ageMs)} (limit ${seconds(limitMs)}): no relay is keeping up`;

export const leasesExpired = (count: number, ageMs: number) =>
  `${count} claimed row(s) kept an expired lease for ${seconds(ageMs)}: no relay took them back`;

export const waitingTooLong = (messages: number, ageMs: number, handlers: string[]) =>
  `${messages} message(s) waited ${seconds(ageMs)} for handler(s) no live process has: ${handlers.join(', ')}`;

export const tooManyDeadLetters = (count: number, limit: number) =>
  `${count} dead letter(s) in this service's queue (limit ${limit})`;

export const tooManyStuck = (count: number, limit: number) =>
  `${count} outbox row(s) stuck after relay.maxAttempts refused enqueues (limit ${limit})`;

export const keyHeldTooLong = (count: number, ageMs: number) =>
  `${count} ordered key(s) held back, the oldest for ${seconds(ageMs)}`;

export const healthReadFailed = (what: string, reason: string) => `could not read ${what}: ${reason}`;

export const healthTimedOut = (timeoutMs: number) => `the outbox did not answer within ${timeoutMs} ms`;

export const invalidHealthOption = (name: string, got: unknown) =>
  `Invalid nest-outbox health option "${name}": expected a number of at least 0, or false to switch the check off, ` +
  `got ${shown(got)}.`;

// Dashboard (nest-outbox/dashboard)

export const dashboardUnprotected = () =>
  'OutboxDashboardModule.forRoot() needs `authorize: (request, response) => boolean | Promise<boolean>` ' +
  'or `guard` (a Nest guard): the dashboard shows message payloads and retries or discards messages, ' +
  'so it refuses to mount until the app says who may see it.';

export const dashboardPathInvalid = (got: unknown) =>
  `OutboxDashboardModule.forRoot() option "path" must be a URL path such as "/outbox" ` +
  `(letters, digits, "-", "_", "." and "/"), got ${shown(got)}.`;

export const dashboardNeedsExpress = (platform: string) =>
  `The outbox dashboard runs on @nestjs/platform-express (Bull Board's express adapter); this app runs on ${platform}.`;

export const dashboardRefused = () => 'Not allowed to see the outbox dashboard.';

export const dashboardBadRequest = (reason: string) => `The outbox dashboard refused the request: ${reason}.`;
