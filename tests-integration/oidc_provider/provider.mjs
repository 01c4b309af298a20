// A second, independent OpenID Connect provider for kitty's integration tests: panva's
// oidc-provider (a certified implementation nobody here wrote), configured strictly.
//
//   node provider.mjs --port 0 [--access-ttl 3] [--client-jwks FILE]
//
// Binds 127.0.0.1 only, prints one JSON line {"port": N, "issuer": "..."} once it accepts
// connections, and exits when its stdin reaches EOF (a crashed test run never leaves it behind).
//
// What the provider itself does (its own code, only configured here): refresh-token rotation
// with reuse detection that revokes the whole grant, 3 s access tokens stamped in whole seconds,
// zero clock tolerance, discovery, userinfo (/me), RFC 7009 revocation, RFC 7662 introspection,
// id_tokens on every token response, and four clients: public (none), client_secret_basic,
// client_secret_post and private_key_jwt (its public JWKS is the one the test passes).
//
// What this file adds around it, for tests only:
//   GET /interaction/:uid  the login and consent pages: approve user "alice" at once, so a test
//                          gets its first token set through the real authorization code flow
//   /admin/*               counters, a hashed request log, fault injection, reset (see below)
// The request log identifies tokens by the first 16 hex of sha256(token); no token value is
// ever printed, logged or returned by an admin route.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'access-ttl': { type: 'string', default: '3' },
    'client-jwks': { type: 'string' },
  },
});

// Shared with tests-integration/_oidc_provider.py (the test's side of the same fixture).
const REDIRECT_URI = 'http://127.0.0.1/kitty-test-callback';
const ACCOUNT = { sub: 'alice', email: 'alice@example.com', email_verified: true, name: 'Alice Liddell' };
const SECRETS = { 'kitty-basic': 'basic:secret/+ 14', 'kitty-post': 'post-secret-14' };
const SCOPE = 'openid email profile offline_access';
// A parked request never waits forever: a test that forgets /admin/release must not hang us.
const HOLD_MAX_MS = 30_000;
const COUNTER_NAMES = [
  'login_ok', 'refresh_requests', 'refresh_ok', 'refresh_rejected', 'client_rejected',
  'reuse_detected', 'grant_revocations', 'revocations', 'served_503', 'dropped', 'held',
  'api_ok', 'api_rejected', 'api_rejected_expired', 'api_rejected_revoked',
  'api_rejected_unknown',
];

const hash = (token) => createHash('sha256').update(token).digest('hex').slice(0, 16);
const epoch = () => Date.now() / 1000;

function freshState() {
  return {
    counters: Object.fromEntries(COUNTER_NAMES.map((name) => [name, 0])),
    log: [],
    faults: { fail_next: 0, drop_next: 0, outage: null, hold_next: 0 },
    releases: [],
  };
}
let state = freshState();
// Facts about issued tokens, by hash; kept across /admin/reset (a test may reset mid-session).
const accessTokens = new Map(); // hash -> { exp, grantId }
const issuedWith = new Map(); // refresh token hash -> { atExp, at } of its token response
let issuedValues = new Set(); // every token issued since the last reset (for /admin/leaks only)
const revokedGrants = new Set();

function clients() {
  const grant = { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: [REDIRECT_URI] };
  const list = [
    { client_id: 'kitty-public', token_endpoint_auth_method: 'none', application_type: 'native', ...grant },
    { client_id: 'kitty-basic', client_secret: SECRETS['kitty-basic'], token_endpoint_auth_method: 'client_secret_basic', ...grant },
    { client_id: 'kitty-post', client_secret: SECRETS['kitty-post'], token_endpoint_auth_method: 'client_secret_post', ...grant },
  ];
  if (args['client-jwks']) {
    list.push({
      client_id: 'kitty-jwt',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: JSON.parse(readFileSync(args['client-jwks'], 'utf8')),
      ...grant,
    });
  }
  return list;
}

function signingKeys() {
  // A fresh key per run (never the library's development keys, which it warns about).
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' }] };
}

