/**
 * `--mode threads`: a fixed pool of `worker_threads` that run each request's
 * CPU work (`--work-cpu-ms`) while the main thread goes on serving sockets.
 *
 * One job is one message each way over the worker's MessagePort: the main
 * thread posts `[id, cpuMs]`, the thread burns the CPU and posts `id` back.
 * Each message is copied by structured clone (a small array here; a job
 * carrying a payload would copy its bytes once more, or move them with a
 * transfer list after copying them out of Buffer's shared pool) and costs a
 * hop between threads each way: a few microseconds, measured in
 * docs/TOUR.md chapter 7. That is why only the CPU work crosses over:
 * framing and parsing a request cost less than the hop.
 *
 * A thread that throws (or exits) takes only its own jobs with it: they are
 * rejected, so their connections are closed rather than left waiting, and a
 * replacement starts, after a growing pause if threads keep dying young.
 */
import { Worker } from 'node:worker_threads';
import { ProcessError } from '../../errors.js';
import type { CpuWorkRunner } from '../simulated-work.js';

/** The thread program: work-thread.ts, compiled next to this file. */
const WORK_THREAD_PROGRAM = new URL('./work-thread.js', import.meta.url);

/** A thread dying sooner than this after its start is "crash looping": wait before the next. */
const CRASH_LOOP_MS = 2_000;
const RESPAWN_BACKOFF_FIRST_MS = 100;
const RESPAWN_BACKOFF_MAX_MS = 5_000;

interface Job {
  readonly cpuMs: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  /** null while a replacement waits for its backoff. */
  thread: Worker | null;
  startedAt: number;
  readonly jobs: Map<number, Job>;
}

export interface ThreadPoolEvents {
  /** A thread died (threw or exited) while the pool was open; `lostJobs` were rejected. */
  onThreadDied?(error: Error, lostJobs: number): void;
}

export class ThreadPool implements CpuWorkRunner {
  readonly #program: URL;
  readonly #events: ThreadPoolEvents;
  readonly #slots: Slot[] = [];
  /** Jobs posted while no thread was alive (every one waiting for its backoff). */
  readonly #backlog: { id: number; job: Job }[] = [];
  #nextId = 0;
  #next = 0;
  #youngDeaths = 0;
  #isClosed = false;
  /** Threads replaced so far (for tests and logs). */
  replaced = 0;

  constructor(size: number, events: ThreadPoolEvents = {}, program: URL = WORK_THREAD_PROGRAM) {
    this.#program = program;
    this.#events = events;
    for (let i = 0; i < size; i++) {
      this.#slots.push({ thread: null, startedAt: 0, jobs: new Map() });
    }
  }

  /** Starts every thread; resolves when all run, rejects if one fails to start. */
  async start(): Promise<void> {
    await Promise.all(this.#slots.map((slot) => this.#spawn(slot)));
  }

  run(cpuMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#isClosed) {
        reject(new ProcessError('the thread pool is closed'));
        return;
      }
      const id = ++this.#nextId;
      const job = { cpuMs, resolve, reject };
      const slot = this.#pick();
      if (slot === null) this.#backlog.push({ id, job });
      else this.#post(slot, id, job);
    });
  }

  /** Ends every thread; jobs still running are rejected. */
  async close(): Promise<void> {
    if (this.#isClosed) return;
    this.#isClosed = true;
    const ending: Promise<number>[] = [];
    for (const slot of this.#slots) {
      const thread = slot.thread;
      slot.thread = null;
      this.#rejectAll(slot, new ProcessError('the thread pool closed'));
      if (thread !== null) ending.push(thread.terminate());
    }
    for (const { job } of this.#backlog.splice(0)) {
      job.reject(new ProcessError('the thread pool closed'));
    }
    await Promise.all(ending);
  }

  /** The live thread with the fewest jobs, in turn among equals; null when none is alive. */
  #pick(): Slot | null {
    let best: Slot | null = null;
    const count = this.#slots.length;
    for (let i = 0; i < count; i++) {
      const slot = this.#slots[(this.#next + i) % count]!;
      if (slot.thread === null) continue;
      if (best === null || slot.jobs.size < best.jobs.size) best = slot;
      if (best.jobs.size === 0) break;
    }
    this.#next = (this.#next + 1) % count;
    return best;
  }

  #post(slot: Slot, id: number, job: Job): void {
    slot.jobs.set(id, job);
    slot.thread!.postMessage([id, job.cpuMs]);
  }

  #spawn(slot: Slot): Promise<void> {
    const thread = new Worker(this.#program);
    slot.thread = thread;
    slot.startedAt = Date.now();
    // A thread keeps the process alive only while it has work to do.
    thread.unref();
    thread.on('message', (id: number) => {
      const job = slot.jobs.get(id);
      if (job === undefined) return;
      slot.jobs.delete(id);
      this.#youngDeaths = 0;
      job.resolve();
    });
    let failure: Error | null = null;
    thread.on('error', (error) => {
      failure = error;
    });
    const online = new Promise<void>((resolve, reject) => {
      thread.once('online', resolve);
      thread.once('exit', (code) => {
        reject(new ProcessError(`a worker thread exited (code ${code}) before it started`));
      });
    });
    thread.once('exit', (code) => this.#onExit(slot, thread, failure, code));
    // Draining the backlog here also serves jobs posted while no thread was alive.
    for (const { id, job } of this.#backlog.splice(0)) this.#post(slot, id, job);
    return online;
  }

  #onExit(slot: Slot, thread: Worker, failure: Error | null, code: number): void {
    if (slot.thread !== thread) return; // Terminated by close().
    slot.thread = null;
    const error = new ProcessError(
      `a worker thread died (${failure === null ? `exit code ${code}` : failure.message})`,
      { cause: failure ?? undefined },
    );
    const lost = slot.jobs.size;
    this.#rejectAll(slot, error);
    this.#events.onThreadDied?.(error, lost);
    if (this.#isClosed) return;
    this.#youngDeaths = Date.now() - slot.startedAt < CRASH_LOOP_MS ? this.#youngDeaths + 1 : 0;
    const delay =
      this.#youngDeaths <= 1
        ? 0
        : Math.min(RESPAWN_BACKOFF_MAX_MS, RESPAWN_BACKOFF_FIRST_MS * 2 ** (this.#youngDeaths - 2));
    const respawn = (): void => {
      if (this.#isClosed) return;
      this.replaced++;
      // A replacement that fails to start is handled by its own exit listener.
      this.#spawn(slot).catch(() => {});
    };
    if (delay === 0) respawn();
    else setTimeout(respawn, delay).unref();
  }

  #rejectAll(slot: Slot, error: Error): void {
    const jobs = [...slot.jobs.values()];
    slot.jobs.clear();
    for (const job of jobs) job.reject(error);
  }
}
