'use strict';
// updateProfile() and decrypt() (issue 25) against the real local server (python -m devserver)
// on DynamoDB Local, with a fake WeChat of the test's own (to encrypt WeRun data with the
// user's session_key, as WeChat does) and WeChat's content check on, through a fake `wx`
// doing real HTTP.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { createAuthClient, wxAdapter } = require('..');
const { createFakeWx, createClock } = require('../test-support/fake-wx.js');
const { startDynamoDBLocal, startWxauth, startFakeWeChat } = require('../test-support/server.js');

const AVATAR = 'https://thirdwx.qlogo.cn/mmopen/vi_32/js/132';
let ddb = null;
let wechat = null;
let server = null;
const fakes = [];

before(async () => {
  ddb = await startDynamoDBLocal();
  wechat = await startFakeWeChat();
  server = await startWxauth({
    dynamodbEndpoint: ddb.endpoint,
    env: { WECHAT_API_BASE: wechat.url, AUTH_PROFILE_SECURITY_CHECK: 'true' },
  });
});

after(async () => {
  for (const fake of fakes) fake.close();
  if (server) await server.stop();
  if (wechat) await wechat.stop();
  if (ddb) await ddb.stop();
});

function setup() {
  const fake = createFakeWx();
  fakes.push(fake);
  const client = createAuthClient({ baseURL: server.baseURL, adapter: wxAdapter(fake.wx), now: createClock().now });
  return { fake, client };
}

test('updateProfile() sets the profile over POST /me; a risky nickname is refused', async () => {
  const { fake, client } = setup();
  await client.login();
  await assert.rejects(client.updateProfile({ nickname: 'so risky' }), { code: 'risky_content', status: 400 });
  await assert.rejects(client.updateProfile({ avatar_url: 'https://evil.example/a.png' }), {
    code: 'invalid_request',
  });
  const me = await client.updateProfile({ nickname: '小明 🐟', avatar_url: AVATAR });
  assert.equal(me.nickname, '小明 🐟');
  assert.equal(me.avatar_url, AVATAR);
  const shown = await client.request({ url: '/me' });
  assert.deepEqual([shown.data.nickname, shown.data.avatar_url], ['小明 🐟', AVATAR]);
  assert.ok(fake.sent.every((s) => s.method !== 'PATCH')); // wx.request cannot send PATCH
});

test('decrypt() reads WeRun data with the session_key kept on the server, until a later wx.login', async () => {
  const { fake, client } = setup();
  await client.login();
  const werun = { stepInfoList: [{ timestamp: 1_700_000_000, step: 10_000 }] };
  const fromWeChat = { errMsg: 'getWeRunData:ok', ...(await wechat.openData(fake.user, werun)) };

  const data = await client.decrypt(fromWeChat);
  assert.deepEqual(data.stepInfoList, werun.stepInfoList);
  assert.equal(typeof data.watermark.appid, 'string');

  // Another login of the same WeChat user (another device): WeChat's key changes.
  const other = setup();
  other.fake.code = () => `${fake.user}.other-device`; // the same user, a code of its own
  await other.client.login();
  const newer = await wechat.openData(fake.user, werun);
  await assert.rejects(client.decrypt(newer), { code: 'session_key_expired', status: 400 });
  await client.login(); // as the error says: log in again, then get the data again
  const again = await wechat.openData(fake.user, werun);
  assert.deepEqual((await client.decrypt(again)).stepInfoList, werun.stepInfoList);
  for (const s of fake.sent) {
    const answered = (s.response && s.response.data) || {};
    assert.ok(!('session_key' in answered) && !('sessionKey' in answered)); // never handed out
  }
});
