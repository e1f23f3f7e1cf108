// Google's official Node.js Cloud Tasks client (@google-cloud/tasks), unchanged, against pushd:
//   node scenario.js grpc|rest HOST PORT PARENT before|after [HTTP_URL]
// runs one phase of issue 19's scenario (the queues of tests/integration/test_cloudtasks_scenario.py
// under PARENT = projects/P/locations/L) and prints one JSON object of what it saw. "before" runs
// every step (with HTTP_URL, an http_request task to it with an oidc_token); the test then
// restarts the daemon and "after" checks what the restart kept.
// Run by tests/integration/test_cloudtasks_node.py, which checks the deliveries.
'use strict';
const {CloudTasksClient} = require('@google-cloud/tasks');
const grpc = require('@grpc/grpc-js');
const {PassThroughClient} = require('google-auth-library');

const HOUR_S = 3600;

async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return {code: e.code, message: e.details || e.message};
  }
}

function last(name) {
  return name.slice(name.lastIndexOf('/') + 1);
}

// Every page of a List call (pageSize small), as the last segment of each name.
async function pages(list, request) {
  const out = [];
  let next = request;
  while (next) {
    const [items, nextRequest] = await list(next, {autoPaginate: false});
    out.push(items.map(item => last(item.name)));
    next = nextRequest;
  }
  return out;
}

function client(mode, host, port) {
  const options = {servicePath: host, port: Number(port), authClient: new PassThroughClient()};
  if (mode === 'grpc') {
    options.sslCreds = grpc.credentials.createInsecure();
  } else {
    options.fallback = 'rest';
    options.protocol = 'http';
  }
  return new CloudTasksClient(options);
}

