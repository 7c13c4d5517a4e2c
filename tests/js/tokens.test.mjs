// Tokens as identity providers issue them: with an audience (`aud`, a
// string or an array) and an issuer (`iss`). An edge told nothing about
// them (CONFAB_URL) accepts any audience and issuer, or none; an edge
// started with CONFAB_JWT_AUDIENCE and CONFAB_JWT_ISSUER (CONFAB_URL_CHECKED,
// the values in those variables) requires both and refuses a token naming
// another. The same rule holds at the Socket.IO handshake of every contract,
// on REST, and for a token refresh on an open socket.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { URL, closeAll, open, token } from './confab.mjs';

after(closeAll);

const CHECKED = process.env.CONFAB_URL_CHECKED ?? '';
const AUDIENCE = process.env.CONFAB_JWT_AUDIENCE ?? '';
const ISSUER = process.env.CONFAB_JWT_ISSUER ?? '';

/** Each contract's event for a fresh token on an open socket. */
const REFRESH = {
  raven: 'refresh_token',
  mern: 'refresh_token',
  v3: 'refresh_tokens',
  hvtsocial: 'refresh_token',
  dreamstudio: 'refresh_token',
};
const CONTRACTS = Object.keys(REFRESH);

/** A numeric user id (hvtsocial and dreamstudio render ids as numbers). */
const nid = () => String(100000 + Math.floor(Math.random() * 1e9));

/** A token for a new user with `claims` (aud, iss) besides sub and exp. */
const tokenWith = (claims) => token(nid(), { name: 'Idp User', extra: claims });

/** The stable code of a refusal ack, in any contract's shape. */
const codeOf = (ack) => (typeof ack.error === 'object' ? ack.error.code : ack.code);

/**
 * Connects to `contract` on `base` with `tok` and resolves with 'OK' once
 * the socket is the token's user — it connected, and a refresh with
 * `refreshWith` (by default the same token, so the same user) was acked as
 * done — or with the stable code the contract refused it with:
 * `connect_error`, v3's `auth_error`, mern's `error`.
 */
function handshake(base, contract, tok, refreshWith = tok) {
  const s = open(`/${contract}`, { base, auth: { token: tok } });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${contract}: neither accepted nor refused within 5 s`)), 5000);
    const done = (outcome) => {
      clearTimeout(timer);
      resolve(outcome);
      s.disconnect();
    };
    s.on('connect_error', (e) => done(e.message.split(':')[0]));
    s.on('auth_error', (p) => done(p.error));
    if (contract === 'mern') s.on('error', (p) => done(p.code));
    s.on('connect', async () => {
      try {
        const ack = await s.timeout(3000).emitWithAck(REFRESH[contract], { token: refreshWith });
        done(ack.success === true ? 'OK' : `refresh refused: ${JSON.stringify(ack)}`);
      } catch {
        // A socket refused by an event (v3, mern) never answers: the event decides.
      }
    });
  });
}

/** Every contract's handshake outcome for `tok` on `base`, by contract. */
async function everyContract(base, tok, refreshWith = tok) {
  const outcomes = {};
  for (const c of CONTRACTS) outcomes[c] = await handshake(base, c, tok, refreshWith);
  return outcomes;
}

/** The same outcome for every contract. */
const all = (outcome) => Object.fromEntries(CONTRACTS.map((c) => [c, outcome]));

/** `GET /api/conversations` with `tok`: 'OK' or the error's code. */
async function restOutcome(base, tok) {
  const res = await fetch(`${base}/api/conversations`, { headers: { authorization: `Bearer ${tok}` } });
  const body = await res.json();
  if (res.status === 200) return 'OK';
  assert.equal(res.status, 401, JSON.stringify(body));
  return body.error.code;
}

describe('no audience or issuer configured', () => {
  const IDP = 'https://idp.example/';
  for (const [what, claims] of [
    ['no aud and no iss', {}],
    ['aud a string', { aud: 'my-app' }],
    ['aud an array', { aud: ['my-app', `${IDP}userinfo`] }],
    ['an iss', { iss: IDP }],
    ['aud and iss', { aud: 'my-app', iss: IDP }],
  ]) {
    test(`${what}: accepted at every contract's handshake, on REST and as a refresh`, async () => {
      const tok = tokenWith(claims);
      assert.deepEqual(await everyContract(URL, tok), all('OK'));
      assert.equal(await restOutcome(URL, tok), 'OK');
      // A socket that connected with a plain token takes this one for the same user.
      const sub = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url')).sub;
      const plain = token(sub, { name: 'Idp User' });
      assert.deepEqual(await everyContract(URL, plain, tok), all('OK'));
    });
  }
});

