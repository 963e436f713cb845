/** Resident bytes of the mappings of process `pid` ('self': this one) whose path ends with `file` (`[heap]`: glibc's main arena). */
export function residentOf(pid: number | 'self', file: string): number;
