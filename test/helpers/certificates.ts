/**
 * Test certificates, made fresh with `openssl` (present on every machine
 * this project runs on) in a temporary directory: a CA, a server
 * certificate for 127.0.0.1/localhost signed by it, a client certificate
 * signed by it, and a "rogue" client certificate signed by nobody we trust.
 * No private key is ever committed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  readonly dir: string;
  /** Paths of PEM files. */
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly rogueCert: string;
  readonly rogueKey: string;
  /** Reads one of the files above. */
  read(path: string): Buffer;
  /** A new server certificate with another CN, for reload tests; returns its cert/key paths. */
  issueServer(cn: string): { cert: string; key: string };
  /** A new client certificate signed by the CA, with `subject` as `-subj` takes it (UTF-8). */
  issueClient(name: string, subject: string): { cert: string; key: string };
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore' });
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'helo-pki-'));
  const path = (name: string): string => join(dir, name);
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2'] // prettier-ignore
      .concat(['-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=helo test CA']),
    dir,
  );
  writeFileSync(path('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  writeFileSync(path('client.ext'), 'extendedKeyUsage=clientAuth\n');
  const issue = (name: string, subject: string, ext: string, signer: 'ca' | 'self'): void => {
    openssl(
      ['req', '-utf8', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'].concat([
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        subject,
      ]),
      dir,
    );
    const signing =
      signer === 'ca'
        ? ['-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial']
        : ['-key', `${name}.key`];
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-out',
        `${name}.pem`,
        '-days',
        '2',
        '-extfile',
        ext,
      ].concat(signing),
      dir,
    );
  };
  issue('server', '/CN=helo test server', 'server.ext', 'ca');
  issue('client', '/O=lab/CN=alice', 'client.ext', 'ca');
  issue('rogue', '/CN=mallory', 'client.ext', 'self');
  return {
    dir,
    caCert: path('ca.pem'),
    serverCert: path('server.pem'),
    serverKey: path('server.key'),
    clientCert: path('client.pem'),
    clientKey: path('client.key'),
    rogueCert: path('rogue.pem'),
    rogueKey: path('rogue.key'),
    read: (file) => readFileSync(file),
    issueServer(cn) {
      const name = `server-${cn.replace(/\W/g, '')}`;
      issue(name, `/CN=${cn}`, 'server.ext', 'ca');
      return { cert: path(`${name}.pem`), key: path(`${name}.key`) };
    },
    issueClient(name, subject) {
      issue(name, subject, 'client.ext', 'ca');
      return { cert: path(`${name}.pem`), key: path(`${name}.key`) };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