async function before(c, parent, httpUrl) {
  const q = id => `${parent}/queues/${id}`;
  const t = (id, task) => `${q(id)}/tasks/${task}`;
  const seen = {};
  // A queue created through the API, and a task delivered from it.
  const [made] = await c.createQueue({
    parent,
    queue: {name: q('ct-api'), rateLimits: {maxDispatchesPerSecond: 20}, retryConfig: {maxAttempts: 3}},
  });
  seen.made = {state: made.state, rate: made.rateLimits.maxDispatchesPerSecond};
  await c.createTask({
    parent: q('ct-api'),
    task: {name: t('ct-api', 'made'), appEngineHttpRequest: {relativeUri: '/api'}},
  });
  seen.queuePages = await pages(c.listQueues.bind(c), {parent, pageSize: 2});
  const [retryQueue] = await c.getQueue({name: q('ct-retry')});
  seen.retryQueue = {maxAttempts: retryQueue.retryConfig.maxAttempts, state: retryQueue.state};

  // A schedule time 1-2 s ahead (the test checks the delivery is not early).
  seen.etaSeconds = Math.ceil(Date.now() / 1000) + 2;
  const sched = {
    name: t('ct-sched', 'at-eta'),
    appEngineHttpRequest: {relativeUri: '/sched', httpMethod: 'POST', body: Buffer.from('on time')},
    scheduleTime: {seconds: seen.etaSeconds},
  };
  await c.createTask({parent: q('ct-sched'), task: sched});
  const [full] = await c.getTask({name: sched.name, responseView: 'FULL'});
  seen.sched = {
    view: full.view,
    scheduleSeconds: Number(full.scheduleTime.seconds),
    body: Buffer.from(full.appEngineHttpRequest.body).toString(),
  };

  // Retries: the receiver answers 503, 404, then 200.
  const retry = {name: t('ct-retry', 'thrice'), appEngineHttpRequest: {relativeUri: '/retry'}};
  await c.createTask({parent: q('ct-retry'), task: retry});
  if (httpUrl) {
    // An HTTP task with an OIDC token, answered 503, 404, 200 too (the test verifies the token).
    const http = {
      name: t('ct-retry', 'http-thrice'),
      httpRequest: {
        url: httpUrl,
        headers: {'X-Scenario': 'kept'},
        oidcToken: {serviceAccountEmail: 'tasks@scenario.iam.gserviceaccount.com'},
      },
    };
    const [created] = await c.createTask({parent: q('ct-retry'), task: http});
    seen.http = {
      url: created.httpRequest.url,
      headers: created.httpRequest.headers,
      email: created.httpRequest.oidcToken.serviceAccountEmail,
    };
  }

  // Pause, dedup and the tombstone answers, paging, run while paused, purge, resume, run.
  const [paused] = await c.pauseQueue({name: q('ct-hold')});
  const dup = {name: t('ct-hold', 'dup'), appEngineHttpRequest: {relativeUri: '/hold/dup'}};
  await c.createTask({parent: q('ct-hold'), task: dup});
  seen.duplicate = await failure(c.createTask({parent: q('ct-hold'), task: dup}));
  await c.deleteTask({name: dup.name});
  seen.deleted = await failure(c.getTask({name: dup.name}));
  seen.tombstoned = await failure(c.createTask({parent: q('ct-hold'), task: dup}));
  seen.missing = await failure(c.getTask({name: t('ct-hold', 'never-used')}));
  seen.badId = await failure(c.createTask({
    parent: q('ct-hold'),
    task: {name: t('ct-hold', 'bad id'), appEngineHttpRequest: {}},
  }));
  const later = {seconds: Math.floor(Date.now() / 1000) + HOUR_S};
  for (let i = 0; i < 5; i++) {
    const task = {name: t('ct-hold', `h${i}`), appEngineHttpRequest: {relativeUri: `/hold/h${i}`}};
    if (i === 4) task.scheduleTime = later;
    await c.createTask({parent: q('ct-hold'), task});
  }
  seen.taskPages = await pages(c.listTasks.bind(c), {parent: q('ct-hold'), pageSize: 2});
  const [ran] = await c.runTask({name: t('ct-hold', 'h4')});
  seen.ranWhilePaused = last(ran.name);
  await c.purgeQueue({name: q('ct-hold')});
  seen.afterPurge = await pages(c.listTasks.bind(c), {parent: q('ct-hold'), pageSize: 2});
  const afterPurge = {
    name: t('ct-hold', 'after-purge'),
    appEngineHttpRequest: {relativeUri: '/hold/after-purge'},
    scheduleTime: later,
  };
  await c.createTask({parent: q('ct-hold'), task: afterPurge});
  const [resumed] = await c.resumeQueue({name: q('ct-hold')});
  seen.states = [paused.state, resumed.state];
  await c.runTask({name: afterPurge.name});

  // Kept across the restart: a task an hour ahead and a paused queue (and the API-created one).
  const kept = {
    name: t('ct-durable', 'kept'),
    appEngineHttpRequest: {relativeUri: '/durable', body: Buffer.from('durable')},
    scheduleTime: {seconds: Math.floor(Date.now() / 1000) + HOUR_S, nanos: 250000000},
  };
  await c.createTask({parent: q('ct-durable'), task: kept});
  seen.keptSeconds = kept.scheduleTime.seconds;
  await c.pauseQueue({name: q('default')});
  return seen;
}

async function after(c, parent) {
  const q = id => `${parent}/queues/${id}`;
  const t = (id, task) => `${q(id)}/tasks/${task}`;
  const seen = {};
  const [idle] = await c.getQueue({name: q('default')});
  const [resumed] = await c.resumeQueue({name: q('default')});
  seen.states = [idle.state, resumed.state];
  const [made] = await c.getQueue({name: q('ct-api')});
  seen.made = {rate: made.rateLimits.maxDispatchesPerSecond, maxAttempts: made.retryConfig.maxAttempts};
  const [kept] = await c.getTask({name: t('ct-durable', 'kept'), responseView: 'FULL'});
  seen.kept = {
    scheduleSeconds: Number(kept.scheduleTime.seconds),
    nanos: kept.scheduleTime.nanos,
    body: Buffer.from(kept.appEngineHttpRequest.body).toString(),
  };
  seen.duplicate = await failure(c.createTask({
    parent: q('ct-durable'),
    task: {name: kept.name, appEngineHttpRequest: {}},
  }));
  seen.delivered = await failure(c.getTask({name: t('ct-retry', 'thrice')}));
  await c.runTask({name: kept.name});
  return seen;
}

async function main() {
  const [mode, host, port, parent, phase, httpUrl] = process.argv.slice(2);
  const c = client(mode, host, port);
  const seen = await {before, after}[phase](c, parent, httpUrl);
  await c.close();
  process.stdout.write(JSON.stringify(seen) + '\n');
}

main().catch(e => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
