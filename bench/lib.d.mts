// Types of bench/lib.mjs for the benchmarks written in TypeScript.
import type { ChildProcess } from 'node:child_process';

export declare const CLK_TCK: number;
export declare function startPinned(core: number, args: string[], ready: (line: any) => boolean, env?: Record<string, string>): { child: ChildProcess; found: Promise<any>; lines: any[] };
export declare function cpuSeconds(pid: number): number;
export declare function rssMiB(pid: number): { rss: number; peak: number };
export declare function h2load(core: number, args: string[]): { rps: number; succeeded: number; meanRequestTime: string | undefined; raw: string };
export declare function percentile(sorted: number[], p: number): number;
export declare function sequentialGets(url: string, count: number): Promise<number[]>;
export declare function f(n: number, d?: number): string;
export declare function threadCpuSeconds(pid: number): { js: number; node: number; engine: number };
