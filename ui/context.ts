import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Api } from './api/client.js';
import type { Access } from './session.js';

/** What every page gets: the API client and what the token may do. */
export interface Console {
  api: Api;
  access: Access;
}

/** The signed-in console; provided by the app once access is known. */
export const ConsoleContext = createContext<Console | undefined>(undefined);

/** The signed-in console (pages render only inside it). */
export function useConsole(): Console {
  const c = useContext(ConsoleContext);
  if (!c) throw new Error('useConsole outside the signed-in console');
  return c;
}
