/**
 * Follows a guided tour (docs/TOUR.md, docs/TOUR.es.md) as a reader would,
 * for tour-transcripts.test.ts: runs the commands of its marked blocks with
 * the real bin/helo, real servers and real clients, and says where what they
 * printed no longer has the shape the tour shows.
 *
 * The tour's ports (7777, 7778, 7779, 7790, 7791, 7443) become free ephemeral
 * ports, `/tmp/helo-tour` a private folder, and the server's pid written in
 * a block the real one; the output is mapped back before the comparison.
 * Every command gets HELO_PORT in its environment, the way the tour tells a
 * reader whose port 7777 is taken. Interactive clients run on a terminal
 * (util-linux `script` makes one) and are typed the `C: ` lines of the block.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../support/server-process.js';
import { closedPort, envWithoutHelo } from '../helpers/run-cli.js';
import {
  matchesShape,
  parseDirectives,
  renderTerminal,
  typedCommands,
  type Directives,
  type FencedBlock,
  type TypedCommand,
} from './transcript.js';

const TOUR_PORTS = ['7777', '7778', '7779', '7790', '7791', '7443'] as const;
/** The bench runs in the tour last 5 s; 1 s shows the same output. */
const SHORTER = [['--duration 5', '--duration 1']] as const;
const QUIET_MS = 500;
const COMMAND_TIMEOUT_MS = 15_000;
/** How long the clients a block needs connected first stay, from the block's start. */
const HOLD_AFTER_START_MS = 3000;

/** A process the runner started, with everything it printed. */
interface Running {
  readonly child: ChildProcess;
  readonly command: string;
  /** stdout and stderr as they came (a terminal's view when `pty`). */
  output: string;
  stderr: string;
  lastOutputAt: number;
  exited: boolean;
  status: number | null;
  /** Lines of its output a block has already shown. */
  shownLines: number;
  readonly pty: boolean;
}

export interface Mismatch {
  readonly line: number;
  readonly command: string;
  readonly expected: readonly string[];
  readonly actual: readonly string[];
}

export class TourRunner {
  readonly #ports = new Map<string, string>();
  readonly #dir = mkdtempSync(join(tmpdir(), 'helo-tour-test-'));
  #server: Running | null = null;
  readonly #background: Running[] = [];
  #lastStatus = 0;
  #chapter = '';
  /** The last `helo client` typed in a block with no output, for "started before the server". */
  #lastClientCommand: string | null = null;
  #lastServerCommand: string | null = null;
  readonly mismatches: Mismatch[] = [];

  async init(): Promise<void> {
    for (const port of TOUR_PORTS) this.#ports.set(port, String(await closedPort()));
  }

  async close(): Promise<void> {
    await this.#stopAll();
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** Runs one block of the tour (marked or not) and records any mismatch. */
  async block(block: FencedBlock): Promise<void> {
    if (block.chapter !== this.#chapter) {
      // Every chapter starts with no server running, as the tour asks.
      await this.#stopAll();
      this.#chapter = block.chapter;
    }
    if (block.marker === null) {
      for (const { command } of typedCommands(block.lines)) {
        if (/helo client/.test(command)) this.#lastClientCommand = command;
        if (/helo server/.test(command)) this.#lastServerCommand = command;
      }
      return;
    }
    const directives = parseDirectives(block.marker);
    if (directives.skip !== null) return;
    if (directives.serverLog) return this.#checkServerLog(block, directives);
    if (directives.backgroundOutput) return this.#checkBackgroundOutput(block, directives);
    if (directives.clientBeforeServer) return this.#clientBeforeServer(block, directives);
    const holders = await this.#holdConnections(directives.clientsFirst);
    // The held clients quit a while after the block starts, not after they
    // connected: a command started on a loaded machine may take over a second
    // to connect behind them, and one that waits for them must not wait forever.
    const release = setTimeout(() => {
      for (const holder of holders) holder.end('QUIT\r\n');
    }, HOLD_AFTER_START_MS);
    try {
      for (const typed of typedCommands(block.lines)) {
        await this.#runCommand(block, typed, directives);
      }
    } finally {
      clearTimeout(release);
      for (const holder of holders) holder.destroy();
    }
  }

  async #runCommand(
    block: FencedBlock,
    typed: TypedCommand,
    directives: Directives,
  ): Promise<void> {
    const { command, expected } = typed;
    if (/helo client/.test(command)) this.#lastClientCommand = command;
    if (command === 'echo $?') {
      this.#compare(block, command, expected, [String(this.#lastStatus)], directives);
      return;
    }
    let real = this.#toReal(command, directives);
    for (const [long, short] of SHORTER) real = real.replaceAll(long, short);
    const isServer = /(^|\/)helo server\b|^systemd-socket-activate\b/.test(command);
    if (isServer) {
      await this.#stopServer();
      this.#lastServerCommand = command;
    }
    const pty = expected.some((line) => /^(C:|connected to |Input data to send: )/.test(line));
    const running = this.#start(isServer ? `exec ${real}` : real, pty);
    if (pty) this.#typeInputs(running, expected, directives);
    const wanted = expected.filter((line) => line.trim() !== '…').length;
    await this.#settle(running, wanted, isServer);
    const lines = this.#lines(running);
    running.shownLines = lines.length;
    // A server typed with no output under it is only started.
    if (!isServer || expected.length > 0) {
      this.#compare(block, command, expected, lines, directives, isServer ? running.stderr : null);
    }
    if (running.exited) {
      this.#lastStatus = running.status ?? 1;
      // A signalled process takes a moment to act on it, as long as a reader takes to type on.
      if (/^kill\b/.test(command)) await new Promise((resolve) => setTimeout(resolve, 500));
    } else if (isServer) {
      this.#server = running;
    } else if (pty) {
      this.#kill(running);
    } else {
      this.#background.push(running);
    }
  }

