/** The rate-limit worker thread's entry module (see client.ts, which starts it). */
import { parentPort, workerData } from 'node:worker_threads';
import { runRateLimitWorker } from './host.js';
import type { WorkerInit } from './protocol.js';

if (parentPort) runRateLimitWorker(workerData as WorkerInit, parentPort);
