/**
 * What `npm pack` puts in the package (docs/DEPLOY.md): everything
 * `npm install -g` needs to run helo and nothing else, code that imports
 * only runtime dependencies, and `helo --version` from package.json.
 * The slow half, installing the tarball for real, is test/pack/install.test.ts
 * (`npm run test:pack`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { REPO_ROOT } from '../../support/server-process.js';
import { runHelo } from '../helpers/run-cli.js';

interface PackageJson {
  readonly version: string;
  readonly dependencies: Record<string, string>;
  readonly devDependencies: Record<string, string>;
}

const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as PackageJson;

/** The package name a bare import specifier names: `pino`, `@scope/name`. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

describe('the npm package', () => {
  let files: string[] = [];

  before(() => {
    // --ignore-scripts: `prepare` would rebuild, and the build already ran.
    const result = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(result.status, 0, result.stderr);
    files = (JSON.parse(result.stdout) as [{ files: { path: string }[] }])[0].files.map(
      ({ path }) => path,
    );
  });

  it('holds the executable, the compiled code, the web client and the units', () => {
    for (const needed of [
      'package.json',
      'README.md',
      'bin/helo',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/cli/main.js',
      'dist/src/cli/stop-signals.js',
      'web/index.html',
      'deploy/systemd/helo.service',
      'deploy/systemd/helo.socket',
      'deploy/systemd/helo-http.socket',
      'deploy/systemd/helo-inetd.socket',
      'deploy/systemd/helo-inetd@.service',
      'deploy/haproxy/haproxy.cfg',
      'deploy/haproxy/README.md',
      'docs/DEPLOY.md',
    ]) {
      assert.ok(files.includes(needed), `the package holds ${needed}`);
    }
  });

  it('leaves out sources, tests, benchmarks and build state', () => {
    const stray = files.filter(
      (path) =>
        /^(src|test|bench|support|scripts|node_modules|data)\//.test(path) ||
        /^dist\/(test|bench|support|scripts)\//.test(path) ||
        path.endsWith('.tsbuildinfo') ||
        path.endsWith('.ts') !== path.endsWith('.d.ts'),
    );
    assert.deepEqual(stray, []);
  });

  it('imports only Node built-ins, its own files and runtime dependencies', () => {
    const runtime = new Set(Object.keys(manifest.dependencies));
    const builtins = new Set(builtinModules);
    const missing = new Set<string>();
    const used = new Set<string>();
    for (const path of files.filter((file) => file.endsWith('.js') || file === 'bin/helo')) {
      const code = readFileSync(join(REPO_ROOT, path), 'utf8');
      const specifiers = [
        ...code.matchAll(/(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm),
        ...code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
        ...code.matchAll(/(?:^|\n)import\s+['"]([^'"]+)['"]/g),
      ].map((match) => match[1]!);
      for (const specifier of specifiers) {
        if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
        const name = packageName(specifier);
        used.add(name);
        if (builtins.has(name) || runtime.has(name)) continue;
        missing.add(`${path} imports ${specifier}`);
      }
    }
    assert.deepEqual([...missing], [], 'a devDependency is not installed by npm install -g');
    // The scan sees the imports at all: every runtime dependency is used somewhere.
    assert.deepEqual(
      [...runtime].filter((name) => !used.has(name)),
      [],
    );
  });

  it('keeps the browser and plotting tools out of the runtime dependencies', () => {
    for (const devOnly of ['@sparticuz/chromium', 'playwright-core', 'vega', 'vega-lite']) {
      assert.equal(manifest.dependencies[devOnly], undefined, devOnly);
      assert.ok(manifest.devDependencies[devOnly] !== undefined, devOnly);
    }
  });

  it("prints package.json's version for helo --version and helo -V", async () => {
    for (const flag of ['--version', '-V']) {
      const result = await runHelo([flag]);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, `${manifest.version}\n`, flag);
      assert.equal(result.stderr, '');
    }
  });
});
