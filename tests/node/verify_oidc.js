// Google's Node.js verifier (google-auth-library's OAuth2Client), unchanged, on a token pushd
// minted: node verify_oidc.js BASE_URL ISSUER TOKEN AUDIENCE prints one JSON object: what
// verifyIdToken said with pushd's endpoints and issuer, with another audience, and with
// Google's default issuers. Run by tests/integration/test_oidc.py.
'use strict';
const {OAuth2Client} = require('google-auth-library');

async function verify(client, idToken, audience) {
  try {
    const ticket = await client.verifyIdToken({idToken, audience});
    return {payload: ticket.getPayload()};
  } catch (e) {
    return {error: e.message};
  }
}

async function main() {
  const [base, issuer, token, audience] = process.argv.slice(2);
  const endpoints = {
    oauth2FederatedSignonPemCertsUrl: `${base}/oauth2/v1/certs`,
    oauth2FederatedSignonJwkCertsUrl: `${base}/oauth2/v3/certs`,
  };
  const client = new OAuth2Client({endpoints, issuers: [issuer]});
  const googleIssuers = new OAuth2Client({endpoints});
  const seen = {
    accepted: await verify(client, token, audience),
    wrongAudience: await verify(client, token, 'https://elsewhere.example.com/'),
    defaultIssuers: await verify(googleIssuers, token, audience),
  };
  process.stdout.write(JSON.stringify(seen));
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
