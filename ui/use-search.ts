import { useEffect, useState } from 'preact/hooks';
import { useLocation } from './router.js';

/** A paged search whose filters live in the URL's query string. */
export interface UrlSearch<F> {
  /** The filters of the URL: what the page shows. */
  search: F;
  /** The filters being edited in the form; submitting navigates to them. */
  form: F;
  setForm: (form: F) => void;
  /** Page tokens from the newest page ('') to the one shown (the last). */
  pages: string[];
  setPages: (pages: string[]) => void;
  /** Changes whenever the URL's query does: a dependency for the page's call. */
  key: string;
}

/** The filters `read` from the URL, a form that starts from them, and pages that start over when the URL changes. */
export function useUrlSearch<F>(read: (query: URLSearchParams) => F): UrlSearch<F> {
  const { query } = useLocation();
  const search = read(query);
  const [form, setForm] = useState(search);
  const [pages, setPages] = useState<string[]>(['']);
  const key = query.toString();
  useEffect(() => {
    setForm(read(query));
    setPages(['']);
  }, [key]);
  return { search, form, setForm, pages, setPages, key };
}
