/**
 * telnet's control sequences, taken out of a byte stream (docs/PROTOCOL.md §11).
 *
 * A student's `telnet` mixes RFC 854 commands into what it sends: a Ctrl-C is
 * `IAC IP IAC DO TIMING-MARK`, and telnet then shows nothing more until the
 * server answers the `DO`. With `--telnet` the connection runs every chunk
 * through this filter before framing. It is pure and incremental: a sequence
 * may be split across chunks anywhere, the state between chunks is a few
 * numbers, and nothing is buffered (a subnegotiation is skipped, not kept).
 *
 *   IAC IAC             -> one 0xff data byte
 *   IAC DO x            -> removed; answer IAC WONT x
 *   IAC WILL x          -> removed; answer IAC DONT x
 *   IAC WONT x, DONT x  -> removed (nothing was on, so nothing to confirm)
 *   IAC SB ... IAC SE   -> removed
 *   IAC IP              -> removed; the partial line so far is discarded
 *   IAC any other byte  -> both removed (NOP, AYT, GA, ..., and undefined codes)
 *
 * Off by default: payloads are byte-exact, and a binary payload may hold
 * these very bytes.
 */

const IAC = 0xff;
const DONT = 0xfe;
const DO = 0xfd;
const WONT = 0xfc;
const WILL = 0xfb;
const SB = 0xfa;
const IP = 0xf4;
const SE = 0xf0;

/** Receives what the filter finds, in stream order. */
export interface TelnetSink {
  /** Data bytes `chunk[start, end)`, valid only during the call. */
  onData(chunk: Buffer, start: number, end: number): void;
  /** Bytes to send back (`IAC WONT x`, `IAC DONT x`), in order with the replies. */
  onNegotiationReply(bytes: Buffer): void;
  /** `IAC IP`: discard the partial line received so far. */
  onInterrupt(): void;
}

// Filter states.
const IN_DATA = 0;
/** After an IAC. */
const IN_COMMAND = 1;
/** After IAC WILL/WONT/DO/DONT: the next byte is the option. */
const IN_OPTION = 2;
/** Inside IAC SB ...: skipped up to IAC SE. */
const IN_SUBNEGOTIATION = 3;
/** An IAC inside a subnegotiation. */
const IN_SUBNEGOTIATION_IAC = 4;

const ESCAPED_IAC = Buffer.from([IAC]);

export class TelnetFilter {
  #state = IN_DATA;
  /** The verb (WILL, WONT, DO, DONT) whose option byte comes next. */
  #verb = 0;

  /** Filters one chunk, calling `sink` for each data run, reply and interrupt, in order. */
  push(chunk: Buffer, sink: TelnetSink): void {
    const length = chunk.length;
    let at = 0;
    while (at < length) {
      switch (this.#state) {
        case IN_DATA: {
          const iac = chunk.indexOf(IAC, at);
          const end = iac === -1 ? length : iac;
          if (end > at) sink.onData(chunk, at, end);
          if (iac === -1) return;
          this.#state = IN_COMMAND;
          at = iac + 1;
          break;
        }
        case IN_COMMAND:
          this.#command(chunk[at++]!, sink);
          break;
        case IN_OPTION: {
          const option = chunk[at++]!;
          this.#state = IN_DATA;
          if (this.#verb === DO) sink.onNegotiationReply(Buffer.from([IAC, WONT, option]));
          else if (this.#verb === WILL) sink.onNegotiationReply(Buffer.from([IAC, DONT, option]));
          break;
        }
        case IN_SUBNEGOTIATION: {
          const iac = chunk.indexOf(IAC, at);
          if (iac === -1) return;
          this.#state = IN_SUBNEGOTIATION_IAC;
          at = iac + 1;
          break;
        }
        case IN_SUBNEGOTIATION_IAC:
          // IAC SE ends it; IAC IAC is an escaped 0xff inside it; anything else stays inside.
          this.#state = chunk[at++] === SE ? IN_DATA : IN_SUBNEGOTIATION;
          break;
      }
    }
  }

  #command(byte: number, sink: TelnetSink): void {
    this.#state = IN_DATA;
    switch (byte) {
      case IAC:
        sink.onData(ESCAPED_IAC, 0, 1);
        return;
      case WILL:
      case WONT:
      case DO:
      case DONT:
        this.#verb = byte;
        this.#state = IN_OPTION;
        return;
      case SB:
        this.#state = IN_SUBNEGOTIATION;
        return;
      case IP:
        sink.onInterrupt();
        return;
      default:
        return;
    }
  }
}
