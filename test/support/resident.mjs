// Resident memory of a process's mappings, from /proc/<pid>/smaps. Plain JavaScript: tests import it,
// and child processes that measure themselves import it by its file URL.
import { readFileSync } from 'node:fs';

/** Resident bytes of the mappings of process `pid` ('self': this one) whose path ends with `file` (`[heap]`: glibc's main arena). */
export function residentOf(pid, file) {
  let rss = 0;
  let on = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (/^[0-9a-f]+-/.test(line)) on = line.trimEnd().endsWith(file);
    else if (on && line.startsWith('Rss:')) rss += Number(/\d+/.exec(line)[0]) * 1024;
  }
  return rss;
}