  /** The tour's names (ports, paths, the server's pid) made real in a command. */
  #toReal(command: string, directives: Directives): string {
    let real = command.replaceAll('/tmp/helo-tour', join(this.#dir, 'helo-tour'));
    for (const [tour, port] of this.#ports)
      real = real.replace(new RegExp(`\\b${tour}\\b`, 'g'), port);
    if (directives.serverPid !== null && this.#server?.child.pid !== undefined) {
      real = real.replace(
        new RegExp(`\\b${directives.serverPid}\\b`, 'g'),
        String(this.#server.child.pid),
      );
    }
    return real;
  }

  /** What a process printed, with the real names mapped back to the tour's. */
  #toTour(text: string, directives: Directives): string {
    let tour = text.replaceAll(join(this.#dir, 'helo-tour'), '/tmp/helo-tour');
    for (const [name, port] of this.#ports)
      tour = tour.replace(new RegExp(`\\b${port}\\b`, 'g'), name);
    if (directives.serverPid !== null && this.#server?.child.pid !== undefined) {
      tour = tour.replace(new RegExp(`\\b${this.#server.child.pid}\\b`, 'g'), directives.serverPid);
    }
    return tour;
  }

  #start(command: string, pty: boolean): Running {
    const env = envWithoutHelo({
      HELO_PORT: this.#ports.get('7777')!,
      TERM: 'dumb',
      COLUMNS: '200',
    });
    const child = pty
      ? spawn('script', ['-qfec', command, '/dev/null'], { cwd: REPO_ROOT, env, detached: true })
      : spawn('bash', ['-c', command], { cwd: REPO_ROOT, env, detached: true });
    const running: Running = {
      child,
      command,
      output: '',
      stderr: '',
      lastOutputAt: Date.now(),
      exited: false,
      status: null,
      shownLines: 0,
      pty,
    };
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      running.output += text;
      running.lastOutputAt = Date.now();
    });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      running.stderr += text;
      // A server's stderr is its log, shown apart (server log blocks); a
      // command's is shown where it came, as on a terminal.
      if (!/^exec \S*helo server/.test(command)) running.output += text;
      running.lastOutputAt = Date.now();
    });
    child.stdin!.on('error', () => {});
    child.on('close', (status) => {
      running.exited = true;
      running.status = status;
    });
    return running;
  }

