/**
 * Small lab-protocol servers with exactly one fault each: the mistakes
 * students make with sockets (docs/GRADING.md). `helo grade` must fail each
 * for the checks that describe its fault and no other; `helo client` must
 * still drive the ones a classroom client can drive.
 *
 * Without a fault the server is correct: LF framing (a CR before the LF
 * removed, a partial line ended by 100 ms of silence as docs/PROTOCOL.md §9
 * allows), case-insensitive words, blanks ignored, bare DATA then a payload
 * line, CRLF replies, QUIT closes, a half-close answered then closed, many
 * clients at once.
 */
import net from 'node:net';

/** Like `helo server --unterminated-after-ms 100`. */
const SILENCE_MS = 100;

export type Fault =
  /** Replies end in LF alone. */
  | 'lf-replies'
  /** Each recv() is one command, as the exercise's ServerLab.py does. */
  | 'one-recv-per-command'
  /** `helo` is not `HELO`. */
  | 'case-sensitive'
  /** A bare DATA is answered at once, before its payload line. */
  | 'answers-data-early'
  /** Replies still owed when the client half-closes are dropped. */
  | 'drops-replies-after-fin'
  /** One client at a time; the others wait their turn. */
  | 'one-client-at-a-time'
  /** A client that disappears (its connection reset) stops the whole server. */
  | 'dies-when-a-client-vanishes'
  /** 400 BCMD is followed by a description line (the handout's format, ending \n\r). */
  | 'describes-bad-commands'
  /** Reads everything, answers nothing. */
  | 'never-answers'
  /** None: the reference behaviour. */
  | 'none';

export interface BrokenServer {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

export async function startBrokenServer(fault: Fault): Promise<BrokenServer> {
  const sockets = new Set<net.Socket>();
  const waiting: net.Socket[] = [];
  let active: net.Socket | null = null;

  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {
      if (fault === 'dies-when-a-client-vanishes') die();
    });
    if (fault !== 'one-client-at-a-time') return serve(socket);
    socket.pause();
    waiting.push(socket);
    next();
  });

  function next(): void {
    if (active !== null) return;
    const socket = waiting.shift();
    if (socket === undefined) return;
    active = socket;
    socket.on('close', () => {
      active = null;
      next();
    });
    serve(socket);
    socket.resume();
  }

  function die(): void {
    server.close();
    for (const socket of sockets) socket.destroy();
  }

  function serve(socket: net.Socket): void {
    const eol = fault === 'lf-replies' ? '\n' : '\r\n';
    let isPayloadNext = false;
    let isQuit = false;
    let buffered = '';
    let silence: NodeJS.Timeout | undefined;
    let isAfterSilence = false;
    socket.on('close', () => clearTimeout(silence));
    const reply = (text: string): void => {
      if (fault === 'drops-replies-after-fin') {
        // As if each reply waited for a commit; the socket may be gone by then.
        setTimeout(() => {
          if (!socket.destroyed) socket.write(text + eol);
        }, 20);
      } else {
        socket.write(text + eol);
      }
    };
    const onLine = (line: string): void => {
      if (isQuit || fault === 'never-answers') return;
      if (isPayloadNext) {
        isPayloadNext = false;
        if (fault !== 'answers-data-early') reply('300 DRCV');
        return;
      }
      const trimmed = line.replace(/^[ \t]+/, '');
      const word = trimmed.split(/[ \t]/, 1)[0]!;
      const rest = trimmed.slice(word.length);
      const command = fault === 'case-sensitive' ? word : word.toUpperCase();
      if (command === 'HELO') return reply('100 OK');
      if (command === 'DATA' && rest.trim() === '') {
        isPayloadNext = true;
        if (fault === 'answers-data-early') reply('300 DRCV');
        return;
      }
      if (command === 'DATA') return reply('300 DRCV');
      if (command === 'QUIT' && rest.trim() === '') {
        isQuit = true;
        reply('200 BYE');
        if (fault === 'drops-replies-after-fin') setTimeout(() => socket.end(), 30);
        else socket.end();
        return;
      }
      if (fault === 'describes-bad-commands') {
        socket.write('400 BCMD\n\rCommand-Description: Bad command\n\r');
        return;
      }
      reply('400 BCMD');
    };
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      if (fault === 'one-recv-per-command') return onLine(chunk.replace(/\r?\n$/, ''));
      clearTimeout(silence);
      buffered += chunk;
      let lf: number;
      while ((lf = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, lf).replace(/\r$/, '');
        buffered = buffered.slice(lf + 1);
        if (line === '' && isAfterSilence) {
          isAfterSilence = false;
          continue;
        }
        isAfterSilence = false;
        onLine(line);
      }
      // docs/PROTOCOL.md §9, as `npm start` runs helo: a partial line then silence is a line.
      if (buffered !== '') {
        silence = setTimeout(() => {
          const line = buffered.replace(/\r$/, '');
          buffered = '';
          isAfterSilence = true;
          onLine(line);
        }, SILENCE_MS);
      }
    });
    socket.on('end', () => {
      if (fault === 'drops-replies-after-fin') socket.destroy();
      else socket.end();
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    address: `127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
