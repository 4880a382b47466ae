#!/usr/bin/env node
// Makes sure PostgreSQL and Redis answer at DATABASE_URL / REDIS_URL before the demo or the tests run:
// docker compose where a Docker engine runs, else this machine's own servers, else a clear message.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';

const database = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const redis = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const services = [
  { name: 'PostgreSQL', host: database.hostname, port: Number(database.port || 5432), local: localPostgres },
  { name: 'Redis', host: redis.hostname, port: Number(redis.port || 6379), local: localRedis },
];

const reachable = (host, port) =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 1000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });

async function waitFor(service, seconds) {
  for (let i = 0; i < seconds * 4; i++) {
    if (await reachable(service.host, service.port)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

function run(command) {
  try {
    execSync(command, { stdio: 'ignore', timeout: 120_000 });
    return true;
  } catch {
    return false;
  }
}

function localPostgres() {
  if (!existsSync('/etc/postgresql')) return false;
  const version = readdirSync('/etc/postgresql')[0];
  return version && run(`pg_ctlcluster --skip-systemctl-redirect ${version} main start`);
}

function localRedis(service) {
  return run(`redis-server --daemonize yes --bind 127.0.0.1 -::1 --port ${service.port} --save "" --appendonly no`);
}

const down = [];
for (const service of services) if (!(await reachable(service.host, service.port))) down.push(service);
if (down.length === 0) process.exit(0);

console.log(`Not reachable: ${down.map((s) => `${s.name} at ${s.host}:${s.port}`).join(', ')}; starting them.`);
if (run('docker info')) {
  run('docker compose up -d --wait');
} else {
  for (const service of down) service.local(service);
}
const still = [];
for (const service of down) if (!(await waitFor(service, 30))) still.push(service);
if (still.length > 0) {
  console.error(
    `Could not start ${still.map((s) => s.name).join(' and ')}. Start them yourself (docker compose up -d, or your local servers) ` +
      'or point DATABASE_URL / REDIS_URL at running ones, then run the command again.',
  );
  process.exit(1);
}
console.log('Services are up.');
