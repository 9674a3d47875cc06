'use strict';
// The package as npm would publish it: `npm pack` of this folder, unpacked into a throwaway
// project's node_modules, then used the ways an app uses it: require() (CommonJS) and import
// (ES module) through package.json's `exports`, and TypeScript (tsc from devDependencies,
// `npm ci` in this folder; `make test-js` runs it) resolving its types for both. No network.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PKG_DIR = path.resolve(__dirname, '..');
const REPO_ROOT = path.resolve(PKG_DIR, '..', '..');
const pkg = require('../package.json');
const TSC = path.join(PKG_DIR, 'node_modules', 'typescript', 'bin', 'tsc');

// What an app gets, and nothing else (no tests, no test-support, no lockfile).
const EXPECTED_FILES = [
  'CHANGELOG.md',
  'LICENSE',
  'README.md',
  'index.d.mts',
  'index.d.ts',
  'index.js',
  'index.mjs',
  'package.json',
];
const EXPECTED_EXPORTS = [
  'AuthClient',
  'DEFAULT_STORAGE_KEY',
  'STORAGE_VERSION',
  'WxAuthError',
  'createAuthClient',
  'fromPlatform',
  'taroAdapter',
  'uniAdapter',
  'wxAdapter',
];

let work;
let consumer;
let packed;

function npm(args, cwd) {
  return execFileSync('npm', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' },
  });
}

function node(args, cwd) {
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function tsc(args, cwd) {
  return spawnSync(process.execPath, [TSC, ...args], { cwd, encoding: 'utf8' });
}

before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'wxauth-pack-'));
  [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', work], PKG_DIR));
  consumer = path.join(work, 'app');
  const target = path.join(consumer, 'node_modules', '@wxauth', 'miniprogram');
  fs.mkdirSync(target, { recursive: true });
  execFileSync('tar', ['-xzf', path.join(work, packed.filename), '-C', target, '--strip-components=1']);
  fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'app', private: true }));
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('npm pack --dry-run lists exactly the files an app needs', () => {
  const [dry] = JSON.parse(npm(['pack', '--dry-run', '--json'], PKG_DIR));
  assert.deepEqual(dry.files.map((f) => f.path).sort(), EXPECTED_FILES);
  assert.deepEqual(packed.files.map((f) => f.path).sort(), EXPECTED_FILES);
  assert.equal(dry.name, '@wxauth/miniprogram');
  assert.equal(dry.version, pkg.version);
});

test('the manifest is publishable: licence, repository, version, changelog entry', () => {
  assert.equal(pkg.private, undefined);
  assert.equal(pkg.license, 'Apache-2.0');
  assert.equal(pkg.repository.type, 'git');
  assert.equal(pkg.repository.directory, 'clients/miniprogram');
  assert.match(pkg.version, /^\d+\.\d+\.\d+$/);
  assert.equal(pkg.dependencies, undefined, 'the client has no runtime dependency');
  assert.equal(pkg.publishConfig.access, 'public'); // a scoped package is private by default
  const changelog = fs.readFileSync(path.join(PKG_DIR, 'CHANGELOG.md'), 'utf8');
  assert.match(changelog, new RegExp(`^## ${pkg.version.replace(/\./g, '\\.')} `, 'm'));
  const licence = fs.readFileSync(path.join(PKG_DIR, 'LICENSE'), 'utf8');
  assert.equal(licence, fs.readFileSync(path.join(REPO_ROOT, 'LICENSE'), 'utf8'));
  assert.match(licence, /Apache License\s+Version 2\.0, January 2004/);
});

test('require() and import of the installed package load and export the same names', () => {
  const cjs = JSON.parse(
    node(['-e', "console.log(JSON.stringify(Object.keys(require('@wxauth/miniprogram')).sort()))"], consumer)
  );
  const esm = JSON.parse(
    node(
      [
        '--input-type=module',
        '-e',
        "import * as m from '@wxauth/miniprogram'; import d from '@wxauth/miniprogram';" +
          "const own = Object.keys(m).filter((k) => k !== 'default').sort();" +
          "const same = own.every((k) => m[k] === d[k]) && Object.keys(d).length === own.length;" +
          'console.log(JSON.stringify({ own, same }))',
      ],
      consumer
    )
  );
  assert.deepEqual(cjs, EXPECTED_EXPORTS);
  assert.deepEqual(esm.own, EXPECTED_EXPORTS);
  assert.equal(esm.same, true, 'the default export is the module object with the same values');
  // The paths the conditions chose are the installed package's files.
  const resolved = node(['-e', "console.log(require.resolve('@wxauth/miniprogram'))"], consumer).trim();
  assert.equal(resolved, path.join(consumer, 'node_modules', '@wxauth', 'miniprogram', 'index.js'));
});

