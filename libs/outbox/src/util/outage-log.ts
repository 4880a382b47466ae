import type { Logger } from '@nestjs/common';

/**
 * Says an outage once when it starts and once when it ends, however many times the work fails in
 * between: a background loop that retries every second must not log every second.
 */
export class OutageLog {
  private since: number | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly describe: { failed: (reason: string) => string; recovered: (seconds: string) => string },
  ) {}

  get ongoing(): boolean {
    return this.since !== undefined;
  }

  failed(reason: string): void {
    if (this.since !== undefined) return;
    this.since = Date.now();
    this.logger.error(this.describe.failed(reason));
  }

  recovered(): void {
    if (this.since === undefined) return;
    const seconds = ((Date.now() - this.since) / 1000).toFixed(1);
    this.since = undefined;
    this.logger.log(this.describe.recovered(seconds));
  }
}
