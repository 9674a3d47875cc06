'use strict';
// Starts the real wxauth local server (`python -m devserver`, i.e. `make run`) for the tests,
// on AWS's DynamoDB Local (the one tests/integration/dynamodb_local.py installs and runs),
// with a signing key set the test generates, so it can sign tokens the server accepts.
//
// Nothing outlives the test process: every child runs in its own process group, stop() sends
// SIGTERM to the group (SIGKILL after 5 s), an 'exit' hook SIGKILLs whatever is left, and the
// Python side stops DynamoDB Local when our pipe to it closes (it also gets PDEATHSIG).

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const PYTHON = path.join(REPO_ROOT, '.venv', 'bin', 'python');
const STARTUP_TIMEOUT_MS = 90_000;

const children = new Set();
process.on('exit', () => {
  for (const child of children) killGroup(child, 'SIGKILL');
});

function killGroup(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function track(child, name) {
  let log = '';
  const append = (chunk) => {
    log = (log + chunk.toString()).slice(-8000);
  };
  if (child.stdout) child.stdout.on('data', append);
  if (child.stderr) child.stderr.on('data', append);
  children.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  exited.then(() => children.delete(child));
  return {
    child,
    exited,
    log: () => log,
    async stop() {
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    describe: () => `${name} (pid ${child.pid}) log tail:\n${log}`,
  };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function get(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

/** A key set file in chalicelib/signing_keys.py's format, with one fresh RSA key. */
function writeKeySet(file) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  // RFC 7638 thumbprint, as the server computes kids.
  const canonical = JSON.stringify({ e: jwk.e, kty: 'RSA', n: jwk.n });
  const kid = b64url(crypto.createHash('sha256').update(canonical).digest());
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const keySet = {
    active_kid: kid,
    keys: [{ kid, private_key_pem: pem, created_at: Math.floor(Date.now() / 1000) - 3600 }],
  };
  fs.writeFileSync(file, JSON.stringify(keySet, null, 2), { mode: 0o600 });
  return { kid, privateKey };
}

/** Sign `claims` as the server does (RS256, kid, typ at+jwt). */
function signAccessToken(claims, key) {
  const header = { alg: 'RS256', kid: key.kid, typ: 'at+jwt' };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = crypto.sign('sha256', Buffer.from(input), key.privateKey);
  return `${input}.${b64url(signature)}`;
}

function decodeClaims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

async function waitFor(check, proc, what) {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`${what} exited before it was ready; ${proc.describe()}`);
    }
    const value = await check().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} not ready in time; ${proc.describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const DDB_SCRIPT = `
import signal, sys
from tests.integration.dynamodb_local import DynamoDBLocal
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with DynamoDBLocal() as ddb:
    print(ddb.endpoint_url, flush=True)
    sys.stdin.read()  # until our parent closes the pipe (or dies)
`;

/** AWS's DynamoDB Local, installed (cached) and started by the Python test helper. */
async function startDynamoDBLocal() {
  const child = spawn(PYTHON, ['-c', DDB_SCRIPT], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const proc = track(child, 'DynamoDB Local');
  let endpoint = null;
  child.stdout.on('data', (chunk) => {
    const m = /^(http:\/\/\S+)$/m.exec(chunk.toString());
    if (m) endpoint = m[1];
  });
  await waitFor(async () => endpoint, proc, 'DynamoDB Local');
  return {
    endpoint,
    async stop() {
      child.stdin.end(); // the helper stops java and exits
      const timer = setTimeout(() => killGroup(child, 'SIGTERM'), 5000);
      await Promise.race([proc.exited, proc.stop()]);
      clearTimeout(timer);
    },
  };
}

/**
 * `python -m devserver` on a free port, with a fresh key set; on DynamoDB Local if
 * `dynamodbEndpoint` is given (else its embedded moto).
 */
async function startWxauth({ dynamodbEndpoint, env = {} } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxauth-js-'));
  const keysFile = path.join(dir, 'signing-keys.json');
  const key = writeKeySet(keysFile);
  const port = await freePort();
  const childEnv = { ...process.env };
  // Settings the tests depend on: never inherited from the caller's shell.
  for (const name of Object.keys(childEnv)) {
    if (/^(AUTH_|WECHAT_|AWS_)/.test(name)) delete childEnv[name];
  }
  Object.assign(childEnv, {
    PORT: String(port),
    AUTH_SIGNING_KEYS_FILE: keysFile,
    AUTH_TABLE_NAME: `wxauth-js-${port}`,
    AUTH_ACCESS_TTL: '1800',
    AUTH_REFRESH_GRACE: '30',
    AWS_DEFAULT_REGION: 'us-east-1',
    ...env,
  });
  if (dynamodbEndpoint) {
    Object.assign(childEnv, {
      AWS_ENDPOINT_URL_DYNAMODB: dynamodbEndpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
    });
  }
  const child = spawn(PYTHON, ['-m', 'devserver'], {
    cwd: REPO_ROOT,
    env: childEnv,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = track(child, 'devserver');
  const baseURL = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await get(`${baseURL}/.well-known/jwks.json`)) === 200, proc, 'wxauth');
  return {
    baseURL,
    key,
    tableName: childEnv.AUTH_TABLE_NAME,
    log: proc.log,
    async stop() {
      await proc.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The fake WeChat on its own (`python -m devserver.fake_wechat`, the local app's appid and
 * secret), for tests that also talk to it: `openData(user, data)` is what wx.getWeRunData
 * gives, encrypted with the user's current session_key (POST /_fake/open-data). Pass its
 * `url` to startWxauth as WECHAT_API_BASE. */
async function startFakeWeChat() {
  const port = await freePort();
  const childEnv = { ...process.env };
  for (const name of Object.keys(childEnv)) {
    if (/^(AUTH_|WECHAT_|AWS_)/.test(name)) delete childEnv[name];
  }
  const child = spawn(PYTHON, ['-m', 'devserver.fake_wechat', '--port', String(port)], {
    cwd: REPO_ROOT,
    env: childEnv,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = track(child, 'fake WeChat');
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await get(`${url}/_fake/stats`)) === 200, proc, 'fake WeChat');
  return {
    url,
    async openData(user, data) {
      const res = await fetch(`${url}/_fake/open-data`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user, data }),
      });
      if (res.status !== 200) throw new Error(`open-data: HTTP ${res.status}`);
      return res.json();
    },
    stop: () => proc.stop(),
  };
}

module.exports = {
  startDynamoDBLocal,
  startWxauth,
  startFakeWeChat,
  signAccessToken,
  decodeClaims,
  REPO_ROOT,
};
