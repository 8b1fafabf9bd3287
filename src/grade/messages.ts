/**
 * The report card's words, in English and in Spanish (neutral Latin
 * American). Check names stay in English in both: they are the anchors of
 * docs/GRADING.md (and its Spanish twin) and the keys of `--json`.
 */
export type Lang = 'en' | 'es';

interface Messages {
  readonly title: (profile: string, address: string) => string;
  readonly pass: string;
  readonly fail: string;
  readonly note: string;
  readonly sent: string;
  readonly got: string;
  readonly expected: string;
  readonly score: (passed: number, total: number) => string;
  readonly sequential: string;
  readonly concurrent: string;
  readonly explain: string;
  readonly checks: Readonly<Record<string, string>>;
}

const EN: Messages = {
  title: (profile, address) => `helo grade: profile ${profile}, server ${address}`,
  pass: 'PASS',
  fail: 'FAIL',
  note: 'NOTE',
  sent: 'sent',
  got: 'got',
  expected: 'expected',
  score: (passed, total) => `Score: ${passed}/${total} checks passed`,
  sequential: 'the server is sequential: a second client waits until the first one leaves',
  concurrent: 'the server serves several clients at the same time',
  explain: 'What each check means, and the usual mistake behind a failure: docs/GRADING.md',
  checks: {
    helo: 'HELO, sent alone without a line terminator, gets 100 OK',
    data: 'DATA with its payload in the same send gets 300 DRCV',
    'unknown-command': 'an unknown command gets 400 BCMD and the session goes on',
    session: 'a whole session, one command at a time, then QUIT closes',
    'quit-closes': 'QUIT gets 200 BYE, then the server closes the connection',
    'clients-in-turn': 'several clients, one after the other, are all served',
    'vanishing-client': 'a client that vanishes does not stop the server',
    'crlf-replies': 'replies end in CRLF (\\r\\n)',
    'lf-requests': 'requests that end in LF alone are understood',
    'split-lines': 'a line that arrives in pieces is one line',
    'merged-lines': 'several lines in one send are several commands',
    pipelining: 'many requests sent at once are answered in order',
    'case-insensitive': 'command words are case-insensitive',
    blanks: 'spaces and tabs around a command are ignored',
    'bare-data': 'DATA alone takes the next line as its payload, whatever it says',
    'empty-lines': 'an empty line is a bad command; an empty payload is a payload',
    'nothing-before-payload': 'nothing is sent between a bare DATA and its payload line',
    'half-close': "lines sent before the client's FIN are still answered",
    'no-banner': 'the server sends nothing before the client speaks',
    'several-clients': 'several clients connected at once are all served',
    sequential: 'clients served at the same time, or one after the other',
  },
};

const ES: Messages = {
  title: (profile, address) => `helo grade: perfil ${profile}, servidor ${address}`,
  pass: 'BIEN',
  fail: 'MAL ',
  note: 'NOTA',
  sent: 'enviado',
  got: 'recibido',
  expected: 'esperado',
  score: (passed, total) => `Puntaje: ${passed}/${total} verificaciones aprobadas`,
  sequential: 'el servidor es secuencial: un segundo cliente espera hasta que el primero se va',
  concurrent: 'el servidor atiende a varios clientes al mismo tiempo',
  explain:
    'Qué significa cada verificación y el error habitual detrás de cada falla: docs/GRADING.es.md',
  checks: {
    helo: 'HELO, enviado solo y sin fin de línea, recibe 100 OK',
    data: 'DATA con su carga útil en el mismo envío recibe 300 DRCV',
    'unknown-command': 'un comando desconocido recibe 400 BCMD y la sesión sigue',
    session: 'una sesión completa, un comando a la vez, y QUIT cierra',
    'quit-closes': 'QUIT recibe 200 BYE y luego el servidor cierra la conexión',
    'clients-in-turn': 'varios clientes, uno tras otro, son atendidos',
    'vanishing-client': 'un cliente que desaparece no detiene al servidor',
    'crlf-replies': 'las respuestas terminan en CRLF (\\r\\n)',
    'lf-requests': 'se entienden los pedidos que terminan solo en LF',
    'split-lines': 'una línea que llega en pedazos es una sola línea',
    'merged-lines': 'varias líneas en un solo envío son varios comandos',
    pipelining: 'muchos pedidos enviados de una vez se responden en orden',
    'case-insensitive': 'los comandos no distinguen mayúsculas de minúsculas',
    blanks: 'se ignoran los espacios y tabuladores alrededor de un comando',
    'bare-data': 'DATA solo toma la línea siguiente como carga útil, diga lo que diga',
    'empty-lines': 'una línea vacía es un comando inválido; una carga útil vacía es una carga útil',
    'nothing-before-payload': 'no se envía nada entre un DATA solo y su línea de carga útil',
    'half-close': 'las líneas enviadas antes del FIN del cliente igual se responden',
    'no-banner': 'el servidor no envía nada antes de que hable el cliente',
    'several-clients': 'varios clientes conectados a la vez son atendidos',
    sequential: 'clientes atendidos al mismo tiempo, o uno tras otro',
  },
};

/**
 * The fixed phrases inside a check's detail, in Spanish. The detail stays
 * English in `--json` (programs read it); the card translates these.
 */
const ES_PHRASES: ReadonlyArray<readonly [string, string]> = [
  ['(the server closed the connection)', '(el servidor cerró la conexión)'],
  ['(nothing, until the check timed out)', '(nada, hasta que se acabó el tiempo)'],
  ['(the check did not end in time)', '(la verificación no terminó a tiempo)'],
  ['(still open)', '(sigue abierta)'],
  ['(closed)', '(cerrada)'],
  ['(nothing', '(nada'],
  ['then the server closes', 'luego el servidor cierra'],
  ['then FIN (half-close)', 'luego FIN (cierre a medias)'],
  ['before the payload line', 'antes de la línea de carga útil'],
  ['before any request', 'antes de cualquier pedido'],
  ['(no LF)', '(sin LF)'],
  ['client ', 'cliente '],
  ['one after the other', 'uno tras otro'],
  ['each of 3 clients', 'cada uno de 3 clientes'],
  ['a new client after them', 'un cliente nuevo después'],
  [
    'one client resets after HELO, one leaves mid-command; then ',
    'un cliente corta la conexión después de HELO, otro se va a mitad de comando; luego ',
  ],
  ['3 clients connected at once, each', '3 clientes conectados a la vez, cada uno'],
  ['nothing: the client speaks first', 'nada: el cliente habla primero'],
  ['each:', 'cada uno:'],
];

/**
 * Longest first: a short phrase ("client ") must not eat part of a longer one
 * ("a new client after them") before the longer one is tried.
 */
const ES_PHRASES_LONGEST_FIRST = [...ES_PHRASES].sort(([a], [b]) => b.length - a.length);

/** A detail string in the card's language. */
export function translateDetail(text: string, lang: Lang): string {
  if (lang === 'en') return text;
  return ES_PHRASES_LONGEST_FIRST.reduce((result, [en, es]) => result.split(en).join(es), text);
}

export const MESSAGES: Readonly<Record<Lang, Messages>> = { en: EN, es: ES };

/** `--lang`, else the locale variables (`LANG=es_AR.UTF-8` → Spanish), else English. */
export function pickLang(flag: string | undefined, env: NodeJS.ProcessEnv): Lang | null {
  if (flag !== undefined) return flag === 'en' || flag === 'es' ? flag : null;
  const locale = env['LC_ALL'] || env['LC_MESSAGES'] || env['LANG'] || '';
  return /^es([_.@-]|$)/i.test(locale) ? 'es' : 'en';
}
