// Google's official Node.js Cloud Tasks client (@google-cloud/tasks), unchanged, against pushd:
// node scenario.js grpc|rest HOST PORT QUEUE_PATH prints one JSON object of what it saw.
// Run by tests/integration/test_cloudtasks_node.py.
'use strict';
const {CloudTasksClient} = require('@google-cloud/tasks');
const grpc = require('@grpc/grpc-js');
const {PassThroughClient} = require('google-auth-library');

async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return {code: e.code, message: e.details || e.message};
  }
}

async function main() {
  const [mode, host, port, queue] = process.argv.slice(2);
  const options = {servicePath: host, port: Number(port), authClient: new PassThroughClient()};
  if (mode === 'grpc') {
    options.sslCreds = grpc.credentials.createInsecure();
  } else {
    options.fallback = 'rest';
    options.protocol = 'http';
  }
  const client = new CloudTasksClient(options);
  const seen = {};
  const [q] = await client.getQueue({name: queue});
  seen.queue = {name: q.name, state: q.state, rate: q.rateLimits.maxDispatchesPerSecond};
  const task = {
    name: `${queue}/tasks/node-${mode}`,
    appEngineHttpRequest: {relativeUri: '/node', httpMethod: 'POST', body: Buffer.from('from node')},
  };
  const [created] = await client.createTask({parent: queue, task});
  seen.created = created.name;
  seen.duplicate = await failure(client.createTask({parent: queue, task}));
  seen.missing = await failure(client.getTask({name: `${queue}/tasks/none`}));
  seen.badId = await failure(
    client.createTask({parent: queue, task: {name: `${queue}/tasks/bad id`, appEngineHttpRequest: {}}}));
  const later = {
    name: `${queue}/tasks/later-${mode}`,
    appEngineHttpRequest: {relativeUri: '/later'},
    scheduleTime: {seconds: Math.floor(Date.now() / 1000) + 3600},
  };
  await client.createTask({parent: queue, task: later});
  const [full] = await client.getTask({name: later.name, responseView: 'FULL'});
  seen.later = {name: full.name, view: full.view, scheduleSeconds: Number(full.scheduleTime.seconds)};
  const [tasks] = await client.listTasks({parent: queue});
  seen.listed = tasks.map(t => t.name);
  const [paused] = await client.pauseQueue({name: queue});
  const [resumed] = await client.resumeQueue({name: queue});
  seen.states = [paused.state, resumed.state];
  const [ran] = await client.runTask({name: later.name});
  seen.ran = ran.name;
  await client.close();
  process.stdout.write(JSON.stringify(seen) + '\n');
}

main().catch(e => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
