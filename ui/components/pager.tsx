import type { JSX } from 'preact';

/** Newer/Older buttons over a stack of page tokens (the first is ''): Newer pops one, Older pushes `next`. */
export function Pager(props: { pages: string[]; setPages: (pages: string[]) => void; next: string | undefined }): JSX.Element {
  const { pages, setPages, next } = props;
  return (
    <div class="pager">
      {pages.length > 1 && <button onClick={() => setPages(pages.slice(0, -1))}>Newer</button>}
      {next && <button onClick={() => setPages([...pages, next])}>Older</button>}
    </div>
  );
}