function configuration() {
  const accessTtl = Number.parseInt(args['access-ttl'], 10);
  return {
    clients: clients(),
    jwks: signingKeys(),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    clockTolerance: 0,
    rotateRefreshToken: true,
    responseTypes: ['code'],
    scopes: ['openid', 'email', 'profile', 'offline_access'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    conformIdTokenClaims: false, // email and name in the id_token too, as many providers do
    ttl: {
      AccessToken: accessTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
    },
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, id) {
      if (id !== ACCOUNT.sub) return undefined;
      return { accountId: id, claims: async () => ({ ...ACCOUNT }) };
    },
  };
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function json(ctx, body, status = 200) {
  ctx.status = status;
  ctx.body = body;
}

async function interaction(provider, ctx) {
  // The test-only "user": whoever reaches the login page is alice, and alice consents to
  // everything the client asked for. The rest of the flow is the provider's own.
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const result = { login: { accountId: ACCOUNT.sub } };
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: ACCOUNT.sub, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope ?? 'openid'));
  result.consent = { grantId: await grant.save() };
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.redirect(returnTo);
}

async function admin(ctx) {
  const name = ctx.path.slice('/admin/'.length);
  if (name === 'counters' && ctx.method === 'GET') return json(ctx, state.counters);
  if (name === 'log' && ctx.method === 'GET') return json(ctx, state.log);
  if (name === 'fault' && ctx.method === 'POST') {
    const changes = await readJson(ctx.req);
    const unknown = Object.keys(changes).filter((key) => !(key in state.faults));
    if (unknown.length) return json(ctx, { error: 'unknown_fault', error_description: unknown.join(',') }, 400);
    Object.assign(state.faults, changes);
    return json(ctx, state.faults);
  }
  if (name === 'release' && ctx.method === 'POST') {
    state.releases.splice(0).forEach((release) => release());
    return json(ctx, { released: true });
  }
  if (name === 'leaks' && ctx.method === 'POST') {
    // How many of the tokens issued since the last reset appear in each file: the leak check
    // covers every token, not just those a test happened to see, and none leaves this process.
    const { paths } = await readJson(ctx.req);
    const leaks = {};
    for (const path of paths) {
      const text = await readFile(path, 'utf8');
      leaks[path] = [...issuedValues].filter((token) => text.includes(token)).length;
    }
    return json(ctx, { leaks, issued: issuedValues.size });
  }
  if (name === 'reset' && ctx.method === 'POST') {
    state.releases.splice(0).forEach((release) => release()); // never strand a parked request
    state = freshState();
    issuedValues = new Set();
    return json(ctx, { reset: true });
  }
  return json(ctx, { error: 'not_found' }, 404);
}

// A token request, before the provider sees it: the injected faults (the body is not read here,
// so every /token request counts, whatever its grant).
async function tokenFaults(ctx, s) {
  const { faults } = s;
  if (faults.outage === 'reset' || faults.drop_next > 0) {
    if (faults.drop_next > 0) faults.drop_next -= 1;
    s.counters.dropped += 1;
    s.log.push({ seq: s.log.length, kind: 'token', status: null, error: 'connection_reset', at: epoch() });
    ctx.respond = false;
    ctx.req.socket.destroy(); // a server that dies mid-request: no status line at all
    return true;
  }
  if (faults.outage === '503' || faults.fail_next > 0) {
    if (faults.fail_next > 0) faults.fail_next -= 1;
    s.counters.served_503 += 1;
    s.log.push({ seq: s.log.length, kind: 'token', status: 503, error: 'temporarily_unavailable', at: epoch() });
    json(ctx, { error: 'temporarily_unavailable' }, 503);
    return true;
  }
  if (faults.hold_next > 0) {
    faults.hold_next -= 1;
    s.counters.held += 1;
    await new Promise((resolve) => {
      s.releases.push(resolve);
      setTimeout(resolve, HOLD_MAX_MS);
    });
  }
  return false;
}