test('index.d.ts declares every runtime export, and nothing the runtime lacks', () => {
  const dts = fs.readFileSync(path.join(PKG_DIR, 'index.d.ts'), 'utf8');
  const declared = [...dts.matchAll(/^export (?:declare )?(?:function|class|const) (\w+)/gm)].map(
    (m) => m[1]
  );
  assert.deepEqual([...new Set(declared)].sort(), EXPECTED_EXPORTS);
});

const USE = `
  const adapter = wxAdapter({});
  const client: AuthClient = createAuthClient({
    baseURL: 'https://auth.example.com',
    adapter,
    appid: 'wx0123456789abcdef',
    provider: 'weixin',
    device: { name: 'iPhone', platform: 'ios' },
  });
  const token: Promise<string> = client.getAccessToken();
  const res: Promise<PlatformResponse<{ id: string }>> = client.request<{ id: string }>({ url: '/me' });
  const error: WxAuthErrorCode = new WxAuthError('logged_out', 'x').code;
  const me: Promise<string | null> = client.updateProfile({ nickname: 'n', avatar_url: null }).then((u) => u.nickname);
  const steps = client.decrypt<{ stepInfoList: { step: number }[]; watermark: { appid: string; timestamp: number } }>(
    { encryptedData: 'e', iv: 'i', errMsg: 'getWeRunData:ok' }
  );
  const stale: WxAuthErrorCode = 'session_key_expired';
  void token; void res; void error; void me; void steps; void stale;
`;

function project(files) {
  const dir = fs.mkdtempSync(path.join(consumer, 'ts-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

test('TypeScript resolves the types for import (node16, bundler) and require (node16)', () => {
  assert.ok(fs.existsSync(TSC), 'typescript is missing: run `npm ci` in clients/miniprogram (make test-js does)');
  const dir = project({
    'esm.mts':
      "import { createAuthClient, wxAdapter, WxAuthError, type AuthClient, type PlatformResponse, type WxAuthErrorCode } from '@wxauth/miniprogram';\n" +
      "import wxauth from '@wxauth/miniprogram';\n" +
      USE +
      'const again: AuthClient = wxauth.createAuthClient({ baseURL: "x", adapter: wxauth.uniAdapter({}) });\nvoid again;\n',
    'cjs.cts':
      "import wxauth = require('@wxauth/miniprogram');\n" +
      'const { createAuthClient, wxAdapter, WxAuthError } = wxauth;\n' +
      'type AuthClient = wxauth.AuthClient; type PlatformResponse<T> = wxauth.PlatformResponse<T>;\n' +
      'type WxAuthErrorCode = wxauth.WxAuthErrorCode;\n' +
      USE,
  });
  const common = ['--noEmit', '--strict'];
  for (const [mod, res, files] of [
    ['node16', 'node16', ['esm.mts', 'cjs.cts']],
    ['esnext', 'bundler', ['esm.mts']],
  ]) {
    const r = tsc([...common, '--module', mod, '--moduleResolution', res, ...files], dir);
    assert.equal(r.status, 0, `${res}: ${r.stdout}${r.stderr}`);
  }
});

test('TypeScript checks against those types: a wrong option is an error', () => {
  const dir = project({
    'bad.mts':
      "import { createAuthClient, wxAdapter } from '@wxauth/miniprogram';\n" +
      "createAuthClient({ baseURL: 'x', adapter: wxAdapter({}), provider: 42 });\n" +
      "createAuthClient({ adapter: wxAdapter({}) });\n" +
      "const n: number = createAuthClient({ baseURL: 'x', adapter: wxAdapter({}) }).getAccessToken();\n" +
      "createAuthClient({ baseURL: 'x', adapter: wxAdapter({}) }).updateProfile({ nickname: 7 });\n",
  });
  const r = tsc(['--noEmit', '--strict', '--module', 'node16', '--moduleResolution', 'node16', 'bad.mts'], dir);
  assert.notEqual(r.status, 0);
  const errors = r.stdout.split('\n').filter((line) => /error TS\d+/.test(line));
  assert.equal(errors.length, 4, r.stdout);
  assert.match(errors[0], /^bad\.mts\(2,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/);
  assert.match(r.stdout, /Property 'baseURL' is missing/);
  assert.match(errors[2], /^bad\.mts\(4,\d+\): .*'Promise<string>'/);
  assert.match(errors[3], /^bad\.mts\(5,\d+\): error TS2322: Type 'number' is not assignable/);
});
