/** Rows for one ClickHouse table. */
export type Row = Record<string, unknown>;

/** What converting one OTLP export request produced. */
export interface Conversion {
  /** Rows by table name. */
  tables: Map<string, Row[]>;
  /** Items (spans, log records or data points) stored. */
  accepted: number;
  /** Items rejected as invalid; the rest of the request is stored. */
  rejected: number;
  /** Why items were rejected: the first few reasons, for partial_success.error_message. */
  reasons: string[];
}

/** How many rejection reasons a partial_success message quotes. */
export const MAX_REASONS = 5;

/** Collects rows per table and rejection reasons while a request is converted. */
export class ConversionBuilder {
  readonly tables = new Map<string, Row[]>();
  accepted = 0;
  rejected = 0;
  readonly reasons: string[] = [];

  add(table: string, row: Row): void {
    let rows = this.tables.get(table);
    if (!rows) this.tables.set(table, (rows = []));
    rows.push(row);
    this.accepted += 1;
  }

  reject(count: number, reason: string): void {
    this.rejected += count;
    if (this.reasons.length < MAX_REASONS) this.reasons.push(reason);
  }

  build(): Conversion {
    return { tables: this.tables, accepted: this.accepted, rejected: this.rejected, reasons: this.reasons };
  }
}

/** The partial_success message for a conversion, or "" when nothing was rejected. */
export function rejectionMessage(c: Pick<Conversion, 'rejected' | 'reasons'>, what: string): string {
  if (c.rejected === 0) return '';
  const more = c.rejected > c.reasons.length ? `; and ${c.rejected - c.reasons.length} more` : '';
  return `${c.rejected} ${what} rejected: ${c.reasons.join('; ')}${more}`;
}
