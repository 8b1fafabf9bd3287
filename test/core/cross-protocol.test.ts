import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { looksLikeHttp } from '../../src/core/cross-protocol.js';

function check(line: string): boolean {
  const bytes = Buffer.from(`..${line}..`, 'latin1');
  return looksLikeHttp(bytes, 2, bytes.length - 2);
}

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH', 'CONNECT'];

describe('looksLikeHttp (protocol.md §8)', () => {
  for (const line of [
    'GET / HTTP/1.1',
    'POST /submit HTTP/1.0',
    'CONNECT 127.0.0.1:7777 HTTP/1.1',
    'OPTIONS * HTTP/2',
    '  get /x http/1.1  ',
    'Host: 127.0.0.1:7777',
    'HOST:x',
    'Origin: http://evil.example',
  ]) {
    it(`recognises ${JSON.stringify(line)}`, () => assert.equal(check(line), true));
  }

  for (const line of [
    'GET',
    'GET /',
    'GET HTTP/1.1',
    'GETS / HTTP/1.1',
    'GET / FTP/1.1',
    'GET / HTTP/x',
    'Hosts: x',
    'Host x',
    'DATA GET / HTTP/1.1',
    'HELO Host: x',
    '',
  ]) {
    it(`lets ${JSON.stringify(line)} through`, () => assert.equal(check(line), false));
  }

  it('reads only inside the line it is given, not the bytes after it', () => {
    // `GET / HTTP/` has no version digit; the '1' after the line's end is not part of it.
    assert.equal(looksLikeHttp(Buffer.from('GET / HTTP/1'), 0, 11), false);
    assert.equal(looksLikeHttp(Buffer.from('GET / HTTP/1'), 0, 12), true);
  });

  it('recognises every method with any target and version (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...METHODS),
        fc.stringMatching(/^[!-~]{1,30}$/),
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: 0, max: 9 }),
        (method, target, major, minor) => {
          assert.equal(check(`${method} ${target} HTTP/${major}.${minor}`), true);
        },
      ),
    );
  });
});
