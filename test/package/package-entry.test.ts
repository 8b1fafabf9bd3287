/**
 * `import { connect } from 'helo'` works as the README shows: through the
 * package's own name and its "exports", against a real server.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

describe("the 'helo' package entry point", () => {
  it('exports the client, the server and the stores under the package name', async () => {
    const helo = await import('helo');
    const store = new helo.MemoryStore();
    const server = await helo.startServer({ port: 0, store, logLevel: 'silent' });
    try {
      const client = await helo.connect({ port: server.port });
      assert.equal((await client.helo('reader')).line, '100 OK');
      assert.equal((await client.data('from the package')).line, '300 DRCV');
      assert.equal((await client.quit()).line, '200 BYE');
      assert.equal((await store.read(0, 10))[0]?.name, 'reader');
      assert.equal(typeof helo.ConnectError, 'function');
      assert.equal(helo.Replies.DRCV.code, 300);
    } finally {
      await server.close();
    }
  });
});
