// Drives a whisk platform with OpenWhisk's own JavaScript client (the `openwhisk` npm
// package). Usage: node openwhisk-npm.js <node_modules dir> <api host> <uuid:key>
// Exits non-zero on the first mismatch; prints one line per check.
'use strict';
const assert = require('assert');
const [modules, apihost, apiKey] = process.argv.slice(2);
const openwhisk = require(require.resolve('openwhisk', { paths: [modules] }));
// Over https (a self-signed certificate in the tests), with the client's insecure flag.
const ignore_certs = apihost.startsWith('https://');
const ow = openwhisk({ apihost, api_key: apiKey, ignore_certs });

async function check(name, fn) {
  await fn();
  console.log('ok ' + name);
}

(async () => {
  await check('namespaces.list', async () => {
    assert.deepStrictEqual(await ow.namespaces.list(), ['guest']);
  });
  await check('actions.create', async () => {
    const code = 'function main(p) { console.log("npm " + p.who); return {hello: p.who}; }';
    const a = await ow.actions.create({ name: 'npmhello', action: code, kind: 'nodejs:20' });
    assert.strictEqual(a.name, 'npmhello');
    assert.strictEqual(a.exec.kind, 'nodejs:20');
  });
  await check('actions.invoke result', async () => {
    const r = await ow.actions.invoke({ name: 'npmhello', blocking: true, result: true, params: { who: 'npm' } });
    assert.deepStrictEqual(r, { hello: 'npm' });
  });
  let id;
  await check('actions.invoke blocking', async () => {
    const a = await ow.actions.invoke({ name: 'npmhello', blocking: true, params: { who: 'x' } });
    assert.strictEqual(a.response.success, true);
    assert.strictEqual(a.response.status, 'success');
    id = a.activationId;
  });
  await check('actions.invoke non-blocking', async () => {
    const a = await ow.actions.invoke({ name: 'npmhello' });
    assert.match(a.activationId, /^[0-9a-f]{32}$/);
  });
  await check('activations.get/logs/result', async () => {
    const a = await ow.activations.get({ name: id });
    assert.strictEqual(a.activationId, id);
    const logs = await ow.activations.logs({ name: id });
    assert.ok(logs.logs[0].endsWith('stdout: npm x'), JSON.stringify(logs));
    const r = await ow.activations.result({ name: id });
    assert.deepStrictEqual(r.result, { hello: 'x' });
  });
  await check('activations.list', async () => {
    const list = await ow.activations.list({ name: 'npmhello', limit: 10 });
    assert.ok(list.length >= 2);
  });
  await check('actions.list and get', async () => {
    const list = await ow.actions.list();
    assert.ok(list.some((a) => a.name === 'npmhello'));
    const a = await ow.actions.get({ name: 'npmhello' });
    assert.ok(a.exec.code.includes('hello'));
  });
  await check('errors reach the client', async () => {
    await assert.rejects(ow.actions.invoke({ name: 'nope', blocking: true }), (e) => e.statusCode === 404);
    const bad = openwhisk({ apihost, api_key: apiKey.replace(/.$/, 'X'), ignore_certs });
    await assert.rejects(bad.actions.list(), (e) => e.statusCode === 401);
  });
  await check('application error is 502 with the activation', async () => {
    await ow.actions.create({ name: 'npmfail', action: 'function main() { return {error: "no"}; }', kind: 'nodejs:20' });
    await assert.rejects(ow.actions.invoke({ name: 'npmfail', blocking: true }), (e) => e.statusCode === 502 && e.error.response.result.error === 'no');
  });
  await check('packages, bindings and packaged actions', async () => {
    await ow.packages.create({ name: 'npmpkg', package: { parameters: [{ key: 'from', value: 'pkg' }] } });
    await ow.actions.create({ name: 'npmpkg/echo', action: 'function main(p) { return p; }', kind: 'nodejs:20' });
    await ow.packages.create({ name: 'npmbind', package: { binding: { namespace: 'guest', name: 'npmpkg' } } });
    const r = await ow.actions.invoke({ name: 'npmbind/echo', blocking: true, result: true, params: { x: 1 } });
    assert.deepStrictEqual(r, { from: 'pkg', x: 1 });
    const pkg = await ow.packages.get({ name: 'npmpkg' });
    assert.strictEqual(pkg.actions[0].name, 'echo');
  });
  await check('triggers and rules', async () => {
    await ow.triggers.create({ name: 'npmtrig' });
    await ow.rules.create({ name: 'npmrule', action: 'npmhello', trigger: 'npmtrig' });
    const fired = await ow.triggers.invoke({ name: 'npmtrig', params: { who: 'trigger' } });
    assert.match(fired.activationId, /^[0-9a-f]{32}$/);
    const off = await ow.rules.disable({ name: 'npmrule' });
    assert.strictEqual(off.status, 'inactive');
    const rule = await ow.rules.get({ name: 'npmrule' });
    assert.strictEqual(rule.status, 'inactive');
    await ow.rules.delete({ name: 'npmrule' });
    await ow.triggers.delete({ name: 'npmtrig' });
  });
  await check('feeds: an alarm trigger through feeds.create/get/update/delete', async () => {
    const feed = '/whisk.system/alarms/alarm';
    await ow.triggers.create({ name: 'npmalarm', trigger: { annotations: [{ key: 'feed', value: feed }] } });
    await ow.feeds.create({ name: feed, trigger: 'npmalarm', params: { cron: '0 0 1 1 *', trigger_payload: { y: 1 } } });
    let read = await ow.feeds.get({ name: feed, trigger: 'npmalarm' });
    assert.strictEqual(read.response.result.config.cron, '0 0 1 1 *');
    assert.strictEqual(read.response.result.status.active, true);
    await ow.feeds.update({ name: feed, trigger: 'npmalarm', params: { cron: '0 0 2 1 *' } });
    read = await ow.feeds.get({ name: feed, trigger: 'npmalarm' });
    assert.strictEqual(read.response.result.config.cron, '0 0 2 1 *');
    await assert.rejects(
      ow.feeds.update({ name: feed, trigger: 'npmalarm', params: { cron: 'every day' } }),
      (e) => e.statusCode === 502 && e.error.response.result.error.startsWith("cron pattern 'every day' is not valid"));
    await ow.feeds.delete({ name: feed, trigger: 'npmalarm' });
    await assert.rejects(ow.feeds.get({ name: feed, trigger: 'npmalarm' }), (e) => e.statusCode === 502);
    await ow.triggers.delete({ name: 'npmalarm' });
  });
  await check('actions.delete', async () => {
    await ow.actions.delete({ name: 'npmhello' });
    await assert.rejects(ow.actions.get({ name: 'npmhello' }), (e) => e.statusCode === 404);
  });
})().catch((e) => {
  console.error('FAILED', e && e.stack ? e.stack : e);
  process.exit(1);
});