describe('CONFAB_JWT_AUDIENCE and CONFAB_JWT_ISSUER set', () => {
  test('the harness started an edge that expects an audience and an issuer', () => {
    assert.ok(CHECKED && AUDIENCE && ISSUER, 'CONFAB_URL_CHECKED, CONFAB_JWT_AUDIENCE and CONFAB_JWT_ISSUER are set');
  });

  for (const [what, claims] of [
    ['the expected aud as a string', () => ({ aud: AUDIENCE, iss: ISSUER })],
    ['an aud array holding the expected one', () => ({ aud: ['another-api', AUDIENCE], iss: ISSUER })],
  ]) {
    test(`${what} and the expected iss: accepted at every contract's handshake, on REST and as a refresh`, async () => {
      const tok = tokenWith(claims());
      assert.deepEqual(await everyContract(CHECKED, tok), all('OK'));
      assert.equal(await restOutcome(CHECKED, tok), 'OK');
    });
  }

  /** Tokens the checked edge refuses, each for a new user. */
  const wrong = () => [
    ['another aud', { aud: 'another-api', iss: ISSUER }],
    ['an aud array without the expected one', { aud: ['another-api', 'more'], iss: ISSUER }],
    ['no aud', { iss: ISSUER }],
    ['another iss', { aud: AUDIENCE, iss: 'https://evil.example/' }],
    ['no iss', { aud: AUDIENCE }],
    ['neither', {}],
  ];

  test('another or a missing aud or iss: INVALID_TOKEN at every contract\'s handshake and on REST', async () => {
    for (const [what, claims] of wrong()) {
      const tok = tokenWith(claims);
      assert.deepEqual(await everyContract(CHECKED, tok), all('INVALID_TOKEN'), what);
      assert.equal(await restOutcome(CHECKED, tok), 'INVALID_TOKEN', what);
      // The edge told nothing takes the same token.
      assert.equal(await restOutcome(URL, tok), 'OK', what);
    }
  });

  test('a refresh with another or a missing aud or iss is refused with INVALID_TOKEN; the socket stays and takes a good one', async () => {
    for (const contract of CONTRACTS) {
      const sub = nid();
      const good = token(sub, { name: 'Idp User', extra: { aud: AUDIENCE, iss: ISSUER } });
      const s = open(`/${contract}`, { base: CHECKED, auth: { token: good } });
      await new Promise((resolve, reject) => {
        s.once('connect', resolve);
        s.once('connect_error', reject);
      });
      for (const [what, claims] of wrong()) {
        const bad = token(sub, { name: 'Idp User', extra: claims });
        const ack = await s.timeout(3000).emitWithAck(REFRESH[contract], { token: bad });
        assert.equal(ack.success, false, `${contract}, ${what}: ${JSON.stringify(ack)}`);
        assert.equal(codeOf(ack), 'INVALID_TOKEN', `${contract}, ${what}: ${JSON.stringify(ack)}`);
        assert.equal(s.connected, true, `${contract}, ${what}`);
      }
      const ack = await s.timeout(3000).emitWithAck(REFRESH[contract], { token: good });
      assert.equal(ack.success, true, `${contract}: ${JSON.stringify(ack)}`);
      s.disconnect();
    }
  });
});
