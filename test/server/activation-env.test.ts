/**
 * The socket-activation variables (src/server/transports/activation.ts):
 * whatever they hold, they are read into descriptors 3.. with unique names
 * or refused with an InvalidOptionError, and never left in the environment.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidOptionError } from '../../src/errors.js';
import { takeListenFds } from '../../src/server/transports/activation.js';

const PID = 4242;

describe('takeListenFds', () => {
  it('reads names into descriptors from 3 on, the first unnamed one being tcp', () => {
    const env = { LISTEN_PID: String(PID), LISTEN_FDS: '3', LISTEN_FDNAMES: 'http::udp' };
    assert.deepEqual(takeListenFds(env, PID), { http: 3, tcp: 4, udp: 5 });
    assert.deepEqual(env, {});
    const unnamed = { LISTEN_PID: String(PID), LISTEN_FDS: '1' };
    assert.deepEqual(takeListenFds(unnamed, PID), { tcp: 3 });
  });

  it("ignores another process's sockets, and still removes the variables", () => {
    const env = { LISTEN_PID: '1', LISTEN_FDS: '1', LISTEN_FDNAMES: 'tcp', OTHER: 'kept' };
    assert.equal(takeListenFds(env, PID), null);
    assert.deepEqual(env, { OTHER: 'kept' });
  });

  it('refuses unknown names, duplicates and a bad count', () => {
    for (const [count, names] of [
      ['1', 'smtp'],
      ['2', 'tcp:tcp'],
      ['2', ':'], // two unnamed: only the first can be tcp
      ['0', ''],
      ['x', 'tcp'],
    ] as const) {
      const env = { LISTEN_PID: String(PID), LISTEN_FDS: count, LISTEN_FDNAMES: names };
      assert.throws(() => takeListenFds(env, PID), InvalidOptionError, `${count} ${names}`);
      assert.deepEqual(env, {});
    }
  });

  it('any values: unique descriptors in range, or an InvalidOptionError; never left behind', () => {
    const name = fc.constantFrom('tcp', 'tls', 'unix', 'http', 'udp', '', 'unknown', 'x:y', 'TCP');
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(String(PID)), fc.string()),
        fc.oneof(fc.integer({ min: -1, max: 8 }).map(String), fc.string()),
        fc.option(fc.array(name, { maxLength: 8 }).map((names) => names.join(':'))),
        (pid, count, names) => {
          const env: NodeJS.ProcessEnv = { LISTEN_PID: pid, LISTEN_FDS: count };
          if (names !== null) env.LISTEN_FDNAMES = names;
          let fds;
          try {
            fds = takeListenFds(env, PID);
          } catch (error) {
            assert.ok(error instanceof InvalidOptionError, String(error));
            assert.deepEqual(env, {});
            return;
          }
          assert.deepEqual(env, {});
          if (fds === null) return;
          const numbers = Object.values(fds);
          assert.equal(new Set(numbers).size, numbers.length);
          assert.equal(numbers.length, Number(count));
          for (const fd of numbers) assert.ok(fd >= 3 && fd < 3 + Number(count));
        },
      ),
    );
  });
});
