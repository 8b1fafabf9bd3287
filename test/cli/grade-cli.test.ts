/**
 * `helo grade` as a teacher runs it: the real executable against helo
 * itself (it must pass both profiles when started as docs/GRADING.md says)
 * and against small servers with one socket mistake each
 * (test/helpers/broken-servers.ts), which must fail exactly the checks that
 * describe their fault.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer, type HeloServer } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { type Fault, startBrokenServer } from '../helpers/broken-servers.js';
import { assertOneLineError, closedPort, runHelo } from '../helpers/run-cli.js';

const BOUNDED = { timeout: 60_000 };

interface Report {
  profile: string;
  passed: number;
  failed: number;
  checks: { name: string; passed: boolean; detail: Record<string, string>; finding?: string }[];
}

async function grade(port: number, profile: 'lab' | 'strict', extra: string[] = []) {
  const result = await runHelo(
    ['grade', `127.0.0.1:${port}`, '--profile', profile, '--json', ...extra],
    { timeoutMs: 50_000 },
  );
  assert.equal(result.stderr, '');
  const report = JSON.parse(result.stdout) as Report;
  const failed = report.checks.filter((check) => !check.passed).map((check) => check.name);
  return { status: result.status, report, failed };
}

describe('helo grade', () => {
  describe('against helo', () => {
    let classroom: HeloServer;
    let plain: HeloServer;
    before(async () => {
      // As npm start starts it (--unterminated-after-ms 100 --telnet), and as plain `helo server`.
      classroom = await startServer({
        port: 0,
        store: new MemoryStore(),
        logLevel: 'silent',
        unterminatedAfterMs: 100,
        telnet: true,
      });
      plain = await startServer({ port: 0, store: new MemoryStore(), logLevel: 'silent' });
    });
    after(async () => {
      await classroom.close();
      await plain.close();
    });

    it(
      'passes every lab check as npm start runs it (--unterminated-after-ms 100 --telnet)',
      BOUNDED,
      async () => {
        const { status, report, failed } = await grade(classroom.port, 'lab');
        assert.deepEqual(failed, []);
        assert.equal(status, 0);
        assert.deepEqual(
          report.checks.map((check) => check.name),
          [
            'helo',
            'data',
            'unknown-command',
            'session',
            'quit-closes',
            'clients-in-turn',
            'vanishing-client',
          ],
        );
        assert.equal(report.passed, 7);
        assert.equal(report.failed, 0);
      },
    );

    it(
      'passes every strict check as plain helo server, and is not sequential',
      BOUNDED,
      async () => {
        const { status, report, failed } = await grade(plain.port, 'strict');
        assert.deepEqual(failed, []);
        assert.equal(status, 0);
        assert.equal(report.failed, 0);
        assert.equal(
          report.checks.find((check) => check.name === 'sequential')?.finding,
          'concurrent',
        );
      },
    );

    it(
      'fails the lab profile as plain helo server: no reply without a terminator',
      BOUNDED,
      async () => {
        const { status, report } = await grade(plain.port, 'lab', ['--timeout', '0.4']);
        assert.equal(status, 1);
        assert.equal(report.passed, 0);
        const helo = report.checks.find((check) => check.name === 'helo')!;
        assert.deepEqual(helo.detail, {
          sent: '"HELO"',
          got: '(nothing, until the check timed out)',
          expected: '"100 OK"',
        });
      },
    );

    it(
      'prints a report card in Spanish from LANG, and in English with --lang en',
      BOUNDED,
      async () => {
        const es = await runHelo(['grade', '--port', String(classroom.port)], {
          env: { LANG: 'es_AR.UTF-8' },
        });
        assert.equal(es.status, 0, es.stderr);
        assert.match(es.stdout, /^helo grade: perfil lab, servidor 127\.0\.0\.1:\d+\n/);
        assert.match(es.stdout, /^BIEN {2}helo: HELO, enviado solo/m);
        assert.match(es.stdout, /Puntaje: 7\/7 verificaciones aprobadas/);
        const en = await runHelo(
          ['grade', '--port', String(plain.port), '--lang', 'en', '--timeout', '0.3'],
          {
            env: { LANG: 'es_AR.UTF-8' },
          },
        );
        assert.equal(en.status, 1);
        assert.match(en.stdout, /^FAIL {2}helo: HELO, sent alone/m);
        assert.match(en.stdout, /^ {8}sent {6}"HELO"$/m);
        assert.match(en.stdout, /Score: 0\/7 checks passed/);
      },
    );
  });

  // Each server's one fault, and the checks that must fail because of it.
  const CASES: { fault: Fault; lab: string[]; strict: string[] | null }[] = [
    { fault: 'lf-replies', lab: [], strict: ['crlf-replies'] },
    {
      fault: 'one-recv-per-command',
      lab: [],
      strict: ['split-lines', 'merged-lines', 'pipelining'],
    },
    { fault: 'case-sensitive', lab: [], strict: ['case-insensitive'] },
    { fault: 'answers-data-early', lab: [], strict: ['nothing-before-payload'] },
    { fault: 'drops-replies-after-fin', lab: [], strict: ['half-close'] },
    { fault: 'one-client-at-a-time', lab: [], strict: [] },
    { fault: 'describes-bad-commands', lab: [], strict: ['unknown-command'] },
    // strict never resets a connection, so this fault does not show there.
    { fault: 'dies-when-a-client-vanishes', lab: ['vanishing-client'], strict: [] },
  ];

  for (const { fault, lab, strict } of CASES) {
    it(
      `a server whose fault is ${fault} fails lab ${JSON.stringify(lab)} and strict ${JSON.stringify(strict)}`,
      BOUNDED,
      async () => {
        for (const [profile, expected] of [
          ['lab', lab],
          ['strict', strict],
        ] as const) {
          if (expected === null) continue;
          const server = await startBrokenServer(fault);
          try {
            const { status, report, failed } = await grade(server.port, profile, [
              '--timeout',
              '1',
            ]);
            assert.deepEqual(
              failed,
              expected,
              `${profile}: ${JSON.stringify(report.checks.filter((c) => !c.passed))}`,
            );
            assert.equal(status, expected.length === 0 ? 0 : 1);
            if (fault === 'one-client-at-a-time' && profile === 'strict') {
              assert.equal(
                report.checks.find((check) => check.name === 'sequential')?.finding,
                'sequential',
              );
            }
          } finally {
            await server.close();
          }
        }
      },
    );
  }

  it(
    'exits 1 with one line when nothing answers, and 2 for a bad command line',
    BOUNDED,
    async () => {
      const port = await closedPort();
      const result = await runHelo(['grade', '--port', String(port)]);
      assert.equal(result.status, 1);
      assert.equal(result.stdout, '');
      assertOneLineError(
        result.stderr,
        /^helo grade: nothing answers at 127\.0\.0\.1:\d+ — is the server running\?$/,
      );
      for (const args of [
        ['--profile', 'exam'],
        ['--lang', 'fr'],
        ['--timeout', 'x'],
        ['udp://127.0.0.1:1'],
      ]) {
        const bad = await runHelo(['grade', ...args]);
        assert.equal(bad.status, 2, `${args.join(' ')}: ${bad.stderr}`);
        assertOneLineError(bad.stderr, /^helo grade: /);
      }
    },
  );
});
