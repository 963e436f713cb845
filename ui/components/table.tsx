import type { ComponentChildren, JSX } from 'preact';

/** One column: its header and how a row shows in it. */
export interface Column<R> {
  title: string;
  cell: (row: R) => ComponentChildren;
  /** A CSS class for the column's cells (e.g. `num`, `wide`, `nowrap`). */
  class?: string;
}

/** A table of rows; `empty` shows when there are none. Rows carry `data-key` for tests and styling. */
export function Table<R>(props: { columns: Array<Column<R>>; rows: R[]; rowKey: (row: R) => string; empty?: string; testId?: string }): JSX.Element {
  return (
    <table class="table" data-testid={props.testId}>
      <thead>
        <tr>
          {props.columns.map((c) => (
            <th class={c.class}>{c.title}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {props.rows.length === 0 ? (
          <tr>
            <td class="empty" colSpan={props.columns.length}>
              {props.empty ?? 'Nothing to show.'}
            </td>
          </tr>
        ) : (
          props.rows.map((r) => (
            <tr key={props.rowKey(r)} data-key={props.rowKey(r)}>
              {props.columns.map((c) => (
                <td class={c.class}>{c.cell(r)}</td>
              ))}
            </tr>
          ))
        )}
      </tbody>
    </table>
  );
}