  /** Types each `C: X` and `Input data to send: X` of the block once its prompt shows. */
  #typeInputs(running: Running, expected: readonly string[], directives: Directives): void {
    const inputs = expected.flatMap((line) => {
      const typed = /^(C: |Input data to send: )(.+)$/.exec(line);
      return typed && !typed[2]!.startsWith('helo client:') ? [typed[2]!] : [];
    });
    let sent = 0;
    const timer = setInterval(() => {
      const prompts = (running.output.match(/(C: |Input data to send: )/g) ?? []).length;
      if (running.exited) return clearInterval(timer);
      if (sent < inputs.length && prompts > sent) {
        running.child.stdin!.write(`${inputs[sent++]}\r`);
      } else if (sent === inputs.length && prompts > sent) {
        clearInterval(timer);
        if (directives.killServerAfter && this.#server?.child.pid !== undefined) {
          this.#server.child.kill('SIGKILL');
        }
      }
    }, 20);
    running.child.on('close', () => clearInterval(timer));
  }

  /**
   * Waits until the command exits, or has printed the lines the tour shows
   * and then nothing for a while (a server, a relay, a client left waiting).
   */
  async #settle(running: Running, wanted: number, isServer: boolean): Promise<void> {
    const deadline = Date.now() + COMMAND_TIMEOUT_MS;
    while (!running.exited && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      // A command that shows no output is waited for; only one that printed
      // what the tour shows may be left running.
      const enough =
        (wanted > 0 || isServer) &&
        this.#lines(running).length >= wanted &&
        Date.now() - running.lastOutputAt > QUIET_MS &&
        (!isServer || /[Ll]istening on/.test(running.output));
      if (enough) return;
    }
    // Let the close event deliver the last bytes.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  #lines(running: Running, from = 0): string[] {
    const lines = running.pty
      ? renderTerminal(running.output)
      : running.output === ''
        ? []
        : running.output.replace(/\n$/, '').split('\n');
    return lines.slice(from);
  }

  #compare(
    block: FencedBlock,
    command: string,
    expected: readonly string[],
    actualLines: readonly string[],
    directives: Directives,
    serverLog: string | null = null,
  ): void {
    const actual = actualLines.map((line) => this.#toTour(line, directives));
    // A server block may show its first log lines too, after its stdout.
    const logShown = expected.filter((line) => line.startsWith('{"level"'));
    const shown = expected.filter((line) => !line.startsWith('{"level"'));
    let ok = matchesShape(shown, actual, { numbersVary: directives.numbersVary });
    if (ok && logShown.length > 0) {
      const log = this.#toTour(serverLog ?? '', directives).split('\n');
      ok = matchesShape(logShown, log, { subset: true, numbersVary: directives.numbersVary });
      if (!ok) actual.push('(log:)', ...log);
    }
    if (!ok) this.mismatches.push({ line: block.line, command, expected, actual });
  }

  async #checkServerLog(block: FencedBlock, directives: Directives): Promise<void> {
    const deadline = Date.now() + 3000;
    for (;;) {
      const log = this.#toTour(this.#server?.stderr ?? '', directives).split('\n');
      if (matchesShape(block.lines, log, { subset: true, numbersVary: directives.numbersVary }))
        return;
      if (Date.now() > deadline) {
        this.mismatches.push({
          line: block.line,
          command: '(server log)',
          expected: block.lines,
          actual: log,
        });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async #checkBackgroundOutput(block: FencedBlock, directives: Directives): Promise<void> {
    const running = this.#background.at(-1);
    if (running === undefined) throw new Error(`line ${block.line}: no command was left running`);
    const wanted = block.lines.filter((line) => line.trim() !== '…').length;
    const deadline = Date.now() + 5000;
    while (this.#lines(running, running.shownLines).length < wanted && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
    const lines = this.#lines(running, running.shownLines);
    running.shownLines += lines.length;
    this.#compare(block, '(output of the command left running)', block.lines, lines, directives);
  }

  /** Chapter 1: the client typed earlier (with --wait) starts first, then the server. */
  async #clientBeforeServer(block: FencedBlock, directives: Directives): Promise<void> {
    const client = this.#lastClientCommand;
    const server = this.#lastServerCommand;
    if (client === null || server === null)
      throw new Error(`line ${block.line}: no client or server above`);
    await this.#stopServer();
    const running = this.#start(this.#toReal(client, directives), true);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    this.#server = this.#start(`exec ${this.#toReal(server, directives)}`, false);
    await this.#settle(running, block.lines.length, false);
    this.#compare(block, client, block.lines, this.#lines(running), directives);
    this.#kill(running);
  }

  /** Clients that connect and send HELO before the block runs (they QUIT HOLD_AFTER_START_MS after it starts). */
  async #holdConnections(count: number): Promise<net.Socket[]> {
    const holders: net.Socket[] = [];
    for (let i = 0; i < count; i++) {
      const socket = net.connect(Number(this.#ports.get('7777')), '127.0.0.1');
      socket.on('error', () => {});
      socket.write('HELO\r\n');
      // A fork child may take seconds to start on a loaded machine.
      await new Promise((resolve) => {
        socket.once('data', resolve);
        setTimeout(resolve, 5000);
      });
      holders.push(socket);
    }
    return holders;
  }

  #kill(running: Running): void {
    if (running.exited || running.child.pid === undefined) return;
    try {
      process.kill(-running.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  async #stopServer(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (server === null || server.exited || server.child.pid === undefined) return;
    try {
      process.kill(-server.child.pid, 'SIGCONT');
      process.kill(-server.child.pid, 'SIGKILL');
    } catch {
      return;
    }
    while (!server.exited) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  async #stopAll(): Promise<void> {
    await this.#stopServer();
    for (const running of this.#background.splice(0)) {
      this.#kill(running);
      while (!running.exited) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