// After the provider answered a token request: count it and log it by hashes only.
async function recordToken(provider, ctx, s) {
  const params = ctx.oidc?.params ?? {};
  const body = typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {};
  if (ctx.status === 200 && typeof body.access_token === 'string') {
    const at = await provider.AccessToken.find(body.access_token);
    if (at) {
      accessTokens.set(hash(body.access_token), { exp: at.exp, grantId: at.grantId });
      if (typeof body.refresh_token === 'string') {
        issuedWith.set(hash(body.refresh_token), { atExp: at.exp, at: epoch() });
      }
    }
    for (const name of ['access_token', 'refresh_token', 'id_token']) {
      if (typeof body[name] === 'string') issuedValues.add(body[name]);
    }
  }
  if (params.grant_type !== 'refresh_token') {
    if (ctx.status === 200) s.counters.login_ok += 1;
    return;
  }
  const presented = typeof params.refresh_token === 'string' ? params.refresh_token : '';
  const error = body.error ?? null;
  s.counters.refresh_requests += 1;
  if (ctx.status === 200) s.counters.refresh_ok += 1;
  else if (error === 'invalid_grant') s.counters.refresh_rejected += 1;
  else if (error === 'invalid_client') s.counters.client_rejected += 1;
  const issued = presented ? issuedWith.get(hash(presented)) : undefined;
  let auth = 'none';
  if (ctx.get('authorization')) auth = 'basic';
  else if (params.client_assertion) auth = 'assertion';
  else if (params.client_secret) auth = 'post';
  const now = epoch();
  s.log.push({
    seq: s.log.length,
    kind: 'refresh',
    rt: presented ? hash(presented) : null,
    client: ctx.oidc?.client?.clientId ?? null,
    auth, // how the client authenticated: basic | post | assertion | none
    status: ctx.status,
    error,
    at: now,
    // How long the access token issued with the presented refresh token had left (the
    // provider's own exp, whole seconds), and how long ago that pair was issued: a refresh
    // only when it was due, never a second one straight after the first.
    remaining_s: issued ? Math.round((issued.atExp - now) * 1000) / 1000 : null,
    age_s: issued ? Math.round((now - issued.at) * 1000) / 1000 : null,
    issued_exp: ctx.status === 200 ? accessTokens.get(hash(body.access_token))?.exp ?? null : null,
  });
}

// After the provider answered a userinfo call: was the token accepted, and if not, why.
function recordUserinfo(ctx, s) {
  const header = ctx.get('authorization');
  const token = header.startsWith('Bearer ') ? header.slice(7) : '';
  const known = token ? accessTokens.get(hash(token)) : undefined;
  const now = epoch();
  if (ctx.status === 200) {
    s.counters.api_ok += 1;
  } else {
    s.counters.api_rejected += 1;
    let reason = 'unknown';
    if (known && revokedGrants.has(known.grantId)) reason = 'revoked';
    else if (known && known.exp <= Math.floor(now)) reason = 'expired';
    s.counters[`api_rejected_${reason}`] += 1;
  }
  s.log.push({
    seq: s.log.length,
    kind: 'userinfo',
    at_hash: token ? hash(token) : null,
    status: ctx.status,
    at: now,
    exp: known?.exp ?? null,
  });
}

function exitWhenParentGoes() {
  // The parent holds our stdin; EOF means it is gone (or done with us): never outlive it.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

const server = createServer();
server.listen(Number.parseInt(args.port, 10), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration());
  provider.on('grant.error', (_ctx, error) => {
    if (error.error_detail === 'refresh token already used') state.counters.reuse_detected += 1;
  });
  provider.on('grant.revoked', (_ctx, grantId) => {
    revokedGrants.add(grantId);
    state.counters.grant_revocations += 1;
  });
  provider.use(async (ctx, next) => {
    if (!['127.0.0.1', '::ffff:127.0.0.1', '::1'].includes(ctx.req.socket.remoteAddress)) {
      return json(ctx, { error: 'forbidden' }, 403);
    }
    if (ctx.path.startsWith('/admin/')) return admin(ctx);
    const match = /^\/interaction\/([\w-]+)$/.exec(ctx.path);
    if (match && ctx.method === 'GET') return interaction(provider, ctx);
    const s = state; // pin: a concurrent /admin/reset must not split this request across states
    if (ctx.path === '/token' && ctx.method === 'POST' && (await tokenFaults(ctx, s))) return undefined;
    await next();
    if (ctx.path === '/token' && ctx.method === 'POST') await recordToken(provider, ctx, s);
    if (ctx.path === '/me') recordUserinfo(ctx, s);
    // RFC 7009 answers 200 for any token; grant_revocations shows what it actually revoked.
    if (ctx.path === '/token/revocation' && ctx.status === 200) s.counters.revocations += 1;
    return undefined;
  });
  server.on('request', provider.callback());
  exitWhenParentGoes();
  process.stdout.write(`${JSON.stringify({ port, issuer })}\n`);
});
